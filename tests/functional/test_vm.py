"""The VM itself: demo guest on KVM, heartbeats, RAM layout, -mem-path, -accel none, -kernel."""
import mmap
import os
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest

from qmp import BUILD, MINIVM, Minivm, kvm_available, NEED_KVM


BOOT_INFO = 0x1000
BOOT_MAGIC = 0x6f6f62766d696e6d
DEMO_SEED = 0x6d696e69766d3031
HEARTBEAT = 0x3040                  # MINIVM_HEARTBEAT_GPA + 64, one u64 per vCPU
STACKS, STACK_SIZE = 0x100000, 0x4000
GUEST_CODE = range(0x200000, 0x210000)
DEMO_ELF = BUILD / 'guest' / 'demo-guest.elf'
GiB, MiB = 1 << 30, 1 << 20




def build_guest(tmp_path, name, asm):
    """A freestanding static x86_64 ELF linked at 0x200000 (see include/demo_abi.h)."""
    src = tmp_path / f'{name}.S'
    out = tmp_path / f'{name}.elf'
    src.write_text('\t.text\n\t.globl _start\n_start:\n' + asm + '\n')
    subprocess.run(['gcc', '-nostdlib', '-static', '-no-pie', '-Wl,-Ttext-segment=0x200000',
                    '-Wl,--build-id=none', '-o', str(out), str(src)], check=True,
                   capture_output=True)
    return out


def elf_entry(path):
    with open(path, 'rb') as f:
        head = f.read(32)
    assert head[:4] == b'\x7fELF'
    return struct.unpack_from('<Q', head, 24)[0]


def heartbeats(vm, n):
    out = vm.qmp.hmp(f'xp /{n}xg {HEARTBEAT:#x}')
    return [int(v, 16) for l in out.splitlines() if ':' in l for v in l.split(':')[1].split()]


def ramblocks(vm):
    rows = []
    for l in vm.qmp.hmp('info ramblocks').splitlines()[1:]:
        if l.strip():
            name, _, _, off, used, total = l.split()
            rows.append((name, int(off, 16), int(used, 16), int(total, 16)))
    return rows


def registers(vm):
    text = vm.qmp.hmp('info registers').replace('\r', '')
    parts = re.split(r'^CPU#(\d+)\s*$', text, flags=re.M)
    if len(parts) == 1:                 # one vCPU, no header
        parts = ['', '0', text]
    regs = {}
    for i in range(1, len(parts), 2):
        r = dict((k.strip(), v) for k, v in re.findall(r'([A-Z0-9]+ ?)=([0-9a-f]{8,16})\b',
                                                      parts[i + 1]))
        r['CPL'] = re.search(r'CPL=(\d)', parts[i + 1]).group(1)
        regs[int(parts[i])] = r
    return regs


# ---- demo guest on KVM ----

@NEED_KVM
def test_demo_guest_ready_lines(make_vm):
    vm = make_vm(smp=2)
    text = vm.serial_path.read_text()
    for i in range(2):
        assert text.splitlines().count(f'minivm demo guest: cpu {i} ready') == 1, text


@NEED_KVM
def test_heartbeat_advances_running_and_freezes_paused(make_vm):
    vm = make_vm(smp=2)
    a = heartbeats(vm, 2)
    time.sleep(0.3)
    b = heartbeats(vm, 2)
    assert all(y > x for x, y in zip(a, b)), (a, b)
    vm.qmp.cmd('stop')
    vm.qmp.wait_event('STOP', timeout=10)
    c = heartbeats(vm, 2)
    time.sleep(0.5)
    d = heartbeats(vm, 2)
    assert c == d, 'heartbeat moved while paused'
    vm.qmp.cmd('cont')
    vm.qmp.wait_event('RESUME', timeout=10)
    time.sleep(0.3)
    e = heartbeats(vm, 2)
    assert all(y > x for x, y in zip(d, e)), (d, e)


@NEED_KVM
def test_stop_cont_cycles_keep_guest_alive(make_vm):
    vm = make_vm(smp=2)
    for _ in range(5):
        vm.qmp.cmd('stop')
        vm.qmp.cmd('cont')
    time.sleep(0.1)
    a = heartbeats(vm, 2)
    time.sleep(0.3)
    assert all(y > x for x, y in zip(a, heartbeats(vm, 2)))
    assert vm.qmp.cmd('query-status')['status'] == 'running'


