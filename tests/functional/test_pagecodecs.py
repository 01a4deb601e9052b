"""bench/pagecodecs, the helper behind make bench's table of page compressors."""
import re
import subprocess
import zlib

from dumpcheck import PAGE, dump, make_mem_file
from qmp import BUILD

ROWS = ['zlib, level 1', 'libdeflate, level 1', 'libdeflate, level 2', 'lzo1x-1',
        'lzo1x-1, 12-bit dictionary', 'snappy', 'zstd, level -3', 'zstd, level -1', 'zstd, level 1',
        'zstd, level 3']


def test_pagecodecs_counts_every_non_zero_page(make_vm, tmp_path):
    """On minivm's ELF of mixed pages: one row per compressor, the page count, and zlib's
    output what Python's zlib (the same library) makes of the same pages, each
    incompressible page counted whole (random pages are 30 % of these, so every
    compressor's output lies between the random pages' size and the non-zero pages')."""
    size = 16 << 20
    make_mem_file(tmp_path / 'ram', size)
    vm = make_vm('-mem-path', str(tmp_path / 'ram'), mem='16M', accel='none')
    vm.qmp.cmd('stop')
    dump(vm.qmp, tmp_path / 'core.elf')
    vm.close()
    out = subprocess.run([str(BUILD / 'bench' / 'pagecodecs'), '--rounds', '1',
                          str(tmp_path / 'core.elf')],
                         check=True, capture_output=True, text=True).stdout
    ram = (tmp_path / 'ram').read_bytes()
    pages = [ram[o:o + PAGE] for o in range(0, size, PAGE)]
    pages = [p for p in pages if any(p)]
    assert re.match(rf'{len(pages)} non-zero pages of ', out), out
    rows = {m[1]: float(m[2]) for m in re.finditer(r'^\| ([^|(]+?)(?: \([^|]*\))? \| [\d.]+ \| '
                                                    r'([\d.]+) \|', out, re.M)}
    assert list(rows) == ROWS, out
    expect = sum(min(len(zlib.compress(p, 1)), PAGE) for p in pages)
    assert abs(rows['zlib, level 1'] - expect / 2**20) <= 0.005, (rows, expect)
    random = sum(PAGE for p in pages if len(zlib.compress(p, 9)) >= PAGE)
    assert all(random / 2**20 <= v <= len(pages) * PAGE / 2**20 for v in rows.values()), rows
