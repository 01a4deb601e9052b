"""Bad input: the command line (one-line error, non-zero exit) and monitor commands that
QEMU refuses or ignores (a second stop, cont on a shut-down VM)."""
import socket
import subprocess
import time

import pytest

from qmp import MINIVM, HMPClient, Minivm, QMPError, kvm_available, NEED_KVM





def run_bad(args, timeout=5):
    """Run minivm with a bad command line; it must exit by itself."""
    try:
        r = subprocess.run([str(MINIVM)] + args, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f'minivm {" ".join(args)} did not exit: the bad input was accepted')
    return r


def assert_one_line_error(r, *words):
    err = r.stderr.strip()
    assert r.returncode != 0, f'exit status 0 for bad input; stderr={r.stderr!r}'
    assert len(err.splitlines()) == 1, f'expected a one-line error, got {r.stderr!r}'
    for w in words:
        assert w in err, f'{w!r} not named in {err!r}'
    assert r.stdout == '', r.stdout


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def build_guest(tmp_path, name, asm):
    src, out = tmp_path / f'{name}.S', tmp_path / f'{name}.elf'
    src.write_text('\t.text\n\t.globl _start\n_start:\n' + asm + '\n')
    subprocess.run(['gcc', '-nostdlib', '-static', '-no-pie', '-Wl,-Ttext-segment=0x200000',
                    '-Wl,--build-id=none', '-o', str(out), str(src)], check=True,
                   capture_output=True)
    return out


# ---- command line ----

BASE = ['-accel', 'none', '-m', '16M', '-serial', 'none']


@pytest.mark.parametrize('args,words', [
    (['-bogus'], ['-bogus']),
    (['--no-such-option', 'x'], ['no-such-option']),
    (['-m', 'foo'], ['foo']),
    (['-m', '0'], ['-m']),
    (['-m', '-5'], ['-5']),
    (['-m', '12Q'], ['12Q']),
    (['-m', 'nan'], ['nan']),
    (['-m', 'infG'], ['infG']),
    (['-m'], ['-m']),
    (['-smp', '0'], ['-smp']),
    (['-smp', 'two'], ['two']),
    (['-accel', 'bogus'], ['bogus']),
    (['-kernel', '/nonexistent/guest.elf'], ['/nonexistent/guest.elf']),
    (['-load-vmcore', '/nonexistent/vmcore'], ['/nonexistent/vmcore']),
    (['-mem-path', '/nonexistent/dir/ram'], ['/nonexistent/dir/ram']),
    (['-serial', 'file:/nonexistent/dir/log'], ['/nonexistent/dir/log']),
    (['-qmp', 'unix:/nonexistent/dir/x.sock,server=on,wait=off'], ['/nonexistent/dir/x.sock']),
    (['-monitor', 'unix:/nonexistent/dir/h.sock,server=on,wait=off'],
     ['/nonexistent/dir/h.sock']),
    (['-qmp', 'bogus:whatever'], ['bogus:whatever']),
    (['-qmp', 'tcp:127.0.0.1:notaport,server=on,wait=off'], ['notaport']),
], ids=['unknown-option', 'unknown-long-option', 'm-foo', 'm-zero', 'm-negative', 'm-suffix',
        'm-nan', 'm-inf',
        'm-missing-arg', 'smp-zero', 'smp-word', 'accel', 'kernel-missing', 'vmcore-missing',
        'mem-path-dir', 'serial-path', 'qmp-socket-path', 'monitor-socket-path', 'qmp-spec',
        'tcp-port'])
def test_bad_command_line(args, words):
    assert_one_line_error(run_bad(BASE + args), *words)


def test_m_larger_than_host_can_map():
    r = run_bad(['-accel', 'none', '-m', '100000T', '-serial', 'none'])
    assert_one_line_error(r, '100000T' if '100000T' in r.stderr else 'memory')


def test_kernel_not_an_elf(tmp_path):
    f = tmp_path / 'not-elf'
    f.write_text('hello\n')
    assert_one_line_error(run_bad(BASE + ['-kernel', str(f)]), str(f))