@NEED_KVM
def test_registers_ring3_in_guest_code(make_vm):
    vm = make_vm(smp=2)
    regs = registers(vm)
    assert sorted(regs) == [0, 1]
    for i, r in regs.items():
        assert int(r['RIP'], 16) in GUEST_CODE, (i, r['RIP'])
        assert r['CPL'] == '3', (i, r)
        # (IOPL is not checked here: this host's KVM layer runs ring-3 code with IOPL 0
        # whatever KVM_SET_REGS asked for; port I/O works through the TSS I/O bitmap.)


@NEED_KVM
def test_mem_path_is_shared(make_vm, tmp_path):
    f = tmp_path / 'guest-ram'
    vm = make_vm('-mem-path', str(f), mem='64M')
    assert f.stat().st_size == 64 * MiB
    with open(f, 'rb') as ram:
        ram.seek(BOOT_INFO)
        assert struct.unpack('<QQ', ram.read(16)) == (BOOT_MAGIC, DEMO_SEED)
    # Another process mapping the file sees the live guest RAM. (mmap, not read():
    # this host's file system does not keep read() coherent with shared mappings.)
    with open(f, 'rb') as ram, mmap.mmap(ram.fileno(), 0, mmap.MAP_SHARED,
                                         mmap.PROT_READ) as m:
        assert struct.unpack_from('<Q', m, BOOT_INFO)[0] == BOOT_MAGIC

        def beat():
            return struct.unpack_from('<Q', m, HEARTBEAT)[0]
        a = beat()
        time.sleep(0.3)
        assert beat() > a, 'heartbeat in the shared file does not move'
        vm.qmp.cmd('stop')
        b = beat()
        assert b == heartbeats(vm, 1)[0], 'file and guest RAM differ'
        time.sleep(0.3)
        assert beat() == b
    assert ramblocks(vm) == [('pc.ram', 0, 64 * MiB, 64 * MiB)]


def test_mem_path_existing_file_is_used(make_vm, tmp_path):
    f = tmp_path / 'ram'
    f.write_bytes(b'')
    vm = make_vm('-S', '-mem-path', str(f), mem='32M', accel='none')
    assert f.stat().st_size == 32 * MiB
    with open(f, 'rb') as ram:
        ram.seek(BOOT_INFO)
        assert struct.unpack('<Q', ram.read(8))[0] == BOOT_MAGIC
    assert vm.qmp.cmd('query-status')['status'] == 'prelaunch'


def test_mem_path_directory(make_vm, tmp_path):
    """As QEMU: a directory gets a file of its own, unlinked at once (nothing is left
    behind in it), and RAM works as in a named file."""
    vm = make_vm('-S', '-mem-path', str(tmp_path), mem='32M', accel='none')
    assert list(tmp_path.iterdir()) == []
    pid = vm.proc.pid
    maps = open(f'/proc/{pid}/maps').read()
    assert re.search(rf'{re.escape(str(tmp_path))}/minivm_back_mem\.\w+ \(deleted\)', maps), maps
    out = vm.qmp.hmp(f'xp /1xg {BOOT_INFO:#x}')
    assert int(out.split(':')[1].split()[0], 16) == BOOT_MAGIC, out


# ---- RAM layout ----

