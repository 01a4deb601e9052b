"""Dump levels (dump-level) and VMCOREINFO found in guest memory, on real Linux guests.

makedumpfile 1.7.2 is the oracle: `makedumpfile -d LEVEL` on minivm's unfiltered ELF of
the same paused guest must keep every page minivm keeps but for a few (under 0.1 % of
RAM), and minivm must keep every page makedumpfile keeps. crash, drgn and libkdumpfile
read the filtered files. The 'novmci' fixture was booted without -device vmcoreinfo:
QEMU's ELF of it has no VMCOREINFO note, and minivm finds the kernel's own."""
import re
import struct
import subprocess

import pytest

from dumpcheck import ElfCore, KdumpFile
from qmp import Minivm
import readers
from readers import dump

LEVELS = [31, 1, 2, 4, 8, 16]
# Pages the small fixture must give each level to leave out, at least (init.sh): 24 MiB
# of tmpfs page cache; 16 MiB of anonymous memory in two live processes and two 2 MiB
# hugetlb pages; free memory; none at level 1 (no PG_hwpoison in this kernel, zero pages
# stay in the file pointing at the shared zero page).
MIN_EXCLUDED = {1: 0, 2: 6144, 4: 6144, 8: 4096 + 1024, 16: 50000, 31: 6144 + 5120 + 50000}


@pytest.fixture(scope='module')
def small(small_linux, tmp_path_factory):
    """minivm restored from QEMU's ELF of the small fixture, with its unfiltered ELF."""
    work = tmp_path_factory.mktemp('filter')
    with Minivm('-load-vmcore', small_linux['elf'], accel='none', workdir=work) as vm:
        vm.work = work
        vm.elf = dump(vm, 'elf', 'unfiltered.elf')
        yield vm


@pytest.fixture(scope='module')
def novmci(novmci_linux, tmp_path_factory):
    """minivm restored from QEMU's ELF of a guest booted without -device vmcoreinfo."""
    work = tmp_path_factory.mktemp('novmci')
    with Minivm('-load-vmcore', novmci_linux['elf'], accel='none', workdir=work) as vm:
        vm.work = work
        yield vm


