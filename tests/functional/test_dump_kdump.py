"""kdump-compressed vmcores (issue 4) on the demo guest: flattened and raw, zlib, lzo,
snappy and zstd; checked with libkdumpfile, makedumpfile -R, crash and our own parser of
the diskdump layout (docs/formats.md, "kdump-compressed") against pmemsave of the same paused guest."""
import math
import os
from collections import Counter
import re
import shutil
import zlib

import pytest

import demo_pattern
from dumpcheck import (read_socket_dump, FORMAT_FLAG, KDUMP_FORMATS, KDUMP_RAW_FORMATS, NEED_KVM, PAGE, ElfCore,
                       KdumpFile, KdumpHeader, MemImage, PipeReader, codec_of,
                       compare_reader_with_mem, compressible, crash_header, dump, dump_error, files_equal,
                       is_flattened, kdumpfile_open, kdumpfile_page, make_mem_file, page_cache_bytes,
                       pmemsave, ram_ranges, raw_of, reassemble, sample_pfns,  # noqa: F401
                       pmemsave_filled, send_fd, start_filled_vm, status)

MEM = 128 << 20
SMP = 2
ALL_KDUMP = KDUMP_FORMATS + KDUMP_RAW_FORMATS


@pytest.fixture(scope='module')
def paused(tmp_path_factory):
    """One paused demo guest (-smp 2, 128M): pmemsave, an ELF and every kdump format."""
    d = tmp_path_factory.mktemp('kdump')
    vm = start_filled_vm(d, mem='128M', smp=SMP)
    try:
        q = vm.qmp
        q.cmd('stop')
        pmemsave_filled(vm, d / 'mem', MEM)
        dump(q, d / 'core.elf')
        files = {}
        for fmt in ALL_KDUMP:
            files[fmt] = d / fmt
            dump(q, files[fmt], fmt)
        q.events.clear()
        yield {'vm': vm, 'q': q, 'dir': d, 'mem': MemImage(d / 'mem'), 'files': files,
               'core': d / 'core.elf', 'reassembled': {}, 'compressible': {}}
    finally:
        vm.close()


def raw_file(paused, fmt):
    """The raw kdump file of a format: the file itself, or the reassembled flattened one."""
    if fmt in KDUMP_RAW_FORMATS:
        return paused['files'][fmt]
    cache = paused['reassembled']
    if fmt not in cache:
        cache[fmt] = reassemble(paused['files'][fmt], paused['dir'] / (fmt + '.reassembled'))
    return cache[fmt]


# ---------------------------------------------------------------- formats

def test_capability_lists_every_format(paused):
    formats = paused['q'].cmd('query-dump-guest-memory-capability')['formats']
    assert len(formats) == len(set(formats))
    assert set(['elf'] + ALL_KDUMP) <= set(formats), formats


@pytest.mark.parametrize('fmt', KDUMP_RAW_FORMATS)
def test_raw_format_pages_equal_pmemsave(paused, fmt):
    path, mem = paused['files'][fmt], paused['mem']
    assert not is_flattened(path)
    k = kdumpfile_open(path)
    assert k.attr['file.format'] == 'diskdump'
    pfns = sample_pfns(ram_ranges(MEM))
    zero = [p for p in pfns if mem.zero(p)]
    assert len(zero) > 100 and len(pfns) - len(zero) > 100, 'sample lacks zero or data pages'
    assert compare_reader_with_mem(k, mem, pfns) == []


