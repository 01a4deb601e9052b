#!/usr/bin/env python3
"""make bench: dump the same guest memory with QEMU and with minivm, in one run.

1. Boot the Linux fixture (Debian cloud kernel + busybox, tests/fixtures) in QEMU under
   software emulation with --ram of memory, let it panic, keep it paused.
2. Time every page compressor on that guest's non-zero pages, one page at a time
   (bench/pagecodecs). Restore QEMU's ELF of the paused guest into minivm (-load-vmcore,
   twice: once with MINIVM_DUMP_DEDUP=0) and, in each of --runs rounds, time QEMU's
   dump-guest-memory for elf and kdump-zlib and then every format minivm writes on the
   same memory.
3. Filtered: the 4 GiB fixture at makedumpfile's dump level 31, minivm's one step against
   QEMU's ELF dump followed by makedumpfile -c -d 31, and against minivm's unfiltered dump.
4. Scaling: the demo guest (KVM) at 1, 2, 4 and 8 GiB, elf and kdump-zlib, seconds per GiB;
   without KVM, the kinds of pages the demo guest writes, restored into anonymous RAM. The
   four guests run side by side and each of --runs rounds dumps every one of them.

Prints a table: format, QEMU s, minivm s, ratio, output size, disk use, the memory a dump
adds to minivm (peak anonymous RSS above what it was before its first dump, from one more,
untimed dump), s/GiB.
"""
import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'functional'))
sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))

import demo_pattern  # noqa: E402
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


def watch(vm):
    """What PeakAnonRss needs of a minivm that has not dumped yet: its pid and anonymous RSS."""
    return vm.proc.pid, rss_kib(vm.proc.pid, 'RssAnon')


class PeakAnonRss:
    """The most anonymous memory a minivm holds above what it held before its first dump,
    while the block runs, sampled every 20 ms (KiB): what a dump allocates, and what earlier
    dumps left allocated. Anonymous only: a -mem-path guest's RAM is a file mapping whose pages
    come in as a dump reads them (page cache, not the dump's memory), and restored guest RAM
    is resident before the dump starts."""

    def __init__(self, watched):
        self.pid, self.base = watched

    def __enter__(self):
        self.peak = rss_kib(self.pid, 'RssAnon')
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid, 'RssAnon'))

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, rss_kib(self.pid, 'RssAnon'))
        self.added = self.peak - self.base


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


def quit_qemu(proc, qmp):
    """End the QEMU that boot_qemu_fixture started."""
    with contextlib.suppress(Exception):
        qmp.cmd('quit')
    qmp.close()
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def timed_dump(cmd, fmt, out, watched=None, paging=False, inspect=None):
    """One dump to a new file: (seconds, memory the dump added in KiB or None, file size,
    disk use, inspect(out) or None). The file is removed afterwards."""
    if os.path.exists(out):
        os.unlink(out)
    # Let the file system finish writing back and discarding the previous output
    # (this disk is mounted with online discard) before the clock starts.
    os.sync()
    time.sleep(0.5)
    with PeakAnonRss(watched) if watched else contextlib.nullcontext() as rss:
        t = time.monotonic()
        cmd('dump-guest-memory', paging=paging, protocol='file:' + out, format=fmt)
        secs = time.monotonic() - t
    peak = rss.added if watched else None
    size, disk = os.path.getsize(out), disk_use(out)
    seen = inspect(out) if inspect else None
    os.unlink(out)
    return secs, peak, size, disk, seen


def time_dumps(cmd, fmt, out, runs, watched):
    """Median seconds of `runs` dumps, and the memory one more dump added: sampling /proc
    beside a dump of a tenth of a second slows it by up to 10 % here, so timed dumps are
    not sampled."""
    secs = statistics.median(timed_dump(cmd, fmt, out)[0] for _ in range(runs))
    return secs, timed_dump(cmd, fmt, out, watched)[1]