def bits(kf, bitmap, n):
    """The first n bits of one of a kdump file's bitmaps, as an integer (bit p = frame p)."""
    return int.from_bytes(bitmap[:(n + 7) // 8], 'little') & ((1 << n) - 1)


def frames(mask, limit=8):
    out = []
    while mask and len(out) < limit:
        low = mask & -mask
        out.append(hex(low.bit_length() - 1))
        mask ^= low
    return out


def makedumpfile(elf, level, out):
    if out.exists():
        out.unlink()
    r = subprocess.run(['makedumpfile', '-c', '-d', str(level), str(elf), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def compare_with_makedumpfile(vm, level):
    """(RAM frames, excluded by minivm, kept by minivm that makedumpfile leaves out) over
    the frames makedumpfile's file describes; asserts that minivm keeps every frame
    makedumpfile keeps."""
    mine = KdumpFile(dump(vm, 'kdump-raw-zlib', f'level{level}.kdump', dump_level=level))
    ref = KdumpFile(makedumpfile(vm.elf, level, vm.work / f'makedumpfile{level}.kdump'))
    assert mine.dump_level == level and ref.dump_level == level
    n = min(mine.max_mapnr_64, ref.max_mapnr_64)
    ram = bits(ref, ref.bitmap1, n)
    assert bits(mine, mine.bitmap1, n) == ram
    kept, ref_kept = bits(mine, mine.bitmap2, n), bits(ref, ref.bitmap2, n)
    lost = ref_kept & ~kept
    assert not lost, f'level {level}: makedumpfile keeps, minivm leaves out {frames(lost)}'
    extra = kept & ~ref_kept & ram
    return bin(ram).count('1'), bin(ram & ~kept).count('1'), bin(extra).count('1')


@pytest.mark.parametrize('level', LEVELS)
def test_same_pages_as_makedumpfile(small, level):
    ram, excluded, extra = compare_with_makedumpfile(small, level)
    assert excluded >= MIN_EXCLUDED[level], (level, excluded)
    assert extra < ram / 1000, (level, extra, ram)


def test_crash_reads_level31(small, small_linux):
    """crash prints the same sys, bt and log for the level-31 kdump files (raw and
    flattened) as for the unfiltered one, and help -D shows the level."""
    vmlinux = small_linux['vmlinux']
    full = readers.crash_report(vmlinux, dump(small, 'kdump-raw-zlib', 'full.kdump'))
    assert 'sysrq_handle_crash' in full
    raw = dump(small, 'kdump-raw-zlib', 'l31.kdump', dump_level=31)
    flat = dump(small, 'kdump-zlib', 'l31.flat', dump_level=31)
    assert readers.crash_report(vmlinux, raw) == full
    assert readers.crash_report(vmlinux, flat) == full
    header = readers.crash_report(vmlinux, raw, 'help -D\nquit\n')
    assert re.search(r'dump_level: 31\b', header), header
    # the flattened stream holds the same file (makedumpfile -R)
    assert readers.reassemble(flat, small.work / 'l31.rebuilt').read_bytes() == raw.read_bytes()


def test_same_bytes_for_any_thread_count(small_linux, tmp_path):
    """Decisions are made per batch from the guest alone: the level-31 file is the same
    from fresh processes with 1 and 3 compression threads."""
    files = []
    for threads in (1, 3):
        work = tmp_path / str(threads)
        work.mkdir()
        with Minivm('-load-vmcore', small_linux['elf'], accel='none', workdir=work,
                    env={'MINIVM_DUMP_THREADS': threads}) as vm:
            vm.work = work
            files.append(dump(vm, 'kdump-raw-zstd', dump_level=31).read_bytes())
    assert files[0] == files[1]


DRGN_READ = r'''
import sys, drgn
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
for a in sys.argv[2:]:
    try:
        print(a, prog.read(int(a, 0), 4096, True).hex())
    except drgn.FaultError as e:
        print(a, 'fault', e)
'''


def test_readers_see_excluded_pages(small, small_linux):
    """libkdumpfile and drgn read kept pages of the level-31 file as they are in QEMU's
    ELF of the guest, and report excluded ones as excluded."""
    import kdumpfile
    path = dump(small, 'kdump-raw-zlib', 'l31.kdump', dump_level=31)
    kf = KdumpFile(path)
    n = kf.max_mapnr_64
    ram, kept = bits(kf, kf.bitmap1, n), bits(kf, kf.bitmap2, n)
    excluded = [int(p, 16) for p in frames(ram & ~kept & ~((1 << 0x1000) - 1), 4)]
    kept_pfns = [int(p, 16) for p in frames(kept & ~((1 << 0x1000) - 1), 4)]
    assert len(excluded) == 4 and len(kept_pfns) == 4
    k = kdumpfile.kdumpfile(str(path))
    q = kdumpfile.kdumpfile(small_linux['elf'])
    space = kdumpfile.KDUMP_MACHPHYSADDR
    for pfn in kept_pfns:
        assert k.read(space, pfn << 12, 4096) == q.read(space, pfn << 12, 4096)
    for pfn in excluded:
        with pytest.raises(kdumpfile.exceptions.NoDataException):
            k.read(space, pfn << 12, 4096)
    r = subprocess.run(['/usr/bin/python3', '-c', DRGN_READ, str(path)] +
                       [hex(p << 12) for p in kept_pfns + excluded],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = dict(line.split(' ', 1) for line in r.stdout.splitlines())
    for pfn in kept_pfns:
        assert lines[hex(pfn << 12)] == q.read(space, pfn << 12, 4096).hex()
    for pfn in excluded:
        assert lines[hex(pfn << 12)].startswith('fault') and 'xcluded' in lines[hex(pfn << 12)]
    rc, text = readers.drgn_crashed_stack(path, small_linux['vmlinux'])
    assert rc == 0 and 'sysrq_handle_crash' in text, text


@pytest.mark.parametrize('fmt', ['kdump-raw-zlib', 'kdump-lzo'])
def test_restore_a_filtered_file(small, small_linux, tmp_path, fmt):
    """-load-vmcore of a level-31 file (raw, and flattened): it says how many pages the
    level left out, they are zero, kept pages are as in QEMU's ELF, and crash reads the
    restored guest's ELF as it reads the level-31 file."""
    import kdumpfile
    path = dump(small, fmt, 'l31.' + fmt, dump_level=31)
    raw = dump(small, 'kdump-raw-zlib', 'l31-raw.kdump', dump_level=31)
    kf = KdumpFile(raw)
    n = kf.max_mapnr_64
    ram, kept = bits(kf, kf.bitmap1, n), bits(kf, kf.bitmap2, n)
    with Minivm('-load-vmcore', str(path), accel='none', workdir=tmp_path) as vm:
        vm.work = tmp_path
        want = f'{bin(ram & ~kept).count("1")} pages excluded by dump level 31 are zero'
        assert want in vm.stderr_path.read_text()
        out = dump(vm, 'elf', 'restored.elf')
    q = kdumpfile.kdumpfile(small_linux['elf'])
    r = kdumpfile.kdumpfile(str(out))
    space = kdumpfile.KDUMP_MACHPHYSADDR
    for pfn in frames(ram & ~kept & ~((1 << 0x1000) - 1), 8):
        assert r.read(space, int(pfn, 16) << 12, 4096) == bytes(4096), pfn
    for pfn in frames(kept & ~((1 << 0x1000) - 1), 8):
        p = int(pfn, 16) << 12
        assert r.read(space, p, 4096) == q.read(space, p, 4096), pfn
    assert readers.crash_report(small_linux['vmlinux'], out) == \
        readers.crash_report(small_linux['vmlinux'], raw)


def test_user_memory_left_out(small, small_linux):
    """The records init.sh left in the buffers of two live processes (anonymous memory,
    small pages and transparent huge pages) are in the unfiltered file and leave it at
    level 8. (A few hundred pages of them stay: pipe buffers, and pages that are free
    but on the per-CPU lists, which are not buddy blocks, so makedumpfile keeps them too.)"""
    import kdumpfile

    def pages_with(path, records):
        k = kdumpfile.kdumpfile(str(path))
        full = [r * (4096 // len(r)) for r in records]
        count = 0
        for pfn in range(0x100, 0x20000):
            try:
                count += k.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn << 12, 4096) in full
            except kdumpfile.exceptions.NoDataException:
                pass
        return count
    anon = small_linux['anon_patterns']
    before = pages_with(dump(small, 'kdump-raw-lzo', 'full.lzo'), anon)
    after = pages_with(dump(small, 'kdump-raw-lzo', 'l8.lzo', dump_level=8), anon)
    assert before >= 4096 and before - after >= 4096 - 64, (before, after)


# ---- a guest without -device vmcoreinfo ----

def kernel_note(fixture):
    """The VMCOREINFO note as the guest kernel holds it (/sys/kernel/vmcoreinfo's
    address), from QEMU's ELF: header, name, text and padding."""
    addr, _ = fixture['vmcoreinfo_note']
    core = ElfCore(fixture['elf'])
    namesz, descsz, ntype = struct.unpack('<III', core.phys(addr, 12))
    assert (namesz, ntype) == (11, 0)
    return core.phys(addr, 24 + ((descsz + 3) & ~3))


def test_novmci_carries_the_kernels_note(novmci, novmci_linux):
    note = kernel_note(novmci_linux)
    assert note[12:23] == b'VMCOREINFO\0' and note[24:34] == b'OSRELEASE='
    assert not any(n['name'] == 'VMCOREINFO' for n in ElfCore(novmci_linux['elf']).notes)
    elf = ElfCore(dump(novmci, 'elf', 'novmci.elf'))
    found = [n for n in elf.notes if n['name'] == 'VMCOREINFO']
    assert len(found) == 1
    start = found[0]['offset']
    assert elf.note_bytes[start:start + len(note)] == note
    kd = KdumpFile(dump(novmci, 'kdump-raw-zstd', 'novmci.kdump'))
    assert kd.data[kd.offset_vmcoreinfo:kd.offset_vmcoreinfo + kd.size_vmcoreinfo] == \
        note[24:24 + kd.size_vmcoreinfo]
    assert kd.release == novmci_linux['kernel_version']
    q = novmci.qmp.cmd('query-dump')
    assert (q['vmcoreinfo'], q['vmcoreinfo-address']) == \
        ('guest-memory', novmci_linux['vmcoreinfo_note'][0])
    assert f'VMCOREINFO: found in guest memory at {novmci_linux["vmcoreinfo_note"][0]:#x}' in \
        novmci.qmp.hmp('info dump')


def test_novmci_drgn(novmci, novmci_linux):
    """drgn opens minivm's kdump of the guest, and not QEMU's ELF (no VMCOREINFO)."""
    rc, text = readers.drgn_crashed_stack(dump(novmci, 'kdump-raw-zlib', 'novmci.kdump'),
                                          novmci_linux['vmlinux'])
    assert rc == 0 and 'sysrq_handle_crash' in text and 'pid 1' in text, text
    rc_q, text_q = readers.drgn_crashed_stack(novmci_linux['elf'], novmci_linux['vmlinux'], True)
    assert rc_q != 0, text_q


def test_novmci_level31(novmci, novmci_linux):
    novmci.elf = dump(novmci, 'elf', 'unfiltered.elf')
    ram, excluded, extra = compare_with_makedumpfile(novmci, 31)
    assert excluded >= MIN_EXCLUDED[31] and extra < ram / 1000, (excluded, extra)
    vmlinux = novmci_linux['vmlinux']
    full = readers.crash_report(vmlinux, dump(novmci, 'kdump-raw-zlib', 'full.kdump'))
    assert 'sysrq_handle_crash' in full
    assert readers.crash_report(vmlinux, novmci.work / 'level31.kdump') == full


def test_novmci_paging(novmci, novmci_linux):
    out = dump(novmci, 'elf', 'paging.elf', paging=True)
    stdout, text = readers.gdb_print(novmci_linux['vmlinux'], out, readers.kaslr_offset(out),
                                     'init_uts_ns.name.release')
    assert re.search(rf'^\$1 = "{re.escape(novmci_linux["kernel_version"])}"', stdout, re.M), text
    assert readers.kaslr_offset(out) == novmci_linux['kernel_offset']
