#!/usr/bin/env python3
"""make bench: dump the same guest memory with QEMU and with minivm, in one run.

1. Boot the Linux fixture (Debian cloud kernel + busybox, tests/fixtures) in QEMU under
   software emulation with --ram of memory, let it panic, keep it paused.
2. Time QEMU's dump-guest-memory for elf and kdump-zlib (median of --runs).
3. Restore QEMU's ELF of that paused guest into minivm (-load-vmcore) and time every
   format minivm writes on the same memory.
4. Scaling: the demo guest (KVM) at 1, 2, 4 and 8 GiB, elf and kdump-zlib, seconds per GiB.

Prints a table: format, QEMU s, minivm s, ratio, output size, disk use, minivm peak RSS
above guest RAM, s/GiB.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'functional'))
sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))

import linux_fixture as lf  # noqa: E402
import qmp as harness  # noqa: E402

MIB = 1 << 20


def disk_use(path):
    return os.stat(path).st_blocks * 512


def rss_kib(pid, field):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    with open(f'/proc/{pid}/clear_refs', 'w') as f:
        f.write('5')


def boot_qemu_fixture(ram, work, log):
    """Boot the Linux fixture in QEMU and leave it paused after the panic."""
    ver = lf.kernel_version()
    initrd = os.path.join(work, 'initrd.img')
    serial = os.path.join(work, 'serial.log')
    qmp_path = os.path.join(work, 'qemu-qmp.sock')
    lf.build_initramfs(ver, initrd)
    args = lf.qemu_args({'mem': ram, 'smp': 2}, '/boot/vmlinuz-' + ver, initrd, serial, qmp_path)
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    qmp = lf.QMP(qmp_path)
    deadline = time.monotonic() + lf.TIMEOUT
    while True:
        text = open(serial, errors='replace').read() if os.path.exists(serial) else ''
        if re.search(r'end Kernel panic - not syncing: .*' + lf.PANIC_TEXT, text):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError('the fixture did not panic:\n' + text[-2000:])
        time.sleep(0.5)
    qmp.cmd('stop')
    log(f'QEMU: Linux fixture with {ram} panicked and is paused')
    return proc, qmp


def time_dumps(cmd, fmt, out, runs, pid=None):
    times, peaks = [], []
    for _ in range(runs):
        if os.path.exists(out):
            os.unlink(out)
        # Let the file system finish writing back and discarding the previous output
        # (this disk is mounted with online discard) before the clock starts.
        os.sync()
        time.sleep(0.5)
        if pid:
            reset_peak_rss(pid)
            base = rss_kib(pid, 'VmRSS')
        t = time.monotonic()
        cmd('dump-guest-memory', paging=False, protocol='file:' + out, format=fmt)
        times.append(time.monotonic() - t)
        if pid:
            peaks.append(rss_kib(pid, 'VmHWM') - base)
    return statistics.median(times), max(peaks) if peaks else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    ap.add_argument('--ram', default='1G')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--scaling', default='1,2,4,8', help='demo guest sizes in GiB ("" to skip)')
    args = ap.parse_args()
    harness.MINIVM = (ROOT / args.build / 'minivm').resolve()
    work = tempfile.mkdtemp(prefix='minivm-bench-', dir=os.environ.get('TMPDIR', '/var/tmp'))
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    rows = []
    try:
        proc, qmp = boot_qemu_fixture(args.ram, work, log)
        qemu = {}
        try:
            for fmt in ('elf', 'kdump-zlib'):
                out = os.path.join(work, f'qemu.{fmt}')
                secs, _ = time_dumps(lambda n, **a: qmp.cmd(n, timeout=600, **a), fmt, out,
                                     args.runs)
                qemu[fmt] = (secs, os.path.getsize(out), disk_use(out))
                log(f'QEMU {fmt}: {secs:.2f} s')
            with lf.contextlib.suppress(Exception):
                qmp.cmd('quit')
        finally:
            qmp.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        vmcore = os.path.join(work, 'qemu.elf')

        def minivm_rows(formats, env, label):
            """Time minivm's dumps of the restored guest; one table row per format."""
            with harness.Minivm('-load-vmcore', vmcore, accel='none', workdir=work,
                                env=env) as vm:
                for fmt in formats or vm.qmp.cmd('query-dump-guest-memory-capability')[
                        'formats']:
                    out = os.path.join(work, f'minivm.{fmt}')
                    secs, peak = time_dumps(vm.qmp.cmd, fmt, out, args.runs, vm.proc.pid)
                    q = qemu.get(fmt)
                    rows.append((fmt + label, q[0] if q else None, secs, os.path.getsize(out),
                                 disk_use(out), peak, q[1] if q else None))
                    os.unlink(out)
                    log(f'minivm {fmt}{label}: {secs:.2f} s')

        minivm_rows(None, None, '')
        # the same dumps writing repeated pages again: what sharing them is worth here
        minivm_rows(('kdump-zlib', 'kdump-zstd'), {'MINIVM_DUMP_DEDUP': '0'}, ' (no dedup)')
        os.unlink(vmcore)
        print()
        print(f'Linux fixture ({args.ram}, panicked), median of {args.runs} runs:')
        print()
        print('| format | QEMU s | minivm s | ratio | size MiB | QEMU size MiB | disk MiB | '
              'peak RSS above RAM MiB |')
        print('|---|---|---|---|---|---|---|---|')
        for fmt, qs, ms, size, disk, peak, qsize in rows:
            q_secs = f'{qs:.2f}' if qs else '-'
            ratio = f'{qs / ms:.1f}x' if qs else '-'
            q_size = f'{qsize / MIB:.1f}' if qsize else '-'
            print(f'| {fmt} | {q_secs} | {ms:.2f} | {ratio} | {size / MIB:.1f} | {q_size} | '
                  f'{disk / MIB:.1f} | {peak / 1024:.1f} |')
        big = lf.get_fixture('big', log=log)
        with harness.Minivm('-load-vmcore', big['elf'], accel='none', workdir=work) as vm:
            out = os.path.join(work, 'paging.elf')
            reset_peak_rss(vm.proc.pid)
            base = rss_kib(vm.proc.pid, 'VmRSS')
            t = time.monotonic()
            vm.qmp.cmd('dump-guest-memory', paging=True, protocol='file:' + out)
            secs = time.monotonic() - t
            peak = rss_kib(vm.proc.pid, 'VmHWM') - base
            loads = subprocess.run(['readelf', '-l', '-W', out], capture_output=True,
                                   text=True).stdout.count('LOAD')
            os.unlink(out)
        print()
        print(f'paging=true ELF of the 4 GiB Linux fixture: {secs:.2f} s, {loads} PT_LOADs, '
              f'peak RSS above guest RAM {peak / 1024:.1f} MiB')
        if args.scaling and harness.kvm_available():
            print()
            print(f'Demo guest scaling (KVM, 2 vCPUs), median of {args.runs} runs:')
            print()
            print('| GiB | format | s | s/GiB | peak RSS above RAM MiB |')
            print('|---|---|---|---|---|')
            for gib in (int(x) for x in args.scaling.split(',')):
                with harness.Minivm(mem=f'{gib}G', smp=2, workdir=work) as vm:
                    vm.qmp.cmd('stop')
                    for fmt in ('elf', 'kdump-zlib'):
                        out = os.path.join(work, f'scale.{fmt}')
                        secs, peak = time_dumps(vm.qmp.cmd, fmt, out, args.runs, vm.proc.pid)
                        os.unlink(out)
                        print(f'| {gib} | {fmt} | {secs:.2f} | {secs / gib:.2f} | '
                              f'{peak / 1024:.1f} |', flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