@NEED_KVM
def test_raw_format_pages_equal_demo_pattern(paused):
    k = kdumpfile_open(paused['files']['kdump-raw-zstd'])
    pfns = [p for p in sample_pfns(ram_ranges(MEM), count=1000)
            if p >= demo_pattern.FILL_START // PAGE]
    bad = [p for p in pfns if kdumpfile_page(k, p) != demo_pattern.expected_page(p)]
    assert bad == []


@pytest.mark.parametrize('fmt', KDUMP_FORMATS)
def test_flattened_reassembles_to_raw(paused, fmt):
    assert is_flattened(paused['files'][fmt])
    equal, where = files_equal(raw_file(paused, fmt), paused['files'][raw_of(fmt)])
    assert equal, f'makedumpfile -R of {fmt} differs from {raw_of(fmt)}: {where}'


# ---------------------------------------------------------------- layout

@pytest.mark.parametrize('fmt', ALL_KDUMP)
def test_header(paused, fmt):
    h = KdumpHeader(raw_file(paused, fmt))
    assert h.signature == b'KDUMP   '
    assert h.header_version == 6
    assert h.status == FORMAT_FLAG[codec_of(fmt)]
    assert h.block_size == PAGE
    assert h.nr_cpus == SMP
    assert h.machine == 'x86_64' and h.sysname == 'Linux'
    assert h.timestamp == (0, 0) or h.timestamp[0] > 0
    max_mapnr = MEM // PAGE
    assert h.max_mapnr == max_mapnr and h.max_mapnr_64 == max_mapnr
    assert h.bitmap_blocks == 2 * math.ceil(math.ceil(max_mapnr / 8) / PAGE)
    assert (h.dump_level, h.split, h.phys_base) == (1, 0, 0)
    assert h.offset_note == PAGE + 104
    notes = ElfCore(paused['core']).note_bytes
    assert h.size_note == len(notes)
    assert h.sub_hdr_size == math.ceil((104 + len(notes)) / PAGE)
    with open(h.path, 'rb') as f:
        f.seek(h.offset_note)
        assert f.read(h.size_note) == notes
    # the demo guest has no VMCOREINFO
    assert (h.offset_vmcoreinfo, h.size_vmcoreinfo) == (0, 0)
    assert (h.offset_eraseinfo, h.size_eraseinfo) == (0, 0)


@pytest.mark.parametrize('fmt', KDUMP_RAW_FORMATS)
def test_bitmaps_and_page_descriptors(paused, fmt):
    kd, mem = KdumpFile(paused['files'][fmt]), paused['mem']
    npages = MEM // PAGE
    flag = FORMAT_FLAG[codec_of(fmt)]
    # both bitmaps: every RAM page, nothing past the end
    assert kd.bitmap1 == kd.bitmap2
    assert kd.bitmap2[:npages // 8] == b'\xff' * (npages // 8)
    assert not any(kd.bitmap2[npages // 8:])
    assert kd.dumpable == list(range(npages))
    # one shared zero page at the start of the data area
    zero_descs = {(d['offset'], d['size'], d['flags'], d['page_flags'])
                  for d in (kd.desc(p) for p in range(npages) if mem.zero(p))}
    assert zero_descs == {(kd.data_offset, PAGE, 0, 0)}
    assert kd.data[kd.data_offset:kd.data_offset + PAGE] == bytes(PAGE)
    # data pages: raw only if they would not compress, packed one after another;
    # a page identical to an earlier one may point at the bytes of an earlier copy
    # instead (not always the first: another page may have taken its slot in the
    # writer's table, and then the next copy is written again)
    end = kd.data_offset + PAGE
    checked = {True: 0, False: 0}
    copies = {}
    for pfn in range(npages):
        if mem.zero(pfn):
            continue
        d = kd.desc(pfn)
        assert d['page_flags'] == 0
        known = copies.setdefault(mem.page(pfn), [])
        if d['offset'] != end:
            assert d in known, (pfn, d, end, known)
            continue
        known.append(d)
        end += d['size']
        c = paused['compressible'].get(pfn)
        if pfn not in paused['compressible']:
            c = paused['compressible'][pfn] = compressible(mem.page(pfn))
        if d['flags'] == 0:
            assert d['size'] == PAGE and c is not True, (pfn, d)
            assert kd.stored(pfn) == mem.page(pfn), pfn
        else:
            assert d['flags'] == flag and 0 < d['size'] < PAGE and c is not False, (pfn, d)
            if flag == FORMAT_FLAG['zlib']:
                assert zlib.decompress(kd.stored(pfn)) == mem.page(pfn), pfn
        if c is not None:
            checked[c] += 1
    assert end == len(kd.data)
    assert checked[True] > 1000 and checked[False] > 1000, checked


@pytest.mark.parametrize('fmt', ['kdump-raw-lzo', 'kdump-zstd'])
def test_crash_reads_header(paused, fmt):
    out = crash_header(paused['files'][fmt])
    assert 'signature: "KDUMP   "' in out, out
    assert re.search(r'header_version: 6\b', out), out
    assert re.search(r'nr_cpus: %d\b' % SMP, out), out
    assert re.search(r'num_prstatus_notes: %d\b' % SMP, out), out
    assert re.search(r'machine: x86_64\b', out), out
    assert re.search(r'max_mapnr: %d\b' % (MEM // PAGE), out), out
    if fmt in KDUMP_FORMATS:
        assert '[FLAT]' in out


# ---------------------------------------------------------------- determinism

def test_same_guest_same_bytes(paused):
    q, d = paused['q'], paused['dir']
    dump(q, d / 'again', 'kdump-raw-zstd')
    assert files_equal(d / 'again', paused['files']['kdump-raw-zstd']) == (True, None)
    (d / 'again').unlink()


@pytest.mark.parametrize('fmt', ['kdump-raw-zstd', 'kdump-zlib'])
def test_thread_count_does_not_change_output(make_vm, tmp_path, fmt):
    """Processes with 1, 2 and 3 compression threads dump the same RAM (a -mem-path file
    of mixed pages, -accel none) to the same bytes."""
    size = 32 << 20
    make_mem_file(tmp_path / 'ram', size)
    outs = []
    for threads in (1, 2, 3):
        ram = tmp_path / f'ram{threads}'
        shutil.copyfile(tmp_path / 'ram', ram)
        vm = make_vm('-mem-path', str(ram), mem='32M', smp=SMP, accel='none',
                     env={'MINIVM_DUMP_THREADS': threads})
        vm.qmp.cmd('stop')
        out = tmp_path / f'out{threads}'
        dump(vm.qmp, out, fmt)
        if threads == 1:
            pmemsave(vm.qmp, tmp_path / 'mem', size)
        vm.close()
        outs.append(out)
    for other in outs[1:]:
        assert files_equal(outs[0], other) == (True, None), other
    raw = outs[0] if fmt in KDUMP_RAW_FORMATS else reassemble(outs[0], tmp_path / 'reassembled')
    k = kdumpfile_open(raw)
    mem = MemImage(tmp_path / 'mem')
    pfns = range(size // PAGE)
    assert compare_reader_with_mem(k, mem, pfns) == []


def test_repeated_pages_point_at_an_earlier_copy(make_vm, tmp_path):
    """Pages identical to an earlier page (0xcc poison, copies of one random page) are
    stored once; their descriptors share an earlier copy's bytes. libkdumpfile reads every
    page back, makedumpfile -R rebuilds the raw file from the flattened one byte for byte,
    and MINIVM_DUMP_DEDUP=0 writes every copy again into a file larger by exactly them."""
    size = 32 << 20
    make_mem_file(tmp_path / 'ram', size)
    mem = None
    outs = {}
    for dedup in ('1', '0'):
        ram = tmp_path / f'ram{dedup}'
        shutil.copyfile(tmp_path / 'ram', ram)
        vm = make_vm('-mem-path', str(ram), mem='32M', smp=SMP, accel='none',
                     env={'MINIVM_DUMP_DEDUP': dedup})
        vm.qmp.cmd('stop')
        for fmt in ('kdump-raw-zlib', 'kdump-zlib'):
            outs[dedup, fmt] = tmp_path / f'{fmt}-{dedup}'
            dump(vm.qmp, outs[dedup, fmt], fmt)
        if mem is None:
            pmemsave(vm.qmp, tmp_path / 'mem', size)
            mem = MemImage(tmp_path / 'mem')
        vm.close()
    shared, plain = KdumpFile(outs['1', 'kdump-raw-zlib']), KdumpFile(outs['0', 'kdump-raw-zlib'])
    nonzero = [p for p in range(size // PAGE) if not mem.zero(p)]
    # each page has new bytes at the end of the data so far, or an earlier copy's
    copies, end, repeats, repeat_bytes = {}, shared.data_offset + PAGE, 0, 0
    for pfn in nonzero:
        d = shared.desc(pfn)
        known = copies.setdefault(mem.page(pfn), [])
        if d['offset'] == end:
            end += d['size']
            known.append(d)
        else:
            assert d in known, (pfn, d, known)
            repeats += 1
            repeat_bytes += d['size']
    assert end == len(shared.data)
    possible = sum(n - 1 for n in Counter(mem.page(p) for p in nonzero).values())
    # a copy is written again only when another page took its slot in the writer's table
    assert possible > 500 and repeats > 0.9 * possible, (repeats, possible)
    assert len({plain.desc(p)['offset'] for p in nonzero}) == len(nonzero)
    assert len(plain.data) == len(shared.data) + repeat_bytes
    for raw in (outs['1', 'kdump-raw-zlib'], outs['0', 'kdump-raw-zlib']):
        assert compare_reader_with_mem(kdumpfile_open(raw), mem, range(size // PAGE)) == []
    rebuilt = reassemble(outs['1', 'kdump-zlib'], tmp_path / 'rebuilt')
    assert files_equal(rebuilt, outs['1', 'kdump-raw-zlib']) == (True, None)


@pytest.mark.parametrize('fmt', ['kdump-raw-lzo', 'kdump-lzo'])
def test_long_output_leaves_the_page_cache(make_vm, tmp_path, fmt):
    """A kdump file of tens of MiB keeps only its last windows in the page cache (the rest
    is written back during the dump and let go), and still reads back page for page
    (libkdumpfile; makedumpfile -R for the flattened one)."""
    size = 256 << 20
    make_mem_file(tmp_path / 'ram', size)
    vm = make_vm('-mem-path', str(tmp_path / 'ram'), mem='256M', smp=SMP, accel='none')
    vm.qmp.cmd('stop')
    out = tmp_path / 'out'
    dump(vm.qmp, out, fmt)
    cached, total = page_cache_bytes(out), os.path.getsize(out)
    pmemsave(vm.qmp, tmp_path / 'mem', size)
    vm.close()
    # two 16 MiB windows, a 4 MiB buffer, the headers and page descriptors
    assert total > 64 << 20 and cached < 44 << 20, (total, cached)
    raw = out if fmt in KDUMP_RAW_FORMATS else reassemble(out, tmp_path / 'raw')
    mem = MemImage(tmp_path / 'mem')
    assert compare_reader_with_mem(kdumpfile_open(raw), mem, range(size // PAGE)) == []


# ---------------------------------------------------------------- HMP and fd:

HMP_FLAGS = {'-z': 'kdump-zlib', '-l': 'kdump-lzo', '-s': 'kdump-snappy', '-Z': 'kdump-zstd',
             '-z -R': 'kdump-raw-zlib', '-l -R': 'kdump-raw-lzo', '-s -R': 'kdump-raw-snappy',
             '-Z -R': 'kdump-raw-zstd'}


@pytest.mark.parametrize('flags', list(HMP_FLAGS))
def test_hmp_kdump_flags(paused, flags):
    q, d = paused['q'], paused['dir']
    path = d / 'hmp.kdump'
    q.events.clear()
    out = q.hmp(f'dump-guest-memory {flags} {path}')
    assert out.strip() == ''
    ev = q.wait_event('DUMP_COMPLETED', timeout=30)
    assert ev['data']['result'] == {'total': MEM, 'status': 'completed', 'completed': MEM}
    assert files_equal(path, paused['files'][HMP_FLAGS[flags]]) == (True, None)
    assert q.hmp('info dump').splitlines() == ['Status: completed']
    assert status(q) == 'paused'
    path.unlink()


def test_hmp_raw_without_compression_writes_elf(paused):
    """QEMU's HMP ignores -R without -z/-l/-s: the dump is the ELF core."""
    q, path = paused['q'], paused['dir'] / 'raw-alone.elf'
    q.events.clear()
    assert q.hmp(f'dump-guest-memory -R {path}').strip() == ''
    assert q.wait_event('DUMP_COMPLETED', timeout=30)['data']['result']['status'] == 'completed'
    assert files_equal(path, paused['core']) == (True, None)
    path.unlink()


@pytest.mark.parametrize('fmt,kind', [('kdump-zstd', 'pipe'), ('kdump-lzo', 'pipe'),
                                      ('kdump-snappy', 'socket')])
def test_flattened_to_pipe(paused, fmt, kind):
    q, d = paused['q'], paused['dir']
    if kind == 'socket':
        data = read_socket_dump(q, fmt)
    else:
        reader = PipeReader()
        try:
            reader.hand_to(q, 'kpipe')
            assert q.cmd('dump-guest-memory', paging=False, protocol='fd:kpipe',
                         format=fmt) == {}
            data = reader.data()
        finally:
            reader.close()
    flat = d / 'pipe.flat'
    flat.write_bytes(data)
    assert files_equal(flat, paused['files'][fmt]) == (True, None)
    out = reassemble(flat, d / 'pipe.raw')
    assert files_equal(out, paused['files'][raw_of(fmt)]) == (True, None)
    ev = q.wait_event('DUMP_COMPLETED', timeout=5)
    assert ev['data']['result']['status'] == 'completed'
    flat.unlink()
    out.unlink()


def test_split_ram_bitmaps(make_vm, tmp_path):
    """-m 3584M: RAM below 3 GiB and from 4 GiB; max_mapnr is the end of RAM, the hole has no
    bits, and pages above 4 GiB read back through libkdumpfile."""
    vm = make_vm(mem='3584M', accel='none')
    q = vm.qmp
    q.cmd('stop')
    dump(q, tmp_path / 'big', 'kdump-raw-lzo')
    kd = KdumpFile(tmp_path / 'big')
    end = (1 << 32) + (512 << 20)
    assert kd.max_mapnr_64 == end // PAGE and kd.max_mapnr == end // PAGE
    assert kd.bitmap_blocks == 2 * math.ceil(end // PAGE / 8 / PAGE)
    below, above = (3 << 30) // PAGE, (1 << 32) // PAGE
    assert kd.bitmap1 == kd.bitmap2
    assert kd.dumpable == list(range(below)) + list(range(above, end // PAGE))
    assert kd.bit(kd.bitmap1, below - 1) and not kd.bit(kd.bitmap1, below)
    assert not kd.bit(kd.bitmap1, above - 1) and kd.bit(kd.bitmap1, above)
    k = kdumpfile_open(tmp_path / 'big')
    for addr in (0x8000, (3 << 30) - PAGE, 1 << 32, end - PAGE):
        out = tmp_path / 'p'
        assert q.hmp('pmemsave %d %d %s' % (addr, PAGE, out)).strip() == ''
        assert kdumpfile_page(k, addr // PAGE) == out.read_bytes(), hex(addr)
    assert q.cmd('query-dump') == {'status': 'completed', 'completed': 3584 << 20,
                                   'total': 3584 << 20}


def test_append_only_fd_is_written_in_order(paused):
    """A file opened O_APPEND (a shell's >>) appends whatever offset pwrite names, so it
    is written as a stream: an ELF with the file ELF's bytes, a flattened kdump after
    what the file already holds, and kdump-raw refused, as for a pipe."""
    q, d = paused['q'], paused['dir']
    path = d / 'append.out'

    def append_fd(name, keep=b''):
        path.write_bytes(keep)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            send_fd(q, name, fd)
        finally:
            os.close(fd)

    append_fd('a1')
    assert q.cmd('dump-guest-memory', paging=False, protocol='fd:a1') == {}
    assert files_equal(path, paused['core']) == (True, None)
    append_fd('a2', b'kept')
    assert q.cmd('dump-guest-memory', paging=False, protocol='fd:a2', format='kdump-lzo') == {}
    data = path.read_bytes()
    assert data[:4] == b'kept' and data[4:] == paused['files']['kdump-lzo'].read_bytes()
    append_fd('a3')
    err = dump_error(q, protocol='fd:a3', format='kdump-raw-lzo')
    assert err == {'class': 'GenericError', 'desc': 'kdump-raw formats require a seekable file'}
    path.unlink()


def test_raw_format_through_fd_to_a_file(paused):
    q, d = paused['q'], paused['dir']
    path = d / 'fd.kdump'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        send_fd(q, 'kfile', fd)
    finally:
        os.close(fd)
    assert q.cmd('dump-guest-memory', paging=False, protocol='fd:kfile',
                 format='kdump-raw-snappy') == {}
    assert files_equal(path, paused['files']['kdump-raw-snappy']) == (True, None)
    path.unlink()