def test_ram_split_at_3_5_gib(make_vm):
    vm = make_vm('-S', mem='3584M', accel='none')
    assert ramblocks(vm) == [('ram-below-4g', 0, 3 * GiB, 3 * GiB),
                             ('ram-above-4g', 4 * GiB, GiB // 2, GiB // 2)]
    # the boot info tells the guest the same layout
    out = vm.qmp.hmp(f'xp /6xg {BOOT_INFO + 0x10:#x}')
    vals = [int(v, 16) for l in out.splitlines() if ':' in l for v in l.split(':')[1].split()]
    assert vals[0] >> 32 == 2, 'boot info nblocks'
    assert vals[2:6] == [0, 3 * GiB, 4 * GiB, GiB // 2], [hex(v) for v in vals]
    # both blocks are readable through xp
    assert 'Cannot access' not in vm.qmp.hmp('xp /1xg 0x100000000')
    assert 'Cannot access' in vm.qmp.hmp('xp /1xg 0xc0000000')


def test_ram_below_split_threshold_is_one_block(make_vm):
    vm = make_vm('-S', mem='3582M', accel='none')
    assert ramblocks(vm) == [('pc.ram', 0, 3582 * MiB, 3582 * MiB)]


# ---- -accel none ----

def test_accel_none_vm(make_vm):
    vm = make_vm(accel='none', smp=2)
    assert vm.qmp.cmd('query-status') == {'status': 'running', 'singlestep': False,
                                          'running': True}
    assert [c['cpu-index'] for c in vm.qmp.cmd('query-cpus-fast')] == [0, 1]
    regs = registers(vm)
    assert sorted(regs) == [0, 1]
    entry = elf_entry(DEMO_ELF) if DEMO_ELF.exists() else None
    for i, r in regs.items():
        rip = int(r['RIP'], 16)
        assert rip in GUEST_CODE
        if entry is not None:
            assert rip == entry, f'CPU#{i} RIP {rip:#x} is not the guest entry {entry:#x}'
        assert r['CPL'] == '3'
        assert int(r['RFL'], 16) & 0x3000 == 0x3000, 'IOPL 3 (include/demo_abi.h)'
        assert int(r['RDI'], 16) == i, 'RDI = vCPU index'
        assert int(r['RSI'], 16) == BOOT_INFO, 'RSI = boot info'
        rsp = int(r['RSP'], 16)
        assert STACKS + i * STACK_SIZE < rsp <= STACKS + (i + 1) * STACK_SIZE, hex(rsp)
    # nothing executes: no heartbeat, no serial output
    assert heartbeats(vm, 2) == [0, 0]
    assert vm.serial_path.read_text() == '' if vm.serial_path.exists() else True
    vm.qmp.cmd('stop')
    vm.qmp.wait_event('STOP', timeout=10)
    vm.qmp.cmd('cont')
    vm.qmp.wait_event('RESUME', timeout=10)


# ---- -kernel: a custom guest ELF ----

@NEED_KVM
def test_kernel_elf_runs_on_every_vcpu(make_vm, tmp_path):
    elf = build_guest(tmp_path, 'hello', '''
    mov %edi, %eax
    add $0x41, %al          /* 'A' + vCPU index */
    mov $0x3f8, %dx
    outb %al, %dx
1:  mov $0xcf0, %dx         /* idle port: sleep ~1 ms */
    outb %al, %dx
    jmp 1b''')
    vm = make_vm('-S', '-kernel', str(elf), smp=2)
    vm.qmp.cmd('cont')
    deadline = time.time() + 20
    while sorted(vm.serial_path.read_text() if vm.serial_path.exists() else '') != ['A', 'B']:
        assert time.time() < deadline, 'guest output: ' + vm.serial_path.read_text()
        time.sleep(0.05)
    text_end = elf_entry(elf) + 0x40
    for i, r in registers(vm).items():
        assert elf_entry(elf) <= int(r['RIP'], 16) < text_end, (i, r['RIP'])
        assert r['CPL'] == '3'


@NEED_KVM
def test_guest_triple_fault_is_reported(make_vm, tmp_path):
    """A guest that faults with no IDT must not hang silently: it stops with an event."""
    elf = build_guest(tmp_path, 'crash', '    ud2')
    vm = make_vm('-S', '-kernel', str(elf))
    vm.qmp.cmd('cont')
    deadline = time.time() + 20
    while True:
        st = vm.qmp.cmd('query-status')
        if st['status'] != 'running':
            break
        assert time.time() < deadline, 'crashed guest still reported as running'
        time.sleep(0.05)
    assert st['running'] is False
    assert st['status'] in ('shutdown', 'internal-error', 'guest-panicked'), st
    assert {e['event'] for e in vm.qmp.events} & {'STOP', 'SHUTDOWN'}, vm.qmp.events
    assert vm.proc.poll() is None, 'minivm exited'


@NEED_KVM
def test_serial_stdio(tmp_path):
    proc = subprocess.Popen([str(MINIVM), '-accel', 'kvm', '-m', '64M', '-smp', '2',
                             '-serial', 'stdio',
                             '-qmp', f'unix:{tmp_path}/q.sock,server=on,wait=off'],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        got = set()
        deadline = time.time() + 60
        while len(got) < 2:
            assert time.time() < deadline, got
            line = proc.stdout.readline()
            assert line, 'serial stdout closed'
            got |= {l for l in [line.decode().strip()] if l.endswith('ready')}
        assert got == {'minivm demo guest: cpu 0 ready', 'minivm demo guest: cpu 1 ready'}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
