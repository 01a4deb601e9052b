"""dump-level's errors, all before the guest stops, and where a dump's VMCOREINFO came from.

A guest with a Linux kernel here is synthetic: a fuzz seed of tests/unit/test_filter.c
(page tables, sections, struct pages and the kernel's VMCOREINFO note in 4 MiB of RAM)
restored from an ELF core built around it. Real Linux guests: tests/interop/test_filter.py.
"""
import struct
from pathlib import Path

import pytest

from dumpcheck import KdumpHeader, dump, dump_error, start_vm

SEED = Path(__file__).resolve().parents[1] / 'fuzz' / 'seeds' / 'fuzz_pagefilter' / 'synthetic-31'
NOTE_GPA = 0x45000                   # where the synthetic kernel keeps its note
SEED_RAM = 4 << 20


def seed_ram(seed):
    """The RAM a fuzz_pagefilter input describes: records of a frame and its bytes."""
    ram = bytearray(SEED_RAM)
    pos = 4 + (seed[2] | seed[3] << 8)
    while pos + 2 < len(seed):
        frame = (seed[pos] | seed[pos + 1] << 8) % (SEED_RAM // 4096)
        page = seed[pos + 2:pos + 2 + 4096]
        ram[frame * 4096:frame * 4096 + len(page)] = page
        pos += 2 + 4096
    return ram


def elf_core(ram):
    """An ELF core of one vCPU (an NT_PRSTATUS of zeros) and RAM from 0."""
    prstatus = struct.pack('<III', 5, 336, 1) + b'CORE\0\0\0\0' + bytes(336)
    notes, data = 64 + 2 * 56, 4096
    head = (b'\x7fELF\x02\x01\x01' + bytes(9) +
            struct.pack('<HHIQQQIHHHHHH', 4, 62, 1, 0, 64, 0, 0, 64, 56, 2, 0, 0, 0) +
            struct.pack('<IIQQQQQQ', 4, 0, notes, 0, 0, len(prstatus), len(prstatus), 0) +
            struct.pack('<IIQQQQQQ', 1, 0, data, 0, 0, len(ram), len(ram), 0) + prstatus)
    return head + bytes(data - len(head)) + bytes(ram)


@pytest.fixture
def synthetic(tmp_path):
    """synthetic(rename=None): minivm restored from the synthetic kernel, its note's
    `rename` entry (a VMCOREINFO key) spelt otherwise, so that the guest lacks it."""
    vms = []

    def start(rename=None):
        ram = seed_ram(SEED.read_bytes())
        if rename:
            key = rename.encode()
            at = ram.index(key + b'=', NOTE_GPA)
            ram[at + len(key) - 2] ^= 0x20       # change one letter's case
        core = tmp_path / 'synthetic.elf'
        core.write_bytes(elf_core(ram))
        vm = start_vm('-load-vmcore', str(core), accel='none', workdir=tmp_path)
        vms.append(vm)
        return vm
    yield start
    for vm in vms:
        vm.close()


@pytest.fixture
def running(tmp_path):
    """A running guest without VMCOREINFO (the demo guest's VM, -accel none)."""
    vm = start_vm(mem='64M', accel='none', workdir=tmp_path, hmp=True)
    assert vm.qmp.cmd('query-status')['status'] == 'running'
    yield vm
    vm.close()


def assert_still_running(q):
    assert q.cmd('query-status')['status'] == 'running'
    assert not [e for e in q.events if e['event'] in ('STOP', 'DUMP_COMPLETED')], q.events


@pytest.mark.parametrize('level', [-1, 32, 1 << 40])
def test_level_out_of_range(running, tmp_path, level):
    q = running.qmp
    err = dump_error(q, protocol=f'file:{tmp_path}/out', format='kdump-zlib',
                     **{'dump-level': level})
    assert err['desc'] == "Parameter 'dump-level' expects a value from 0 to 31 " \
                          "(makedumpfile's -d)"
    assert_still_running(q)


def test_elf_takes_level_0_only(running, tmp_path):
    q = running.qmp
    err = dump_error(q, protocol=f'file:{tmp_path}/out', **{'dump-level': 8})
    assert err['desc'] == 'dump-level is for the kdump formats: the ELF writer keeps every page'
    assert_still_running(q)
    dump(q, tmp_path / 'zero.elf', **{'dump-level': 0})


def test_no_vmcoreinfo(running, tmp_path):
    """Above level 1 the guest's VMCOREINFO is needed: refused while the guest runs.
    Level 1 (zero pages) needs none; the sub-header records the level asked for."""
    q = running.qmp
    err = dump_error(q, protocol=f'file:{tmp_path}/out', format='kdump-raw-zlib',
                     **{'dump-level': 2})
    assert err['desc'] == "dump-level 2 needs the guest kernel's VMCOREINFO: the guest " \
                          "published none, and none was found in its memory"
    assert_still_running(q)
    for level in (1, 0):
        dump(q, tmp_path / f'l{level}', 'kdump-raw-zlib', **{'dump-level': level})
        assert KdumpHeader(tmp_path / f'l{level}').dump_level == level
    dump(q, tmp_path / 'default', 'kdump-raw-zlib')
    assert KdumpHeader(tmp_path / 'default').dump_level == 1      # QEMU's
    assert 'vmcoreinfo' not in q.cmd('query-dump')


def test_hmp_level(running, tmp_path):
    hmp = running.qmp.hmp
    assert 'Error: ' + "Parameter 'dump-level' expects a value from 0 to 31" in \
        hmp(f'dump-guest-memory -z -D 40 {tmp_path}/out')
    assert hmp(f'dump-guest-memory -z -D {tmp_path}/out').startswith(
        'dump-guest-memory: -D takes a dump level (0 to 31)')
    assert "needs the guest kernel's VMCOREINFO" in hmp(f'dump-guest-memory -z -D 31 {tmp_path}/o')
    assert_still_running(running.qmp)
    assert hmp(f'dump-guest-memory -Z -R -D 1 {tmp_path}/l1') == ''
    assert KdumpHeader(tmp_path / 'l1').dump_level == 1
    assert '-D level' in hmp('help dump-guest-memory')


def test_missing_entries_named(synthetic, tmp_path):
    """A guest whose VMCOREINFO lacks what a level needs: the level is refused, naming
    the entries; levels that do not need them go on."""
    q = synthetic('NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)').qmp
    err = dump_error(q, protocol=f'file:{tmp_path}/out', format='kdump-raw-zlib',
                     **{'dump-level': 31})
    assert err['desc'] == 'dump-level 31 needs VMCOREINFO entries that the guest\'s lacks: ' \
                          'NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)'
    assert q.cmd('query-status')['status'] == 'paused'
    dump(q, tmp_path / 'l15', 'kdump-raw-zlib', **{'dump-level': 15})
    assert KdumpHeader(tmp_path / 'l15').dump_level == 15


def test_vmcoreinfo_found_in_memory(synthetic, tmp_path):
    vm = synthetic()
    q = vm.qmp
    dump(q, tmp_path / 'l31', 'kdump-raw-zlib', **{'dump-level': 31})
    h = KdumpHeader(tmp_path / 'l31')
    assert (h.dump_level, h.release) == (31, '6.1.0-synthetic')
    assert h.size_vmcoreinfo > 0
    reply = q.cmd('query-dump')
    assert (reply['vmcoreinfo'], reply['vmcoreinfo-address']) == ('guest-memory', NOTE_GPA)
    assert q.hmp('info dump').splitlines() == [
        'Status: completed', f'VMCOREINFO: found in guest memory at {NOTE_GPA:#x}']