def test_tcp_port_in_use():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = run_bad(BASE + ['-qmp', f'tcp:127.0.0.1:{port},server=on,wait=off'])
        assert_one_line_error(r, str(port))
    finally:
        s.close()


def test_bad_input_leaves_no_socket(tmp_path):
    """A failing start does not leave a stale socket behind for the next run."""
    sock = tmp_path / 'q.sock'
    r = run_bad(BASE + ['-qmp', f'unix:{sock},server=on,wait=off', '-kernel', '/nonexistent/k'])
    assert_one_line_error(r, '/nonexistent/k')
    assert not sock.exists()


# ---- monitor: second stop ----

def test_second_stop_is_a_silent_success(make_vm):
    """QEMU 7.2: a second `stop` returns {} and emits no second STOP."""
    vm = make_vm(hmp=True)
    c = vm.qmp
    c.cmd('stop')
    c.wait_event('STOP', timeout=10)
    assert c.execute('stop', id='s2') == {'return': {}, 'id': 's2'}
    h = HMPClient(vm.hmp_path)
    try:
        assert h.run('stop').strip() == ''
    finally:
        h.close()
    assert c.cmd('query-status')['status'] == 'paused'
    c.sock.settimeout(0.5)
    try:
        extra = c.recv()
    except (socket.timeout, TimeoutError):
        extra = None
    finally:
        c.sock.settimeout(60)
    assert extra is None and not c.events, f'unexpected message after a second stop: {extra}'


# ---- monitor: cont on a shut-down VM ----

@NEED_KVM
def test_cont_on_shut_down_vm(make_vm, tmp_path):
    elf = build_guest(tmp_path, 'poweroff', '''
    mov $0, %al
    outb %al, $0xf4         /* MINIVM_PORT_EXIT: guest shutdown */
1:  jmp 1b''')
    vm = make_vm('-S', '-kernel', str(elf), hmp=True)
    c = vm.qmp
    c.cmd('cont')
    ev = c.wait_event('SHUTDOWN', timeout=20)
    assert ev['data'] == {'guest': True, 'reason': 'guest-shutdown'}, ev
    deadline = time.time() + 10
    while c.cmd('query-status')['status'] != 'shutdown':
        assert time.time() < deadline, c.cmd('query-status')
        time.sleep(0.05)
    assert c.cmd('query-status') == {'status': 'shutdown', 'singlestep': False,
                                     'running': False}
    assert vm.proc.poll() is None, 'minivm must stay up in the shutdown state'
    with pytest.raises(QMPError) as e:
        c.cmd('cont')
    assert (e.value.cls, e.value.desc) == ('GenericError',
                                           'Resetting the Virtual Machine is required')
    r = c.execute('cont', id=5)
    assert r['id'] == 5 and r['error']['desc'] == 'Resetting the Virtual Machine is required'
    h = HMPClient(vm.hmp_path)
    try:
        assert h.run('cont').strip() == 'Error: Resetting the Virtual Machine is required'
        assert h.run('info status').strip() == 'VM status: paused (shutdown)'
    finally:
        h.close()
    assert c.cmd('stop') == {}
    assert c.cmd('query-status')['status'] == 'shutdown'
    c.cmd('quit')
    assert vm.proc.wait(timeout=15) == 0


@NEED_KVM
def test_guest_shutdown_event_order(make_vm, tmp_path):
    """QEMU (-no-shutdown) emits SHUTDOWN, then STOP, on a guest power-off."""
    elf = build_guest(tmp_path, 'poweroff', '    outb %al, $0xf4\n1:  jmp 1b')
    vm = make_vm('-S', '-kernel', str(elf))
    c = vm.qmp
    c.cmd('cont')
    order = [e['event'] for e in c.events]
    c.sock.settimeout(20)
    while not {'SHUTDOWN', 'STOP'} <= set(order):
        msg = c.recv()
        if 'event' in msg:
            order.append(msg['event'])
    c.sock.settimeout(60)
    assert order == ['RESUME', 'SHUTDOWN', 'STOP'], order