@contextlib.contextmanager
def scaling_guest(gib, kvm, work):
    """A minivm with gib GiB of RAM filled like the demo guest's, in its own directory
    `work`. Without KVM: minivm's ELF of a -mem-path file of such pages, restored
    (-load-vmcore) into anonymous RAM, where a running guest's memory is; a shared file
    mapping is not what is being measured, and here its pages can cost a fault's time
    again after the process has slept."""
    if kvm:
        with harness.Minivm(mem=f'{gib}G', smp=2, workdir=work) as vm:
            yield vm
        return
    os.makedirs(work, exist_ok=True)
    ram, core = os.path.join(work, 'guest-ram'), os.path.join(work, 'guest.elf')
    demo_pattern.make_mem_file(ram, gib << 30, zero_below=demo_pattern.FILL_START)
    with harness.Minivm('-mem-path', ram, mem=f'{gib}G', smp=2, accel='none',
                        workdir=work) as vm:
        vm.qmp.cmd('stop')
        vm.qmp.cmd('dump-guest-memory', paging=False, protocol='file:' + core)
    os.unlink(ram)
    try:
        # restoring GiBs of data takes a while before the monitor listens
        with harness.Minivm('-load-vmcore', core, accel='none', workdir=work,
                            start_timeout=600) as vm:
            os.unlink(core)
            yield vm
    finally:
        if os.path.exists(core):
            os.unlink(core)


def scaling(args, work):
    """Seconds per GiB of elf and kdump-zlib at each guest size. The guests sit side by
    side and every round dumps each of them, so a change in this machine's speed during
    the run touches every size alike (as QEMU's and minivm's dumps alternate above)."""
    sizes = [int(x) for x in args.scaling.split(',')]
    kvm = harness.kvm_available()
    formats = ('elf', 'kdump-zlib')
    out = os.path.join(work, 'scale.out')
    with contextlib.ExitStack() as stack:
        vms = {}
        for gib in sizes:
            vms[gib] = stack.enter_context(
                scaling_guest(gib, kvm, os.path.join(work, f'scale-{gib}')))
            vms[gib].qmp.cmd('stop')
        watched = {gib: watch(vm) for gib, vm in vms.items()}
        secs = {}
        for _ in range(args.runs):
            for gib, vm in vms.items():
                for fmt in formats:
                    secs.setdefault((gib, fmt), []).append(
                        timed_dump(vm.qmp.cmd, fmt, out)[0] / gib)
        added = {(gib, fmt): timed_dump(vm.qmp.cmd, fmt, out, watched[gib])[1]
                 for gib, vm in vms.items() for fmt in formats}
    print()
    print(f'Scaling, {args.runs} interleaved rounds over the guests side by side: ' + (
        'the demo guest (KVM, 2 vCPUs)' if kvm else
        'no KVM here, so the kinds of pages the demo guest writes (zero, text, random, '
        'repeated), from a -mem-path file, restored into anonymous RAM as a running guest '
        'has it') + ':')
    print()
    print('| GiB | format | s | s/GiB median | s/GiB min–max | memory added MiB |')
    print('|---|---|---|---|---|---|')
    median = {k: statistics.median(v) for k, v in secs.items()}
    for (gib, fmt), per_gib in secs.items():
        print(f'| {gib} | {fmt} | {median[gib, fmt] * gib:.2f} | {median[gib, fmt]:.2f} | '
              f'{min(per_gib):.2f}–{max(per_gib):.2f} | {added[gib, fmt] / 1024:.1f} |')
    for fmt in formats:
        rows = [median[gib, fmt] for gib in sizes]
        mean = statistics.mean(rows)
        print(f'{fmt}: s/GiB medians within {100 * (min(rows) / mean - 1):+.0f} % / '
              f'{100 * (max(rows) / mean - 1):+.0f} % of their mean')


# ---- live dumps (KVM): what a dump costs a running guest

LIVE_GUEST = 'tests/guests/live-counter.elf'


