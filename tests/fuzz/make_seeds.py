#!/usr/bin/python3
"""Regenerate the fuzzing seeds in tests/fuzz/seeds/<target>/.

    /usr/bin/python3 tests/fuzz/make_seeds.py [--build BUILD] [--only TARGET]

QMP and HMP seeds are written from the lists below. vmcore seeds are real dumps,
kept small (< 200 KiB each):
  - minivm (-accel none -m 4M): kdump in every format (flattened and raw), ELF
    filtered with begin/length, with and without paging; kdump files whose pages
    repeat (descriptors sharing data);
  - QEMU (-m 4 -S, when qemu-system-x86_64 is installed): the same formats;
  - the Linux fixture (tests/fixtures/cache/small/qemu.elf, when built): its
    notes (NT_PRSTATUS, "QEMU" CPU state, VMCOREINFO) with a few pages of RAM,
    as an ELF and, restored into minivm with -load-vmcore, as kdump files;
  - the synthetic files of the vmcore unit test (build/tests/unit/test-vmcore),
    caught before the test deletes them.
vmcoreinfo seeds are the note segments of those ELF files plus a few texts.
pagefilter seeds are the synthetic Linux kernels of build/tests/unit/test-filter, which
writes them when MINIVM_FUZZ_SEED_DIR names a directory.
Seeds are inputs only: a changed seed set never changes what a test expects.
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEEDS = HERE / 'seeds'
MAX_SEED = 200 << 10


def qmp(cmd, **args):
    msg = {'execute': cmd}
    if args:
        msg['arguments'] = args
    return json.dumps(msg)


# ---- QMP: one script per seed (the target negotiates capabilities first) ----

QMP_SEEDS = {
    'queries': [qmp('query-version'), qmp('query-commands'), qmp('query-status'),
                qmp('query-cpus-fast'), qmp('query-dump'),
                qmp('query-dump-guest-memory-capability')],
    'run-control': [qmp('stop'), qmp('query-status'), qmp('cont'), qmp('query-status'),
                    qmp('stop'), qmp('cont'), qmp('quit')],
    'ids': ['{"execute": "query-status", "id": 1}', '{"execute": "nope", "id": "x"}',
            '{"execute": "stop", "id": {"a": [1, 2.5, null, true]}}',
            '{"id": 7, "execute": "query-dump"}'],
    'envelope-errors': ['[]', '"str"', '42', '{}', '{"execute": 1}', '{"exec-oob": "stop"}',
                        '{"execute": "stop", "arguments": []}', '{"execute": "stop", "x": 1}',
                        '{"execute": "qmp_capabilities"}',
                        '{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}',
                        '{"execute": "query-status", "arguments": {"extra": 1}}'],
    'json-errors': ['{"execute": }', '{"execute": "stop"', '}', ']]', '{"a": "\\u00e9\\ud83d\\ude00"}',
                    '{"execute": "\\u0071uit"}', '{"a": "\\x"}', 'nul', '{"a": 1e999}',
                    '[' * 40 + ']' * 40, '{"execute": "stop"}{"execute": "cont"}'],
    'hmp-via-qmp': [qmp('human-monitor-command', **{'command-line': c}) for c in
                    ['help', 'info status', 'info registers', 'info cpus', 'info ramblocks',
                     'info dump', 'xp /4xg 0x200000', 'x /8i 0', 'stop', 'cont', 'bogus',
                     'help dump-guest-memory']] +
                   [qmp('human-monitor-command', **{'command-line': 'info status',
                                                     'cpu-index': 5})],
    'fd': [qmp('getfd', fdname='dumpfd'), qmp('closefd', fdname='dumpfd'),
           qmp('dump-guest-memory', paging=False, protocol='fd:dumpfd'),
           qmp('dump-guest-memory', paging=False, protocol='fd:')],
    'dump-elf': [qmp('dump-guest-memory', paging=False, protocol='file:/tmp/fuzz-elf'),
                 qmp('query-dump'),
                 qmp('dump-guest-memory', paging=True, protocol='file:/tmp/fuzz-elf-p'),
                 qmp('dump-guest-memory', paging=False, protocol='file:/tmp/fuzz-elf',
                     begin=0x200000, length=0x4000),
                 qmp('dump-guest-memory', paging=True, protocol='file:/tmp/fuzz-elf',
                     begin=0x1000, length=-1)],
    'dump-errors': [qmp('dump-guest-memory', paging=False, protocol='file:/tmp/x', begin=0),
                    qmp('dump-guest-memory', paging=False, protocol='file:/tmp/x', length=1),
                    qmp('dump-guest-memory', paging=False, protocol='file:/tmp/x', begin=-1,
                        length=1),
                    qmp('dump-guest-memory', paging=False, protocol='file:/tmp/x', begin=0,
                        length=0),
                    qmp('dump-guest-memory', paging=False, protocol='file:/tmp/x',
                        begin=0x7fffffffffffffff, length=0x7fffffffffffffff),
                    qmp('dump-guest-memory', paging=True, protocol='file:/tmp/x',
                        format='kdump-zlib'),
                    qmp('dump-guest-memory', paging=False, protocol='file:/tmp/x',
                        format='win-dmp'),
                    qmp('dump-guest-memory', paging=False, protocol='tcp:1'),
                    qmp('dump-guest-memory', paging=False, protocol='file:/tmp/x',
                        format='bogus'),
                    qmp('dump-guest-memory', protocol='file:/tmp/x'),
                    qmp('dump-cancel')],
    'dump-detach': [qmp('dump-guest-memory', paging=False, protocol='file:/tmp/fuzz-d',
                        detach=True, format='kdump-zstd'),
                    qmp('query-dump'), qmp('dump-cancel'), qmp('cont'),
                    qmp('dump-guest-memory', paging=False, protocol='file:/tmp/fuzz-d2'),
                    qmp('query-dump')],
    'dump-running': [qmp('cont'),
                     qmp('dump-guest-memory', paging=False, protocol='file:/tmp/fuzz-r',
                         detach=True),
                     qmp('query-status'), qmp('query-dump'), qmp('stop')],
}
for fmt in ['kdump-zlib', 'kdump-lzo', 'kdump-snappy', 'kdump-zstd', 'kdump-raw-zlib',
            'kdump-raw-lzo', 'kdump-raw-snappy', 'kdump-raw-zstd']:
    QMP_SEEDS['dump-' + fmt] = [qmp('dump-guest-memory', paging=False,
                                    protocol='file:/tmp/fuzz-' + fmt, format=fmt),
                                qmp('query-dump')]

# ---- HMP: one command per line ----

HMP_SEEDS = {
    'help': ['help', '?', 'help info', 'help x', 'help nosuch'],
    'info': ['info', 'info status', 'info cpus', 'info registers', 'info ramblock',
             'info ramblocks', 'info dump', 'info nosuch'],
    'run-control': ['stop', 's', 'info status', 'cont', 'c', 'info status', 'q', 'quit'],
    'examine': ['xp 0x200000', 'xp /4xg 0x200000', 'xp /16xb 0x200000', 'xp /3dw 0x200000',
                'xp /2uh 0x200000', 'xp /5c 0x200000', 'xp /2o 0x200000', 'xp /x 0xfffffffff',
                'x /4xg 0x200000', 'x /2i 0', 'x', 'x /4', 'x 0x100000 extra', 'xp -1',
                'x /2xg 0xffffffff80000000'],
    'memsave': ['memsave 0x200000 4096 /tmp/fuzz-mem', 'pmemsave 0 8192 /tmp/fuzz-pmem',
                'pmemsave 0x7fffff 2 /tmp/fuzz-pmem', 'memsave 0 1', 'pmemsave a b c'],
    'dump': ['dump-guest-memory /tmp/fuzz-hd', 'dump-guest-memory -p /tmp/fuzz-hd',
             'dump-guest-memory /tmp/fuzz-hd 0x200000 0x4000',
             'dump-guest-memory -z /tmp/fuzz-hd', 'dump-guest-memory -l -R /tmp/fuzz-hd',
             'dump-guest-memory -s /tmp/fuzz-hd', 'dump-guest-memory -Z -R /tmp/fuzz-hd',
             'dump-guest-memory -d -z /tmp/fuzz-hd', 'info dump', 'dump-cancel'],
    'dump-errors': ['dump-guest-memory', 'dump-guest-memory -z -l /tmp/x',
                    'dump-guest-memory -R /tmp/x', 'dump-guest-memory -w /tmp/x',
                    'dump-guest-memory /tmp/x 1', 'dump-guest-memory /tmp/x a b',
                    'dump-guest-memory /tmp/x 0 0', 'dump-guest-memory /tmp/x -5 1',
                    'dump-guest-memory -z /tmp/x 0 4096', 'dump-guest-memory /a /b /c /d',
                    'dump-cancel'],
    'parse': ['', '   ', '"unterminated', "'single quoted'", 'info "status"', 'x\\ y',
              'nosuch command', '\t\tinfo\tstatus', 'help \\', '#comment'],
}


def write_text_seeds():
    for target, seeds, sep in (('fuzz_qmp', QMP_SEEDS, '\n'), ('fuzz_hmp', HMP_SEEDS, '\n')):
        d = SEEDS / target
        d.mkdir(parents=True, exist_ok=True)
        for name, lines in seeds.items():
            (d / name).write_text(sep.join(lines) + '\n')


# ---- vmcore seeds ----

class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.buf = b''
        self.recv()
        self.cmd('qmp_capabilities')

    def recv(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('QMP closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self.recv()
            if 'event' in r:
                continue
            if 'error' in r:
                raise RuntimeError(f'{name}: {r["error"]}')
            return r['return']


def run_vmm(argv, sock, fn):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        fn(Qmp(sock))
    finally:
        p.kill()
        p.wait()


DUMP_FORMATS = ['kdump-zlib', 'kdump-lzo', 'kdump-snappy', 'kdump-zstd', 'kdump-raw-zlib',
                'kdump-raw-lzo', 'kdump-raw-snappy', 'kdump-raw-zstd']


def dump_set(q, tmp, prefix, elf_ranges, formats):
    """Dump each format into tmp; returns {seed name: path}."""
    out = {}
    avail = set(q.cmd('query-dump-guest-memory-capability')['formats'])
    for fmt in formats:
        if fmt not in avail:
            continue
        path = tmp / f'{prefix}-{fmt}'
        q.cmd('dump-guest-memory', paging=False, protocol=f'file:{path}', format=fmt)
        out[path.name] = path
    for i, (begin, length, paging) in enumerate(elf_ranges):
        path = tmp / f'{prefix}-elf{"-paging" if paging else ""}-{i}'
        q.cmd('dump-guest-memory', paging=paging, protocol=f'file:{path}', begin=begin,
              length=length)
        out[path.name] = path
    return out


def minivm_seeds(build, tmp):
    sock = tmp / 'minivm.sock'
    res = {}

    def go(q):
        res.update(dump_set(q, tmp, 'minivm', [(0x200000, 0x3000, False),
                                               (0x100000, 0x2000, True)], DUMP_FORMATS))
    run_vmm([str(build / 'minivm'), '-accel', 'none', '-m', '4M', '-S',
             '-qmp', f'unix:{sock},server=on,wait=off'], sock, go)
    return res


def minivm_repeat_seeds(build, tmp):
    """kdump files whose descriptors share page data: RAM (a -mem-path file) holding
    pages of 0xcc and copies of one text page among zero pages."""
    sock = tmp / 'repeats.sock'
    ram = tmp / 'repeats.ram'
    page = (b'minivm repeated page ' * 200)[:4096]
    pages = [b'\xcc' * 4096 if i % 3 == 0 else page if i % 3 == 1 else bytes(4096)
             for i in range(24)]
    ram.write_bytes(bytes(0x100000) + b''.join(pages) + bytes((4 << 20) - 0x100000 - 24 * 4096))
    res = {}

    def go(q):
        res.update(dump_set(q, tmp, 'minivm-repeats', [], ['kdump-raw-zlib', 'kdump-lzo']))
    run_vmm([str(build / 'minivm'), '-accel', 'none', '-m', '4M', '-S', '-mem-path', str(ram),
             '-qmp', f'unix:{sock},server=on,wait=off'], sock, go)
    return res


def qemu_seeds(tmp):
    qemu = shutil.which('qemu-system-x86_64')
    if not qemu:
        print('make_seeds: no qemu-system-x86_64, skipping QEMU seeds')
        return {}
    sock = tmp / 'qemu.sock'
    res = {}

    def go(q):
        res.update(dump_set(q, tmp, 'qemu', [(0xf0000, 0x2000, False), (0, 0x1000, True)],
                            [f for f in DUMP_FORMATS if 'zstd' not in f]))
    run_vmm([qemu, '-M', 'pc', '-accel', 'tcg', '-m', '4', '-S', '-display', 'none',
             '-nodefaults', '-qmp', f'unix:{sock},server=on,wait=off'], sock, go)
    return res


def shrink_elf(src, dst, pages=2):
    """The notes and the first `pages` pages of the first few PT_LOADs of an ELF64 core."""
    with open(src, 'rb') as f:
        eh = f.read(64)
        assert eh[:4] == b'\x7fELF' and eh[4] == 2
        phoff, = struct.unpack_from('<Q', eh, 32)
        phentsize, phnum = struct.unpack_from('<HH', eh, 54)
        f.seek(phoff)
        phdrs = [struct.unpack('<IIQQQQQQ', f.read(phentsize)[:56]) for _ in range(phnum)]
        notes = [p for p in phdrs if p[0] == 4]
        loads = [p for p in phdrs if p[0] == 1 and p[5] > 0 and p[4] < (64 << 20)][:2]
        keep = notes + loads
        off = 64 + 56 * len(keep)
        body, new = b'', []
        for p in keep:
            ptype, flags, poff, vaddr, paddr, filesz, memsz, align = p
            size = filesz if ptype == 4 else min(filesz, pages * 4096)
            f.seek(poff)
            data = f.read(size)
            new.append(struct.pack('<IIQQQQQQ', ptype, flags, off + len(body), vaddr, paddr,
                                   size, size if ptype == 4 else size, align))
            body += data
        eh = bytearray(eh)
        struct.pack_into('<Q', eh, 32, 64)
        struct.pack_into('<HH', eh, 54, 56, len(keep))
        struct.pack_into('<Q', eh, 40, 0)          # no section headers
        struct.pack_into('<HHH', eh, 58, 0, 0, 0)
        with open(dst, 'wb') as o:
            o.write(bytes(eh) + b''.join(new) + body)
    return [p for p in notes]


def linux_seeds(build, tmp):
    src = ROOT / 'tests/fixtures/cache/small/qemu.elf'
    if not src.exists():
        print('make_seeds: no Linux fixture (tests/fixtures/cache/small/qemu.elf), skipping')
        return {}, []
    elf = tmp / 'linux-qemu-elf'
    shrink_elf(src, elf)
    res = {elf.name: elf}
    sock = tmp / 'linux.sock'

    def go(q):
        res.update(dump_set(q, tmp, 'linux-minivm', [], ['kdump-zlib', 'kdump-raw-snappy',
                                                          'kdump-raw-zstd', 'kdump-lzo']))
    run_vmm([str(build / 'minivm'), '-load-vmcore', str(elf),
             '-qmp', f'unix:{sock},server=on,wait=off'], sock, go)
    return res, [elf]


SHIM = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int unlink(const char *path)
{
    static int (*real)(const char *);
    const char *dir = getenv("CAPTURE_DIR");
    if (!real) real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    if (dir && strstr(path, "minivm-vmcore-")) {
        char dst[4096];
        const char *base = strrchr(path, '/');
        snprintf(dst, sizeof(dst), "%s/%s", dir, base ? base + 1 : path);
        link(path, dst);
    }
    return real(path);
}
'''


def unit_seeds(build, tmp):
    test = build / 'tests/unit/test-vmcore'
    cc = shutil.which('cc') or shutil.which('gcc')
    if not test.exists() or not cc:
        print('make_seeds: no test-vmcore or C compiler, skipping unit-test seeds')
        return {}
    (tmp / 'shim.c').write_text(SHIM)
    subprocess.run([cc, '-shared', '-fPIC', '-o', str(tmp / 'shim.so'), str(tmp / 'shim.c'),
                    '-ldl'], check=True)
    cap = tmp / 'unit'
    cap.mkdir()
    env = dict(os.environ, LD_PRELOAD=str(tmp / 'shim.so'), CAPTURE_DIR=str(cap),
               TMPDIR=str(tmp))
    subprocess.run([str(test)], env=env, stdout=subprocess.DEVNULL, check=False)
    return {'unit-' + p.name: p for p in sorted(cap.iterdir()) if unit_wanted(p.name)}


def unit_wanted(name):
    """The unit test's well-formed files and its small broken ones; its many one-field
    variants (kd-*, note-*, load-*, ...) are what the fuzzer's mutations produce anyway,
    and would make the seed set megabytes."""
    if name in ('elf-short', 'flat-short', 'flat-elf', 'short-zlib'):
        return True
    return not name.startswith(('kd-', 'note-', 'load-', 'elf-', 'flat-', 'short-'))


def elf_notes(path):
    data = Path(path).read_bytes()
    if len(data) < 64 or data[:4] != b'\x7fELF' or data[4] != 2:
        return None
    try:
        phoff, = struct.unpack_from('<Q', data, 32)
        phnum, = struct.unpack_from('<H', data, 56)
        out = b''
        for i in range(phnum):
            ptype, _, off, _, _, filesz = struct.unpack_from('<IIQQQQ', data, phoff + 56 * i)
            if ptype == 4:
                out += data[off:off + filesz]
    except struct.error:
        return None
    return out or None


def merge(target, files, fuzz_build):
    """The subset of files (name -> path) that libFuzzer's -merge keeps for its coverage,
    or all of them when the fuzz build is absent."""
    binary = fuzz_build / target
    if not binary.exists():
        print(f'make_seeds: no {binary} (tests/fuzz/run.sh build): keeping every {target} seed')
        return files
    with tempfile.TemporaryDirectory() as cand, tempfile.TemporaryDirectory() as out, \
            tempfile.TemporaryDirectory() as scratch:
        by_hash = {}
        for name, path in files.items():
            data = Path(path).read_bytes()
            h = hashlib.sha1(data).hexdigest()
            by_hash.setdefault(h, name)
            (Path(cand) / h).write_bytes(data)
        subprocess.run([str(binary), '-merge=1', out, cand], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, env=dict(os.environ, TMPDIR=scratch))
        kept = {by_hash[p.name]: files[by_hash[p.name]] for p in Path(out).iterdir()}
    print(f'make_seeds: {target}: -merge kept {len(kept)} of {len(files)} candidates')
    return kept


def note(name, ntype, desc):
    n = name.encode() + b'\0'
    pad = lambda b: b + b'\0' * (-len(b) % 4)
    return struct.pack('<III', len(n), len(desc), ntype) + pad(n) + pad(desc)


VMCOREINFO = (b'OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a12180\n'
              b'SYMBOL(_stext)=ffffffff81000000\nSYMBOL(swapper_pg_dir)=ffffffff8260a000\n'
              b'NUMBER(phys_base)=-16\nNUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=1c200000\n'
              b'LENGTH(mem_section)=2048\nCRASHTIME=1700000000\n')


def write_vmcore_seeds(build, fuzz_build, only):
    tmp = Path(tempfile.mkdtemp(prefix='minivm-seeds-'))
    try:
        files = {}
        files.update(minivm_seeds(build, tmp))
        files.update(minivm_repeat_seeds(build, tmp))
        files.update(qemu_seeds(tmp))
        lin, _ = linux_seeds(build, tmp)
        files.update(lin)
        files.update(unit_seeds(build, tmp))
        if only in (None, 'fuzz_vmcore'):
            d = SEEDS / 'fuzz_vmcore'
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            small = {}
            for name, path in sorted(files.items()):
                size = path.stat().st_size
                if size > MAX_SEED:
                    print(f'make_seeds: {name} is {size} bytes, over {MAX_SEED}: skipped')
                    continue
                small[name] = path
            for name, path in sorted(merge('fuzz_vmcore', small, fuzz_build).items()):
                shutil.copyfile(path, d / name)
        if only in (None, 'fuzz_vmcoreinfo'):
            d = SEEDS / 'fuzz_vmcoreinfo'
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            for name, path in sorted(files.items()):
                n = elf_notes(path) if path.stat().st_size <= (64 << 20) else None
                if n and len(n) <= MAX_SEED and ('linux' in name or name in (
                        'minivm-elf-0', 'qemu-elf-0')):
                    (d / f'notes-{name}').write_bytes(n)
            (d / 'text').write_bytes(VMCOREINFO)
            (d / 'note-vmcoreinfo').write_bytes(note('VMCOREINFO', 0, VMCOREINFO))
            (d / 'notes-mixed').write_bytes(note('CORE', 1, b'\1' * 336) +
                                            note('QEMU', 0, b'\2' * 440) +
                                            note('VMCOREINFO', 0, VMCOREINFO[:40]))
            (d / 'note-hex-edges').write_bytes(note('VMCOREINFO', 0,
                b'KERNELOFFSET=ffffffffffffffff\nSYMBOL(_stext)=\nNUMBER(phys_base)='
                b'0x8000000000000000\nPAGESIZE=-0x10\nOSRELEASE\n='))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_pagefilter_seeds(build):
    test = build / 'tests/unit/test-filter'
    if not test.exists():
        print(f'make_seeds: no {test}, skipping fuzz_pagefilter seeds')
        return
    d = SEEDS / 'fuzz_pagefilter'
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    subprocess.run([str(test)], env=dict(os.environ, MINIVM_FUZZ_SEED_DIR=str(d)),
                   stdout=subprocess.DEVNULL, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--build', default=os.environ.get('MINIVM_BUILD', ROOT / 'build'),
                    type=Path)
    ap.add_argument('--fuzz-build', default=ROOT / 'build-fuzz', type=Path,
                    help='libFuzzer targets (tests/fuzz/run.sh build) used to -merge the '
                         'vmcore candidates down to a minimal covering set')
    ap.add_argument('--only', choices=['fuzz_qmp', 'fuzz_hmp', 'fuzz_vmcore',
                                       'fuzz_vmcoreinfo', 'fuzz_pagefilter'])
    a = ap.parse_args()
    if a.only in (None, 'fuzz_qmp', 'fuzz_hmp'):
        write_text_seeds()
    if a.only in (None, 'fuzz_vmcore', 'fuzz_vmcoreinfo'):
        write_vmcore_seeds(a.build.resolve(), a.fuzz_build.resolve(), a.only)
    if a.only in (None, 'fuzz_pagefilter'):
        write_pagefilter_seeds(a.build.resolve())
    for d in sorted(SEEDS.iterdir()):
        files = list(d.iterdir())
        print(f'{d.name}: {len(files)} seeds, largest {max(f.stat().st_size for f in files)} bytes')


if __name__ == '__main__':
    sys.exit(main())
