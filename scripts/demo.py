#!/usr/bin/env python3
"""make demo: boot the built-in demo guest on KVM (2 vCPUs, 1 GiB), show both vCPUs
ready, stop and continue it over QMP, dump it in every format, then live (the guest
running), check every dump with a real reader, and print a table."""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'functional'))

import demo_pattern  # noqa: E402
from qmp import Minivm, kvm_available  # noqa: E402

RAM = 1 << 30
SMP = 2
SAMPLE_PAGES = 3000


HEARTBEAT_PFN = 3          # the page the running demo guest keeps writing


def sample_pfns():
    rng = random.Random(42)
    pfns = {0, 1, RAM // 4096 - 1} | set(rng.sample(range(RAM // 4096), SAMPLE_PAGES))
    return sorted(pfns - {HEARTBEAT_PFN})


def check_pages(path, raw):
    """Read sample pages through libkdumpfile and compare them with guest RAM (all but the
    heartbeat page, which a running guest writes)."""
    import kdumpfile
    k = kdumpfile.kdumpfile(str(path))
    bad = 0
    for pfn in sample_pfns():
        data = k.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn * 4096, 4096)
        if data != raw[pfn * 4096:(pfn + 1) * 4096]:
            bad += 1
    return bad


def check_elf(path, raw, tmp):
    r = subprocess.run(['readelf', '-h', '-l', '-n', '-W', str(path)], capture_output=True,
                       text=True)
    if r.returncode or 'arning' in r.stdout + r.stderr:
        return 'readelf FAILED'
    g = subprocess.run(['gdb', '-batch', '-nx', '-ex', 'info threads', '-c', str(path)],
                       capture_output=True, text=True)
    # rows of the 'info threads' table: '* 1    LWP 1   ...' (not gdb's '[New LWP 1]' lines)
    threads = len(re.findall(r'^\*?\s*\d+\s+LWP\s', g.stdout, re.M))
    bad = check_pages(path, raw)
    gdb = f'gdb {threads} threads' + ('' if threads == SMP else f' (not {SMP}: FAILED)')
    return f'readelf ok, {gdb}, libkdumpfile {"ok" if not bad else f"{bad} BAD pages"}'


def check_kdump(path, raw, tmp, flattened):
    target = path
    note = ''
    if flattened:
        target = Path(tmp) / (path.name + '.reassembled')
        with open(path, 'rb') as src:
            r = subprocess.run(['makedumpfile', '-R', str(target)], stdin=src,
                               capture_output=True, text=True)
        if r.returncode:
            return 'makedumpfile -R FAILED'
        note = 'makedumpfile -R ok, '
    bad = check_pages(target, raw)
    if flattened:
        target.unlink()
    return note + f'libkdumpfile {"ok" if not bad else f"{bad} BAD pages"}'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    args = ap.parse_args()
    os.environ['MINIVM_BUILD'] = str((ROOT / args.build).resolve())
    import qmp
    qmp.MINIVM = Path(os.environ['MINIVM_BUILD']) / 'minivm'
    tmp = tempfile.mkdtemp(prefix='minivm-demo-', dir=os.environ.get('TMPDIR', '/var/tmp'))
    args = ()
    if not kvm_available():
        print('demo: /dev/kvm is not available here, so the demo guest cannot run: minivm '
              'runs with -accel none over a -mem-path file of the kinds of pages it fills '
              'RAM with (zero, text, random, repeated)')
        ram = demo_pattern.make_mem_file(Path(tmp) / 'guest-ram', RAM,
                                         zero_below=demo_pattern.FILL_START)
        args = ('-mem-path', str(ram))
    t0 = time.time()
    with Minivm(*args, mem='1G', smp=SMP, workdir=tmp) as vm:
        if vm.accel == 'kvm':
            print(vm.serial_path.read_text().strip())
            print(f'demo guest ready in {time.time() - t0:.1f} s')
        print('QMP query-status:', vm.qmp.cmd('query-status')['status'])
        vm.qmp.cmd('stop')
        print('QMP stop -> ', vm.qmp.cmd('query-status')['status'])
        vm.qmp.cmd('cont')
        print('QMP cont -> ', vm.qmp.cmd('query-status')['status'])
        vm.qmp.cmd('stop')
        raw_path = Path(tmp) / 'ram.bin'
        vm.qmp.hmp(f'pmemsave 0 {RAM} {raw_path}')
        raw = raw_path.read_bytes()
        formats = vm.qmp.cmd('query-dump-guest-memory-capability')['formats']
        rows = []
        for fmt in formats:
            out = Path(tmp) / f'dump.{fmt}'
            start = time.time()
            vm.qmp.cmd('dump-guest-memory', paging=False, protocol=f'file:{out}', format=fmt)
            secs = time.time() - start
            st = out.stat()
            if fmt == 'elf':
                verdict = check_elf(out, raw, tmp)
            else:
                verdict = check_kdump(out, raw, tmp, flattened='-raw-' not in fmt)
            rows.append((fmt, secs, st.st_size, st.st_blocks * 512, verdict))
            out.unlink()
        # live: the guest runs on and stops only to be write-protected
        vm.qmp.cmd('cont')
        for fmt in ('elf', 'kdump-raw-zstd'):
            out = Path(tmp) / f'live.{fmt}'
            vm.qmp.events.clear()
            start = time.time()
            vm.qmp.cmd('dump-guest-memory', paging=False, protocol=f'file:{out}', format=fmt,
                       live=True)
            secs = time.time() - start
            stop, resume = vm.qmp.wait_event('STOP'), vm.qmp.wait_event('RESUME')
            pause = (resume['timestamp']['seconds'] - stop['timestamp']['seconds']) * 1e3 + \
                (resume['timestamp']['microseconds'] - stop['timestamp']['microseconds']) / 1e3
            verdict = (check_elf(out, raw, tmp) if fmt == 'elf' else
                       check_kdump(out, raw, tmp, flattened=False))
            st = out.stat()
            rows.append((f'{fmt} live', secs, st.st_size, st.st_blocks * 512,
                         f'guest paused {pause:.1f} ms; {verdict}'))
            out.unlink()
        raw_path.unlink()
    print()
    print(f'{"format":20} {"time s":>7} {"size MiB":>9} {"disk MiB":>9}  check')
    for fmt, secs, size, disk, verdict in rows:
        print(f'{fmt:20} {secs:7.2f} {size / 2**20:9.1f} {disk / 2**20:9.1f}  {verdict}')
    failed = [r for r in rows if 'BAD' in r[4] or 'FAILED' in r[4]]
    shutil.rmtree(tmp, ignore_errors=True)
    print()
    print('demo: all dumps verified' if not failed else f'demo: {len(failed)} dumps FAILED')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