def live_region_starts(mem, ncpus):
    """Where each vCPU's region of the live-counter guest starts (as the guest computes):
    vCPU i works in RAM block i % nblocks, shared evenly by the vCPUs of that block."""
    split = mem >= 0xe0000000                      # the pc machine's RAM layout
    blocks = [(0, 0xc0000000), (1 << 32, mem - 0xc0000000)] if split else [(0, mem)]
    starts = []
    for cpu in range(ncpus):
        b, k = cpu % len(blocks), cpu // len(blocks)
        n = (ncpus - b + len(blocks) - 1) // len(blocks)
        start, end = max(blocks[b][0], 4 << 20), blocks[b][0] + blocks[b][1]
        end -= (2 << 20) if b == 0 else 0
        starts.append(start + ((((end - start) >> 12) * k // n) << 12))
    return starts


def live_wait_resident(q, starts):
    """Until every vCPU has finished its first pass: guest RAM is all resident."""
    deadline = time.monotonic() + 600
    while min(int(q.hmp(f'xp /1xg {a:#x}').split()[-1], 16) for a in starts) < 2:
        assert time.monotonic() < deadline, 'the live-counter guest makes no progress'
        time.sleep(0.2)


def live_passes(q, starts):
    """Passes so far, summed over the vCPUs: the first word of each region holds the number
    of the last pass over it (read with HMP xp while the guest runs)."""
    return sum(int(q.hmp(f'xp /1xg {a:#x}').split()[-1], 16) for a in starts)


def event_time(ev):
    return ev['timestamp']['seconds'] + ev['timestamp']['microseconds'] / 1e6


def live_measure(q, watched, starts, out, fmt, live):
    """One dump of the running guest: (pause s, dump s, guest passes/s during it, KiB added)."""
    time.sleep(1)
    q.events.clear()
    p0, t0 = live_passes(q, starts), time.monotonic()
    with PeakAnonRss(watched) as rss:
        t = time.monotonic()
        q.cmd('dump-guest-memory', paging=False, protocol='file:' + out, format=fmt, live=live)
        secs = time.monotonic() - t
    rate = (live_passes(q, starts) - p0) / (time.monotonic() - t0)
    os.unlink(out)
    pause = event_time(q.wait_event('RESUME')) - event_time(q.wait_event('STOP'))
    return pause, secs, rate, rss.added


def live_undisturbed(q, starts, seconds=2.0):
    time.sleep(1)
    p0, t0 = live_passes(q, starts), time.monotonic()
    time.sleep(seconds)
    return (live_passes(q, starts) - p0) / (time.monotonic() - t0)


def live_dumps(args, work, fmt='kdump-zlib', smp=2):
    """The live-counter test guest rewrites all of its memory without pause (the worst case
    for a live dump: every first write to a page faults). At each size, each round measures
    the guest undisturbed, then a live and a stopped dump of it (alternating which comes
    first): the pause (RESUME minus STOP), the dump's time, the guest's passes per second
    while it ran, and the memory it added to minivm."""
    sizes = [int(x) for x in args.live.split(',')]
    table = []
    for gib in sizes:
        with harness.Minivm('-kernel', str(ROOT / args.build / LIVE_GUEST), mem=f'{gib}G',
                            smp=smp, workdir=os.path.join(work, f'live-{gib}')) as vm:
            vm.wait_serial('live-counter ready', timeout=120)
            starts = live_region_starts(gib << 30, smp)
            live_wait_resident(vm.qmp, starts)
            watched, out = watch(vm), os.path.join(work, 'live.out')
            rates, got = [], {True: [], False: []}
            for r in range(args.runs):
                rates.append(live_undisturbed(vm.qmp, starts))
                for live in ((True, False) if r % 2 == 0 else (False, True)):
                    got[live].append(live_measure(vm.qmp, watched, starts, out, fmt, live))
            print(f'live dumps of {gib} GiB: pauses ' + '; '.join(
                f'{"live" if live else "stopped"} ' + ', '.join(f'{g[0] * 1e3:.1f}' for g in runs)
                + ' ms' for live, runs in got.items()), flush=True)
        table.append((gib, statistics.median(rates), got))
    print()
    print(f'Live dumps ({fmt}) of the live-counter guest ({smp} vCPUs rewriting all of their '
          f'memory), medians of {args.runs} rounds, live and stopped dumps alternated:')
    print()
    print('| GiB | dump | pause ms | dump s | guest passes/s (undisturbed) | memory added MiB |')
    print('|---|---|---|---|---|---|')
    for gib, rate, got in table:
        med = {live: [statistics.median(g[i] for g in runs) for i in range(4)]
               for live, runs in got.items()}
        for live, m in med.items():
            print(f'| {gib} | {"live" if live else "stopped"} | {m[0] * 1e3:.1f} | {m[1]:.2f} | '
                  f'{m[2]:.1f} ({rate:.1f}) | {m[3] / 1024:.1f} |')
        print(f'| {gib} | stopped pause / live pause | {med[False][0] / med[True][0]:.0f}x '
              '| | | |')
def makedumpfile_readable(elf):
    """Let Debian 12's makedumpfile 1.7.2 read QEMU 7.2's ELF: it takes the program headers
    to follow the ELF header, where QEMU 7.2 puts two section headers ("Can't get the
    number of PT_LOAD"). Move them there and drop the section headers (the first few
    hundred bytes of the file are rewritten)."""
    with open(elf, 'r+b') as f:
        head = bytearray(f.read(1 << 16))
        phoff, = struct.unpack_from('<Q', head, 0x20)
        phnum, = struct.unpack_from('<H', head, 0x38)
        head[64:64 + 56 * phnum] = head[phoff:phoff + 56 * phnum]
        struct.pack_into('<QQ', head, 0x20, 64, 0)          # e_phoff, e_shoff
        struct.pack_into('<HHH', head, 0x3a, 0, 0, 0)       # e_shentsize, e_shnum, e_shstrndx
        f.seek(0)
        f.write(head[:64 + 56 * phnum])


def qemu_then_makedumpfile(qemu_cmd, work):
    """What a user does today for a level-31 kdump file of a QEMU guest: QEMU's ELF dump,
    then makedumpfile -c -d 31 on it. (seconds of each step, output size)"""
    elf, out = os.path.join(work, 'qemu-filtered.elf'), os.path.join(work, 'makedumpfile.kdump')
    for path in (elf, out):
        if os.path.exists(path):
            os.unlink(path)
    os.sync()
    time.sleep(0.5)
    t = time.monotonic()
    qemu_cmd('dump-guest-memory', paging=False, protocol='file:' + elf)
    t_elf = time.monotonic()
    makedumpfile_readable(elf)
    subprocess.run(['makedumpfile', '-c', '-d', '31', elf, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_end = time.monotonic()
    size = os.path.getsize(out)
    os.unlink(elf)
    os.unlink(out)
    return t_elf - t, t_end - t_elf, size


def filtered(args, work, log):
    """The 4 GiB Linux fixture at makedumpfile's level 31, in each of --runs rounds: QEMU's
    ELF dump of the paused guest followed by makedumpfile -c -d 31, then minivm (restored
    from QEMU's ELF of the same guest) in one step, kdump-zlib with dump-level 31, and its
    unfiltered kdump-zlib of the guest."""
    proc, qmp = boot_qemu_fixture('4G', work, log)
    try:
        def qemu_cmd(name, **a):
            return qmp.cmd(name, timeout=900, **a)
        vmcore = os.path.join(work, 'qemu-4g.elf')
        qemu_cmd('dump-guest-memory', paging=False, protocol='file:' + vmcore)
        with harness.Minivm('-load-vmcore', vmcore, accel='none', workdir=work,
                            start_timeout=600) as vm:
            os.unlink(vmcore)

            def level31(name, **a):
                return vm.qmp.cmd(name, **a, **{'dump-level': 31})
            out = os.path.join(work, 'filtered.out')
            rows = {}
            for r in range(args.runs):
                rows.setdefault('qemu', []).append(qemu_then_makedumpfile(qemu_cmd, work))
                rows.setdefault('level31', []).append(timed_dump(level31, 'kdump-zlib', out))
                rows.setdefault('full', []).append(timed_dump(vm.qmp.cmd, 'kdump-zlib', out))
                log(f'filtered round {r + 1} of {args.runs}: QEMU elf + makedumpfile '
                    f'{sum(rows["qemu"][-1][:2]):.1f} s, minivm level 31 '
                    f'{rows["level31"][-1][0]:.2f} s, unfiltered {rows["full"][-1][0]:.2f} s')
    finally:
        quit_qemu(proc, qmp)
    med = statistics.median
    q_elf, q_mdf = med(x[0] for x in rows['qemu']), med(x[1] for x in rows['qemu'])
    q_total, q_size = med(x[0] + x[1] for x in rows['qemu']), rows['qemu'][-1][2]
    mine, full = med(x[0] for x in rows['level31']), med(x[0] for x in rows['full'])
    size = rows['level31'][-1][2]
    speedup = med((q[0] + q[1]) / m[0] for q, m in zip(rows['qemu'], rows['level31']))
    print()
    print(f'The 4 GiB Linux fixture at dump level 31 (median of {args.runs} interleaved rounds; '
          'makedumpfile 1.7.2 after moving QEMU 7.2\'s program headers where it reads them):')
    print()
    print('| how | s | size MiB |')
    print('|---|---|---|')
    print(f'| QEMU elf, then makedumpfile -c -d 31 | {q_total:.1f} ({q_elf:.1f} + {q_mdf:.1f}) | '
          f'{q_size / MIB:.1f} |')
    print(f'| minivm kdump-zlib, dump-level 31 | {mine:.2f} | {size / MIB:.1f} |')
    print(f'| minivm kdump-zlib (unfiltered) | {full:.2f} | {rows["full"][-1][2] / MIB:.1f} |')
    print()
    print(f'Targets: output {100 * size / q_size:.0f} % of makedumpfile\'s (<= 105 %); '
          f'{speedup:.0f}x QEMU + makedumpfile end to end (>= 10x); level 31 '
          f'{mine / full:.2f} of the unfiltered kdump-zlib\'s time (<= 1)')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    ap.add_argument('--ram', default='1G')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--scaling', default='1,2,4,8', help='guest sizes in GiB ("" to skip)')
    ap.add_argument('--live', default='1,4,8',
                    help='live-dump guest sizes in GiB (KVM only; "" to skip)')
    ap.add_argument('--only-live', action='store_true', help='run the live-dump part alone')
    ap.add_argument('--no-filtered', dest='filtered', action='store_false',
                    help='skip the 4 GiB fixture at dump level 31')
    args = ap.parse_args()
    harness.MINIVM = (ROOT / args.build / 'minivm').resolve()
    work = tempfile.mkdtemp(prefix='minivm-bench-', dir=os.environ.get('TMPDIR', '/var/tmp'))
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    try:
        log(f'{os.cpu_count()} CPUs, kernel {os.uname().release}, '
            f'KVM {"yes" if harness.kvm_available() else "no"}')
        if args.only_live:
            live_dumps(args, work)
            return 0
        proc, qmp = boot_qemu_fixture(args.ram, work, log)
        try:
            def qemu_cmd(name, **a):
                return qmp.cmd(name, timeout=600, **a)
            vmcore = os.path.join(work, 'qemu.elf')
            qemu_cmd('dump-guest-memory', paging=False, protocol='file:' + vmcore)
            # what each page compressor costs on these pages, one at a time
            codecs = subprocess.run([str(ROOT / args.build / 'bench' / 'pagecodecs'), vmcore],
                                    check=True, capture_output=True, text=True).stdout
            # minivm restores QEMU's ELF of the paused guest, twice: once as it runs, once
            # writing repeated pages again (what sharing them is worth here). QEMU stays
            # paused beside them, and every round times QEMU's dumps and then minivm's, so
            # a change in this machine's speed during the run touches both sides alike.
            with harness.Minivm('-load-vmcore', vmcore, accel='none', workdir=work) as vm, \
                    harness.Minivm('-load-vmcore', vmcore, accel='none',
                                   workdir=os.path.join(work, 'plain'),
                                   env={'MINIVM_DUMP_DEDUP': '0'}) as plain:
                os.unlink(vmcore)
                watched = {vm: watch(vm), plain: watch(plain)}
                rows = [(fmt, fmt, vm) for fmt in
                        vm.qmp.cmd('query-dump-guest-memory-capability')['formats']]
                rows += [(fmt + ' (no dedup)', fmt, plain) for fmt in ('kdump-zlib', 'kdump-zstd')]
                qemu_formats = ('elf', 'kdump-zlib')
                got = {}
                for r in range(args.runs):
                    for fmt in qemu_formats:
                        got.setdefault('QEMU ' + fmt, []).append(
                            timed_dump(qemu_cmd, fmt, os.path.join(work, 'qemu.out')))
                    for name, fmt, m in rows:
                        got.setdefault(name, []).append(
                            timed_dump(m.qmp.cmd, fmt, os.path.join(work, 'minivm.out')))
                    log(f'round {r + 1} of {args.runs}: ' + ', '.join(
                        f'{name} {runs[-1][0]:.2f} s' for name, runs in got.items()))
                added = {name: timed_dump(m.qmp.cmd, fmt, os.path.join(work, 'minivm.out'),
                                          watched[m])[1] for name, fmt, m in rows}
        finally:
            quit_qemu(proc, qmp)
        print()
        print(f'Linux fixture ({args.ram}, panicked), median of {args.runs} interleaved rounds '
              '(ratio: median of the rounds\' QEMU s / minivm s):')
        print()
        print('| format | QEMU s | minivm s | ratio | size MiB | QEMU size MiB | disk MiB | '
              'memory added MiB |')
        print('|---|---|---|---|---|---|---|---|')
        for name, fmt, _ in rows:
            mine, theirs = got[name], got.get('QEMU ' + fmt)
            secs = statistics.median(g[0] for g in mine)
            size, disk, peak = mine[-1][2], mine[-1][3], added[name]
            q_secs = ratio = q_size = '-'
            if theirs:
                q_secs = f'{statistics.median(g[0] for g in theirs):.2f}'
                ratio = f'{statistics.median(q[0] / g[0] for q, g in zip(theirs, mine)):.1f}x'
                q_size = f'{theirs[-1][2] / MIB:.1f}'
            print(f'| {name} | {q_secs} | {secs:.2f} | {ratio} | {size / MIB:.1f} | {q_size} | '
                  f'{disk / MIB:.1f} | {peak / 1024:.1f} |')
        # the medians leave out what a VMM that dumps once pays: its first kdump, whose
        # buffers are all new memory (dear on some machines: docs/performance.md, "This machine")
        q_first, first = got['QEMU kdump-zlib'][0][0], got['kdump-zlib'][0][0]
        print()
        print(f'First kdump of the process (round 1): kdump-zlib {first:.2f} s, '
              f'{q_first / first:.1f}x QEMU\'s {q_first:.2f} s in the same round; '
              f'kdump-zlib (no dedup), the other process\'s first dump, '
              f'{got["kdump-zlib (no dedup)"][0][0]:.2f} s')
        big = lf.get_fixture('big', log=log)
        with harness.Minivm('-load-vmcore', big['elf'], accel='none', workdir=work) as vm:
            watched = watch(vm)
            out = os.path.join(work, 'paging.elf')
            secs, _, _, _, loads = timed_dump(
                vm.qmp.cmd, 'elf', out, paging=True,
                inspect=lambda out: subprocess.run(['readelf', '-l', '-W', out],
                                                   capture_output=True,
                                                   text=True).stdout.count('LOAD'))
            peak = timed_dump(vm.qmp.cmd, 'elf', out, watched, paging=True)[1]
        print()
        print(f'paging=true ELF of the 4 GiB Linux fixture: {secs:.2f} s, {loads} PT_LOADs, '
              f'memory added {peak / 1024:.1f} MiB')
        # a guest that has written almost nothing: the cost of zero pages alone
        with harness.Minivm(mem='8G', smp=2, accel='none', workdir=work) as vm:
            vm.qmp.cmd('stop')
            secs, peak = time_dumps(vm.qmp.cmd, 'kdump-raw-zlib', os.path.join(work, 'idle.out'),
                                    args.runs, watch(vm))
        print(f'kdump-raw-zlib of an idle 8 GiB guest (-accel none, nothing written): '
              f'{secs:.3f} s, memory added {peak / 1024:.1f} MiB')
        print()
        print('Page compressors (bench/pagecodecs, one thread) on the ' + codecs)
        if args.filtered:
            filtered(args, work, log)
        if args.scaling:
            scaling(args, work)
        if args.live and harness.kvm_available():
            live_dumps(args, work)
        elif args.live:
            print('\nLive dumps: skipped, /dev/kvm is not available here.')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
