"""HMP over a unix socket, over a pipe (-monitor stdio) and through human-monitor-command."""
import os
import re
import select
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from qmp import MINIVM, HMPClient, Minivm, QMPClient, QMPError, kvm_available, NEED_KVM


BOOT_MAGIC = 0x6f6f62766d696e6d     # include/demo_abi.h MINIVM_BOOT_MAGIC
DEMO_SEED = 0x6d696e69766d3031      # MINIVM_DEMO_SEED
GUEST_CODE = range(0x200000, 0x210000)
RAMBLOCK_HEADER = ('              Block Name    PSize              Offset'
                   '               Used              Total')




@pytest.fixture(scope='module')
def vm2():
    """A running 2-vCPU demo guest with an HMP socket (KVM if available)."""
    vm = Minivm(hmp=True, smp=2)
    yield vm
    vm.close()


@pytest.fixture
def hmp(vm2):
    c = HMPClient(vm2.hmp_path)
    yield c
    c.close()


def lines(text):
    return [l for l in text.splitlines() if l]


def parse_x(text):
    """Values of an x/xp listing, as (address, [values])."""
    out = []
    for l in lines(text):
        addr, _, rest = l.partition(':')
        out.append((int(addr, 16), [int(v, 16) for v in rest.split()]))
    return out


