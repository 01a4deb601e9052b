"""-kernel test guests: paging=true dumps (virtual PT_LOADs, PN_XNUM, gdb, cyclic tables) and ignored I/O ports."""
import struct
import subprocess

import pytest

from qmp import BUILD, Minivm, QMPError, kvm_available

pytestmark = pytest.mark.skipif(not kvm_available(),
                                reason='/dev/kvm is not accessible: the test guests must run')

GUESTS = BUILD / 'tests' / 'guests'


def load_segments(path):
    """(e_phnum field, real phnum, [(vaddr, paddr, filesz, memsz)]) of an ELF64 core."""
    with open(path, 'rb') as f:
        data = f.read(1 << 24)
    phoff, shoff = struct.unpack_from('<QQ', data, 32)
    phnum_field, = struct.unpack_from('<H', data, 56)
    phnum = phnum_field
    if phnum_field == 0xffff:
        phnum, = struct.unpack_from('<I', data, shoff + 44)
    loads = []
    for i in range(phnum):
        p_type, = struct.unpack_from('<I', data, phoff + 56 * i)
        if p_type == 1:
            _, vaddr, paddr, filesz, memsz = struct.unpack_from('<QQQQQ', data, phoff + 56 * i + 8)
            loads.append((vaddr, paddr, filesz, memsz))
    return phnum_field, phnum, loads


def gdb(core, *commands):
    args = ['gdb', '-batch', '-nx']
    for c in commands:
        args += ['-ex', c]
    args += ['-c', str(core)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout


def test_demo_guest_mappings(tmp_path):
    with Minivm(mem='256M', smp=2) as vm:
        vm.qmp.cmd('stop')
        out = tmp_path / 'paging.elf'
        vm.qmp.cmd('dump-guest-memory', paging=True, protocol=f'file:{out}')
        _, _, loads = load_segments(out)
        # the loader identity-maps all RAM with 2 MiB user pages: one run
        assert loads == [(0, 0, 256 << 20, 256 << 20)]
        magic = vm.qmp.hmp('xp /1xg 0x1000').split()[-1]
        assert magic in gdb(out, 'x/1gx 0x1000')


def test_pn_xnum_many_mappings(tmp_path):
    with Minivm('-kernel', str(GUESTS / 'many-mappings.elf'), mem='64M') as vm:
        vm.wait_serial('many-mappings ready')
        vm.qmp.cmd('stop')
        out = tmp_path / 'many.elf'
        vm.qmp.cmd('dump-guest-memory', paging=True, protocol=f'file:{out}')
        field, phnum, loads = load_segments(out)
        assert field == 0xffff and phnum == 70002
        virt = [l for l in loads if l[0] >= 0x8000000000]
        assert len(virt) == 70000
        assert all(l[1] == 0x1800000 and l[2] == 4096 for l in virt)
        r = subprocess.run(['readelf', '-h', '-l', '-W', str(out)], capture_output=True, text=True)
        assert r.returncode == 0 and 'Warning' not in r.stderr
        last = 0x8000000000 + 2 * 4096 * 69999
        text = gdb(out, 'x/s 0x8000000000', f'x/s {last:#x}')
        assert text.count('"MINIVM-MANY-MAPPINGS"') == 2, text


def test_paging_with_filter(tmp_path):
    with Minivm(mem='128M') as vm:
        vm.qmp.cmd('stop')
        out = tmp_path / 'filtered.elf'
        vm.qmp.cmd('dump-guest-memory', paging=True, protocol=f'file:{out}',
                   begin=0x200000, length=0x300000)
        _, _, loads = load_segments(out)
        assert loads == [(0x200000, 0x200000, 0x300000, 0x300000)]


def test_cyclic_page_tables_fail_cleanly(tmp_path):
    with Minivm('-kernel', str(GUESTS / 'cyclic-tables.elf'), mem='64M') as vm:
        vm.wait_serial('cyclic-tables ready')
        vm.qmp.cmd('stop')
        with pytest.raises(QMPError) as e:
            vm.qmp.cmd('dump-guest-memory', paging=True, protocol=f'file:{tmp_path / "c.elf"}')
        assert 'corrupt or cyclic' in e.value.desc
        assert vm.qmp.cmd('query-dump')['status'] == 'failed'
        assert vm.qmp.cmd('query-status')['status'] == 'paused'


def test_unknown_ports_are_ignored_and_counted():
    with Minivm('-kernel', str(GUESTS / 'unknown-ports.elf'), mem='64M') as vm:
        vm.wait_serial('unknown-ports ready')    # 50 reads of 0xff xor to 0
        text = vm.qmp.hmp('info ioports')
        assert 'unknown port and MMIO accesses (ignored): 100' in text, text
        assert vm.qmp.cmd('query-status')['status'] == 'running'