def register_blocks(text):
    """{cpu index: block text} from an `info registers` listing."""
    parts = re.split(r'^CPU#(\d+)\s*$', text.replace('\r', ''), flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


# ---- over the unix socket ----

def test_banner_and_prompt(hmp):
    assert 'monitor - type \'help\' for more information' in hmp.banner


def test_help_lists_commands(hmp):
    out = hmp.run('help')
    names = {l.split()[0] for l in lines(out) if not l.startswith('\t')}
    for cmd in ('cont|c', 'stop|s', 'quit|q', 'info', 'x', 'xp', 'memsave', 'pmemsave',
                'dump-guest-memory', 'help|?'):
        assert cmd in names, (cmd, out)
    assert any(l.startswith('xp /fmt addr -- ') for l in lines(out)), out


def test_info_lists_subcommands(hmp):
    out = hmp.run('info')
    for sub in ('status', 'cpus', 'registers', 'ramblock', 'dump'):
        assert re.search(rf'^info {sub}\b', out, re.M), (sub, out)


def test_unknown_command(hmp):
    assert hmp.run('foo').strip() == "unknown command: 'foo'"
    assert hmp.run('info foo').strip() == "unknown command: 'info foo'"
    assert 'VM status' in hmp.run('info status')        # the session goes on


def test_empty_line(hmp):
    assert hmp.run('').strip() == ''


def test_output_lines_end_with_crlf(hmp):
    out = hmp.run('info cpus')
    assert out.endswith('\r\n') and '\n' not in out.replace('\r\n', ''), repr(out)


def test_info_cpus(vm2, hmp):
    out = hmp.run('info cpus')
    tids = [c['thread-id'] for c in vm2.qmp.cmd('query-cpus-fast')]
    assert lines(out) == [f'* CPU #0: thread_id={tids[0]}', f'  CPU #1: thread_id={tids[1]}'], out


@NEED_KVM
def test_info_registers_ring3_rip_every_vcpu(vm2, hmp):
    assert vm2.accel == 'kvm'
    out = hmp.run('info registers')
    blocks = register_blocks(out)
    assert sorted(blocks) == [0, 1], out
    for i, b in blocks.items():
        m = re.search(r'RIP=([0-9a-f]{16}) RFL=[0-9a-f]{8} \[[-A-Z]{7}\] CPL=(\d)', b)
        assert m, b
        assert int(m.group(1), 16) in GUEST_CODE, f'CPU#{i} RIP {m.group(1)} outside guest code'
        assert m.group(2) == '3', f'CPU#{i} not in ring 3'
        assert re.search(r'^CS =001b ', b, re.M) or re.search(r'DPL=3 CS64', b), b
    # still running afterwards
    assert vm2.qmp.cmd('query-status')['status'] == 'running'


def test_info_registers_layout(hmp):
    out = hmp.run('info registers')
    for b in register_blocks(out).values():
        for label in ('RAX=', 'RBX=', 'RCX=', 'RDX=', 'RSI=', 'RDI=', 'RBP=', 'RSP=',
                      'R8 =', 'R15=', 'RIP=', 'RFL=', 'ES =', 'CS =', 'SS =', 'DS =', 'FS =',
                      'GS =', 'LDT=', 'TR =', 'GDT=', 'IDT=', 'CR0=', 'CR2=', 'CR3=', 'CR4=',
                      'EFER='):
            assert label in b, (label, b)
        assert re.search(r'CR0=[0-9a-f]{8} CR2=[0-9a-f]{16} CR3=0000000000008000', b), b
        assert re.search(r'EFER=[0-9a-f]{16}', b), b


def test_info_registers_single_cpu_has_header(make_vm):
    """QEMU 7.2 prints "\\r\\nCPU#0\\r\\n" before the registers even with one CPU."""
    vm = make_vm('-S', accel='none')
    out = vm.qmp.hmp('info registers')
    assert out.startswith('\r\nCPU#0\r\n'), repr(out[:40])


def test_info_ramblocks(hmp):
    out = hmp.run('info ramblocks')
    assert lines(out) == [RAMBLOCK_HEADER,
                          '                  pc.ram    4 KiB  0x0000000000000000 '
                          '0x0000000008000000 0x0000000008000000'], out


def test_xp_boot_info(vm2, hmp):
    (addr, vals), (addr2, vals2) = parse_x(hmp.run('xp /4xg 0x1000'))
    assert (addr, addr2) == (0x1000, 0x1010)
    assert vals[0] == BOOT_MAGIC and vals[1] == DEMO_SEED, vals
    assert vals2[0] & 0xffffffff == 2, 'boot info ncpus'
    assert re.match(r'^0000000000001000: 0x6f6f62766d696e6d 0x6d696e69766d3031\r?$',
                    lines(hmp.run('xp /2xg 0x1000'))[0])


def test_x_virtual_equals_xp_physical(hmp):
    """The guest identity-maps RAM, so x and xp agree."""
    assert parse_x(hmp.run('x /4xg 0x1000')) == parse_x(hmp.run('xp /4xg 0x1000'))


@pytest.mark.parametrize('fmt,expect', [
    ('/8xb', ['0000000000001000: 0x6d 0x6e 0x69 0x6d 0x76 0x62 0x6f 0x6f']),
    ('/4xw', ['0000000000001000: 0x6d696e6d 0x6f6f6276 0x766d3031 0x6d696e69']),
    ('/2xh', ['0000000000001000: 0x6e6d 0x6d69']),
    ('/1xg', ['0000000000001000: 0x6f6f62766d696e6d']),
    ('/8cb', ["0000000000001000: 'm' 'n' 'i' 'm' 'v' 'b' 'o' 'o'"]),
    ('/2ub', ['0000000000001000: 109 110']),
])
def test_xp_formats(hmp, fmt, expect):
    assert [l.rstrip() for l in lines(hmp.run(f'xp {fmt} 0x1000'))] == expect


def test_xp_bad_format(hmp):
    out = hmp.run('xp /4qz 0x1000')
    assert 'invalid char in format' in out, out


def test_xp_beyond_ram(hmp):
    out = hmp.run('xp /2xg 0x100000000000')
    assert 'Cannot access memory' in out, out


def test_pmemsave_matches_xp(vm2, hmp, tmp_path):
    f = tmp_path / 'pmem.bin'
    assert hmp.run(f'pmemsave 0x1000 4096 "{f}"').strip() == ''
    data = f.read_bytes()
    assert len(data) == 4096
    vals = [v for _, vs in parse_x(hmp.run('xp /4xg 0x1000')) for v in vs]
    assert data[:32] == struct.pack('<4Q', *vals)
    assert data[:8] == b'mnimvboo'


def test_words_as_qemu_reads_them(hmp, tmp_path):
    """QEMU's monitor: the command name ends at '/', double quotes keep blanks and take
    \\ \" \' \n \r escapes, a single quote is an ordinary character."""
    assert hmp.run('xp/4xg 0x1000') == hmp.run('xp /4xg 0x1000')
    assert hmp.run('xp/4xg 0x1000').startswith('0000000000001000: 0x')
    f = tmp_path / "it's a \"core\".bin"
    quoted = str(f).replace('\\', '\\\\').replace('"', '\\"')
    assert hmp.run(f'pmemsave 0x1000 4096 "{quoted}"').strip() == ''
    assert f.read_bytes()[:8] == b'mnimvboo'
    assert hmp.run('pmemsave 0 4096 "/tmp/x').strip() == 'unterminated string'
    assert hmp.run('pmemsave 0 4096 "/tmp/\\x"').strip() == "unsupported escape code: '\\x'"
    assert 'VM status' in hmp.run('info status')


def test_memsave_virtual_matches_pmemsave(hmp, tmp_path):
    """Identity map: memsave of the (static) guest code equals pmemsave of it."""
    v, p = tmp_path / 'v.bin', tmp_path / 'p.bin'
    assert hmp.run(f'memsave 0x200000 8192 "{v}"').strip() == ''
    assert hmp.run(f'pmemsave 0x200000 8192 "{p}"').strip() == ''
    assert v.read_bytes() == p.read_bytes() and len(p.read_bytes()) == 8192
    assert v.read_bytes().strip(b'\0'), 'guest code page read back as zeros'


def test_memsave_bad_path(hmp):
    out = hmp.run('memsave 0 4096 "/nonexistent/dir/x"')
    assert out.strip() == "Error: Could not open '/nonexistent/dir/x': No such file or directory"
    out = hmp.run('pmemsave 0 4096 "/nonexistent/dir/x"')
    assert out.strip() == "Error: Could not open '/nonexistent/dir/x': No such file or directory"


def test_stop_cont_over_socket(make_vm):
    vm = make_vm('-S', hmp=True)
    h = HMPClient(vm.hmp_path)
    try:
        assert h.run('info status').strip() == 'VM status: paused (prelaunch)'
        assert h.run('cont').strip() == ''
        assert h.run('info status').strip() == 'VM status: running'
        vm.qmp.wait_event('RESUME', timeout=10)      # HMP transitions reach QMP clients
        assert h.run('stop').strip() == ''
        assert h.run('info status').strip() == 'VM status: paused'
        vm.qmp.wait_event('STOP', timeout=10)
        assert vm.qmp.cmd('query-status')['status'] == 'paused'
    finally:
        h.close()


def test_command_aliases(make_vm):
    """QEMU's short names: `cont|c`, `stop|s`, `help|?` (`quit|q` in test_quit_alias_over_socket)."""
    vm = make_vm('-S', hmp=True, accel='none')
    h = HMPClient(vm.hmp_path)
    try:
        assert h.run('c').strip() == ''
        assert h.run('info status').strip() == 'VM status: running'
        assert h.run('s').strip() == ''
        assert h.run('info status').strip() == 'VM status: paused'
        assert 'xp /fmt addr' in h.run('?')
    finally:
        h.close()


def test_quit_alias_over_socket(make_vm):
    vm = make_vm('-S', hmp=True, accel='none')
    h = HMPClient(vm.hmp_path)
    try:
        h.sock.sendall(b'q\n')
        ev = vm.qmp.wait_event('SHUTDOWN', timeout=10)
        assert ev['data']['guest'] is False
        assert vm.proc.wait(timeout=15) == 0
    finally:
        h.close()


# ---- through QMP human-monitor-command ----

def test_human_monitor_command(vm2):
    c = vm2.qmp
    assert c.hmp('info status') == 'VM status: running\r\n'
    assert c.hmp('') == ''
    assert c.hmp('foo') == "unknown command: 'foo'\r\n"
    with pytest.raises(QMPError) as e:
        c.cmd('human-monitor-command', **{'command-line': 'info status', 'cpu-index': 5})
    assert e.value.desc == "Parameter 'cpu-index' expects a CPU number"
    with pytest.raises(QMPError) as e:
        c.cmd('human-monitor-command', **{'command-line': 5})
    assert e.value.desc == "Invalid parameter type for 'command-line', expected: string"


# ---- over a pipe: -monitor stdio ----

class PipeMonitor:
    """minivm with -monitor stdio on pipes, plus a QMP socket for checks."""

    def __init__(self, *args):
        self.dir = Path(tempfile.mkdtemp(prefix='minivm-pipe-'))
        self.qmp_path = self.dir / 'qmp.sock'
        accel = 'kvm' if kvm_available() else 'none'
        self.proc = subprocess.Popen(
            [str(MINIVM), '-accel', accel, '-m', '128M', '-smp', '2',
             '-serial', f'file:{self.dir}/serial.log',
             '-qmp', f'unix:{self.qmp_path},server=on,wait=off', '-monitor', 'stdio', *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.banner = self.read_prompt()

    def read_prompt(self, timeout=30):
        data = b''
        deadline = time.time() + timeout
        fd = self.proc.stdout.fileno()
        while not data.endswith(b'(qemu) '):
            remaining = deadline - time.time()
            assert remaining > 0, f'no prompt; got {data!r}'
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return data.decode(errors='replace')
                data += chunk
        return data[:-len(b'(qemu) ')].decode(errors='replace')

    def run(self, line):
        self.proc.stdin.write(line.encode() + b'\n')
        self.proc.stdin.flush()
        return self.read_prompt()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        for p in self.dir.iterdir():
            p.unlink()
        self.dir.rmdir()


@pytest.fixture
def pipe_mon():
    m = PipeMonitor('-S')
    yield m
    m.close()


def test_hmp_over_pipe(pipe_mon):
    m = pipe_mon
    assert "monitor - type 'help' for more information" in m.banner
    assert 'xp /fmt addr' in m.run('help')
    assert m.run('info status').strip() == 'VM status: paused (prelaunch)'
    q = QMPClient(str(m.qmp_path))
    try:
        assert m.run('cont').strip() == ''
        q.wait_event('RESUME', timeout=10)
        assert m.run('info status').strip() == 'VM status: running'
        assert m.run('stop').strip() == ''
        q.wait_event('STOP', timeout=10)
        assert m.run('info status').strip() == 'VM status: paused'
        out = m.run('info cpus')
        assert [l.split(':')[0] for l in lines(out)] == ['* CPU #0', '  CPU #1'], out
        vals = parse_x(m.run('xp /2xg 0x1000'))[0][1]
        assert vals[0] == BOOT_MAGIC
        assert m.run('foo').strip() == "unknown command: 'foo'"
        m.proc.stdin.write(b'quit\n')
        m.proc.stdin.flush()
        assert q.wait_event('SHUTDOWN', timeout=10)['event'] == 'SHUTDOWN'
        assert m.proc.wait(timeout=15) == 0
    finally:
        q.close()


def test_pipe_monitor_stdin_eof_keeps_vm(pipe_mon):
    """Closing stdin ends the monitor session, not the VM (QEMU behaves the same)."""
    q = QMPClient(str(pipe_mon.qmp_path))
    try:
        pipe_mon.proc.stdin.close()
        time.sleep(0.3)
        assert pipe_mon.proc.poll() is None
        assert q.cmd('query-status')['status'] == 'prelaunch'
    finally:
        q.close()


def test_examine_is_bounded():
    """A huge x/xp count is refused at once (pmemsave is the tool for that) and the monitor
    keeps answering."""
    import time
    with Minivm('-S', accel='none', mem='64M') as vm:
        t = time.time()
        out = vm.qmp.hmp('xp /33554432xb 0')
        assert time.time() - t < 5
        assert out.startswith('Error: xp: at most 1048576 bytes at a time (use pmemsave)'), out
        assert vm.qmp.hmp('xp /1xg 0x1000').startswith('0000000000001000: 0x')
