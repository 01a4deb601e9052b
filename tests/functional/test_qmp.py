"""QMP protocol and commands against the real minivm binary (issue 2).

Reference texts are QEMU 7.2's (see /work/qemu-oracle.md)."""
import json
import os
import re
import socket
import subprocess
import time

import pytest

from qmp import MINIVM, QMPClient, QMPError, Minivm, kvm_available


DESIGN_COMMANDS = [
    'qmp_capabilities', 'query-version', 'query-commands', 'query-status', 'query-cpus-fast',
    'stop', 'cont', 'quit', 'getfd', 'closefd', 'human-monitor-command', 'dump-guest-memory',
    'query-dump', 'query-dump-guest-memory-capability', 'dump-cancel',
]




@pytest.fixture(scope='module')
def shared_vm():
    """A prelaunch VM for protocol tests that do not change the run state."""
    vm = Minivm('-S', accel='none')
    yield vm
    vm.close()


@pytest.fixture
def client(shared_vm):
    c = shared_vm.connect()
    yield c
    c.close()


def send_json(c, obj):
    c.send_raw(json.dumps(obj).encode() + b'\n')
    return c.recv_reply()


def drain(c, seconds):
    """Read everything that arrives within `seconds`; return the messages."""
    got = []
    deadline = time.time() + seconds
    try:
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                break
            c.sock.settimeout(remaining)
            got.append(c.recv())
    except (socket.timeout, TimeoutError):
        pass
    finally:
        c.sock.settimeout(60)
    return got


def assert_error(reply, cls, desc):
    assert 'error' in reply, reply
    assert reply['error'] == {'class': cls, 'desc': desc}, reply


def assert_timestamp(ev):
    ts = ev['timestamp']
    assert set(ts) == {'seconds', 'microseconds'}, ev
    assert isinstance(ts['seconds'], int) and isinstance(ts['microseconds'], int), ev
    assert 0 <= ts['microseconds'] < 1000000, ev
    assert abs(ts['seconds'] + ts['microseconds'] / 1e6 - time.time()) < 60, ev


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_fd_targets(pid):
    d = f'/proc/{pid}/fd'
    out = []
    for n in os.listdir(d):
        try:
            out.append(os.readlink(f'{d}/{n}'))
        except OSError:
            pass
    return out


# ---- greeting and negotiation ----

def test_greeting_shape(shared_vm):
    c = shared_vm.connect(negotiate=False)
    try:
        g = c.greeting
        assert list(g) == ['QMP'], g
        assert set(g['QMP']) == {'version', 'capabilities'}, g
        v = g['QMP']['version']
        assert set(v) == {'qemu', 'package'}, g
        assert set(v['qemu']) == {'major', 'minor', 'micro'}, g
        assert all(isinstance(v['qemu'][k], int) for k in v['qemu']), g
        assert isinstance(v['package'], str)
        assert isinstance(g['QMP']['capabilities'], list)
    finally:
        c.close()


def test_wire_format_matches_qemu(shared_vm):
    """One JSON line per message ending in CRLF, QEMU's separators and member order."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(shared_vm.qmp_path))
    buf = b''

    def line():
        nonlocal buf
        while b'\r\n' not in buf:
            chunk = s.recv(65536)
            assert chunk, 'connection closed'
            buf += chunk
        out, buf = buf.split(b'\r\n', 1)
        return out
    try:
        greeting = line()
        assert greeting.startswith(b'{"QMP": {"version": {"qemu": {"micro": '), greeting
        s.sendall(b'{"execute":"qmp_capabilities"}\n')
        assert line() == b'{"return": {}}'
        s.sendall(b'{"execute":"query-status","id":"a"}\n')
        assert line() == (b'{"return": {"status": "prelaunch", "singlestep": false, '
                          b'"running": false}, "id": "a"}')
        s.sendall(b'{"execute":"foo","id":{"a":[1,2]}}\n')
        assert line() == (b'{"id": {"a": [1, 2]}, "error": {"class": "CommandNotFound", '
                          b'"desc": "The command foo has not been found"}}')
    finally:
        s.close()


def test_commands_before_negotiation_refused(shared_vm):
    c = shared_vm.connect(negotiate=False)
    try:
        text = "Expecting capabilities negotiation with 'qmp_capabilities'"
        assert_error(send_json(c, {'execute': 'query-status'}), 'CommandNotFound', text)
        r = send_json(c, {'execute': 'query-status', 'id': 'a1'})
        assert r['id'] == 'a1'
        assert_error(r, 'CommandNotFound', text)
        # quit is refused too, and the VM stays up; an unknown command gets the same text
        assert_error(send_json(c, {'execute': 'quit'}), 'CommandNotFound', text)
        assert_error(send_json(c, {'execute': 'foo'}), 'CommandNotFound', text)
        assert shared_vm.proc.poll() is None
        # QEMU 7.2's text for a capability that is not offered
        assert_error(send_json(c, {'execute': 'qmp_capabilities', 'arguments': {'enable': ['oob']}}),
                     'GenericError', 'Capability oob not available')
        assert send_json(c, {'execute': 'qmp_capabilities'}) == {'return': {}}
        assert c.cmd('query-status')['status'] == 'prelaunch'
    finally:
        c.close()


def test_second_qmp_capabilities(client):
    r = send_json(client, {'execute': 'qmp_capabilities', 'id': 1})
    assert r['id'] == 1
    assert_error(r, 'CommandNotFound',
                 'Capabilities negotiation is already complete, command ignored')
    assert client.cmd('query-status')['status'] == 'prelaunch'


def test_each_connection_negotiates_again(shared_vm):
    a = shared_vm.connect()
    b = shared_vm.connect(negotiate=False)
    try:
        assert 'QMP' in b.greeting
        assert 'error' in send_json(b, {'execute': 'query-status'})
        assert a.cmd('query-status')['status'] == 'prelaunch'
    finally:
        a.close()
        b.close()


# ---- malformed input ----

@pytest.mark.parametrize('raw', [b'{"execute": }', b'@', b'tru', b'{"execute":"query-status",}'],
                         ids=['missing-value', 'stray-char', 'bad-keyword', 'trailing-comma'])
def test_malformed_json_error_and_connection_survives(client, raw):
    client.send_raw(raw + b'\n')
    r = client.recv_reply()
    assert 'id' not in r, r
    assert r['error']['class'] == 'GenericError', r
    assert r['error']['desc'].startswith('JSON parse error'), r
    assert client.cmd('query-status')['status'] == 'prelaunch'


@pytest.mark.parametrize('raw,desc', [
    (b'[1,2]', 'QMP input must be a JSON object'),
    (b'"string"', 'QMP input must be a JSON object'),
    (b'42', 'QMP input must be a JSON object'),
    (b'{}', "QMP input lacks member 'execute'"),
    (b'{"execute": 1}', "QMP input member 'execute' must be a string"),
    (b'{"execute":"query-status","arguments":[]}',
     "QMP input member 'arguments' must be an object"),
    (b'{"execute":"query-status","foo":1}', "QMP input member 'foo' is unexpected"),
], ids=['array', 'string', 'number', 'empty', 'execute-int', 'arguments-array', 'extra-key'])
def test_bad_request_shape(client, raw, desc):
    client.send_raw(raw + b'\n')
    assert_error(client.recv_reply(), 'GenericError', desc)
    assert client.cmd('query-status')['status'] == 'prelaunch'


def test_shape_error_echoes_id(client):
    r = send_json(client, {'execute': 'query-status', 'id': 'x', 'foo': 1})
    assert r['id'] == 'x'
    assert_error(r, 'GenericError', "QMP input member 'foo' is unexpected")


def test_two_requests_on_one_line(client):
    client.send_raw(b'{"execute":"query-status","id":1}{"execute":"query-status","id":2}\n')
    assert client.recv_reply()['id'] == 1
    assert client.recv_reply()['id'] == 2


# ---- command errors ----

def test_unknown_command(client):
    assert_error(send_json(client, {'execute': 'foo'}), 'CommandNotFound',
                 'The command foo has not been found')


@pytest.mark.parametrize('cmd,args,desc', [
    ('getfd', None, "Parameter 'fdname' is missing"),
    ('getfd', {}, "Parameter 'fdname' is missing"),
    ('closefd', None, "Parameter 'fdname' is missing"),
    ('human-monitor-command', {}, "Parameter 'command-line' is missing"),
    ('query-status', {'x': 1}, "Parameter 'x' is unexpected"),
    ('dump-guest-memory', {'paging': 'yes', 'protocol': 'file:/tmp/x'},
     "Invalid parameter type for 'paging', expected: boolean"),
    ('dump-guest-memory', {'protocol': 'file:/tmp/x'}, "Parameter 'paging' is missing"),
    ('getfd', {'fdname': 5}, "Invalid parameter type for 'fdname', expected: string"),
    ('human-monitor-command', {'command-line': 'info status', 'cpu-index': '0'},
     "Invalid parameter type for 'cpu-index', expected: integer"),
], ids=['getfd-noargs', 'getfd-empty', 'closefd-noargs', 'hmc-missing', 'unexpected',
        'paging-type', 'paging-missing', 'fdname-type', 'cpu-index-type'])
def test_argument_errors(client, cmd, args, desc):
    msg = {'execute': cmd}
    if args is not None:
        msg['arguments'] = args
    assert_error(send_json(client, msg), 'GenericError', desc)


@pytest.mark.parametrize('ident', ['abc', 7, -1.5, {'a': [1, 2], 'b': 'c'}, [1], True, None],
                         ids=['string', 'int', 'float', 'object', 'array', 'bool', 'null'])
def test_id_echoed(client, ident):
    ok = send_json(client, {'execute': 'query-status', 'id': ident})
    assert 'return' in ok and 'id' in ok and ok['id'] == ident, ok
    err = send_json(client, {'execute': 'no-such-cmd', 'id': ident})
    assert 'error' in err and 'id' in err and err['id'] == ident, err
    err = send_json(client, {'execute': 'query-status', 'arguments': {'x': 1}, 'id': ident})
    assert 'error' in err and 'id' in err and err['id'] == ident, err


def test_no_id_when_not_given(client):
    assert 'id' not in send_json(client, {'execute': 'query-status'})
    assert 'id' not in send_json(client, {'execute': 'foo'})


# ---- queries ----

def test_query_version(client):
    v = client.cmd('query-version')
    assert set(v) == {'qemu', 'package'}
    assert set(v['qemu']) == {'major', 'minor', 'micro'}
    assert v == client.greeting['QMP']['version']


def test_query_commands_lists_design_surface(client):
    cmds = client.cmd('query-commands')
    assert all(list(c) == ['name'] for c in cmds), cmds
    names = [c['name'] for c in cmds]
    assert len(names) == len(set(names)), names
    missing = [n for n in DESIGN_COMMANDS if n not in names]
    assert not missing, f'query-commands lacks {missing}'


def test_query_commands_names_are_callable(client):
    """Every listed command is dispatched and checks its arguments as QEMU's visitor
    does before the command runs: a missing required one first, then an unknown one."""
    for c in client.cmd('query-commands'):
        r = send_json(client, {'execute': c['name'], 'arguments': {'zz-not-an-arg': 1}})
        assert r.get('error', {}).get('class') == 'GenericError', (c, r)
        assert re.fullmatch(r"Parameter '[a-z-]+' is missing", r['error']['desc']) or \
            r['error']['desc'] == "Parameter 'zz-not-an-arg' is unexpected", (c, r)


def test_query_status_prelaunch(client):
    assert client.cmd('query-status') == {'status': 'prelaunch', 'singlestep': False,
                                          'running': False}


def test_query_cpus_fast_smp2(make_vm):
    vm = make_vm('-S', smp=2)
    cpus = vm.qmp.cmd('query-cpus-fast')
    assert [c['cpu-index'] for c in cpus] == [0, 1]
    for c in cpus:
        assert set(c) == {'thread-id', 'props', 'qom-path', 'cpu-index', 'target'}, c
        assert c['target'] == 'x86_64'
        assert isinstance(c['thread-id'], int) and c['thread-id'] > 0
        assert set(c['props']) == {'core-id', 'thread-id', 'socket-id'}, c
        assert isinstance(c['qom-path'], str)
    if vm.accel == 'kvm':
        assert cpus[0]['thread-id'] != cpus[1]['thread-id'], 'one thread per vCPU'
        tids = set(int(t) for t in os.listdir(f'/proc/{vm.proc.pid}/task'))
        assert {c['thread-id'] for c in cpus} <= tids


# ---- run control and events ----

def test_status_and_events_through_stop_cont(make_vm):
    vm = make_vm('-S')
    c = vm.qmp
    assert c.cmd('query-status')['status'] == 'prelaunch'
    # stop in prelaunch: success, no event, still prelaunch (QEMU 7.2)
    assert c.cmd('stop') == {}
    assert c.cmd('query-status')['status'] == 'prelaunch'
    c.cmd('cont')
    assert_timestamp(c.wait_event('RESUME', timeout=10))
    assert c.cmd('query-status') == {'status': 'running', 'singlestep': False, 'running': True}
    c.cmd('stop')
    assert_timestamp(c.wait_event('STOP', timeout=10))
    assert c.cmd('query-status') == {'status': 'paused', 'singlestep': False, 'running': False}
    c.cmd('cont')
    c.wait_event('RESUME', timeout=10)
    # cont while running: success, no event
    assert c.cmd('cont') == {}
    assert c.cmd('query-status')['status'] == 'running'
    assert not [m for m in c.events + drain(c, 0.3) if m.get('event')], c.events


def test_event_written_before_reply(make_vm):
    """QEMU writes STOP/RESUME before the reply of the command that caused them."""
    vm = make_vm('-S', accel='none')
    c = vm.qmp
    c.cmd('cont')
    assert [e['event'] for e in c.events] == ['RESUME'], c.events
    c.events.clear()
    c.cmd('stop')
    assert [e['event'] for e in c.events] == ['STOP'], c.events


def test_events_seen_by_two_clients(make_vm):
    vm = make_vm('-S', extra_qmp=1)
    a = vm.qmp
    b = vm.connect(vm.extra[0])
    un = vm.connect(negotiate=False)
    try:
        a.cmd('cont')
        for c in (a, b):
            ev = c.wait_event('RESUME', timeout=10)
            assert set(ev) == {'timestamp', 'event'}, ev
            assert_timestamp(ev)
        b.cmd('stop')           # issued by the other client this time
        stops = [c.wait_event('STOP', timeout=10) for c in (a, b)]
        for ev in stops:
            assert_timestamp(ev)
        assert stops[0]['timestamp'] == stops[1]['timestamp']
        # no duplicate events
        assert not [m for m in drain(a, 0.3) + drain(b, 0.1) if m.get('event')]
        # a client that never negotiated gets no events, and none are queued for it
        assert drain(un, 0.2) == []
        assert send_json(un, {'execute': 'qmp_capabilities'}) == {'return': {}}
        assert un.events == []
    finally:
        b.close()
        un.close()


def test_several_clients_on_one_socket(make_vm):
    vm = make_vm('-S', accel='none')
    clients = [vm.qmp] + [vm.connect() for _ in range(3)]
    try:
        for i, c in enumerate(clients):
            c.send_raw(json.dumps({'execute': 'query-status', 'id': i}).encode() + b'\n')
        for i, c in enumerate(clients):
            r = c.recv_reply()
            assert r['id'] == i and r['return']['status'] == 'prelaunch', r
        clients[2].cmd('cont')
        for c in clients:
            c.wait_event('RESUME', timeout=10)
        clients[3].close()      # a client leaving does not disturb the others
        assert clients[1].cmd('query-status')['status'] == 'running'
    finally:
        for c in clients[1:]:
            c.close()


def test_tcp_qmp_socket(make_vm):
    port = free_port()
    vm = make_vm('-S', '-qmp', f'tcp:127.0.0.1:{port},server=on,wait=off', accel='none')
    deadline = time.time() + 10
    while True:
        try:
            c = QMPClient(('127.0.0.1', port))
            break
        except ConnectionRefusedError:
            assert time.time() < deadline, 'tcp QMP port never listened'
            time.sleep(0.05)
    d = QMPClient(('127.0.0.1', port))
    try:
        assert 'QMP' in c.greeting
        assert c.cmd('query-status')['status'] == 'prelaunch'
        vm.qmp.cmd('cont')
        c.wait_event('RESUME', timeout=10)
        d.wait_event('RESUME', timeout=10)
        assert d.cmd('query-status')['status'] == 'running'
    finally:
        c.close()
        d.close()


# ---- getfd / closefd ----

def test_getfd_with_real_fd_then_closefd(make_vm):
    vm = make_vm('-S', accel='none')
    c = vm.qmp
    r, w = os.pipe()
    try:
        target = os.readlink(f'/proc/self/fd/{w}')
        assert target not in proc_fd_targets(vm.proc.pid)
        assert c.cmd('getfd', fds=[w], fdname='x') == {}
        assert proc_fd_targets(vm.proc.pid).count(target) == 1, 'minivm does not hold the fd'
        assert c.cmd('closefd', fdname='x') == {}
        assert target not in proc_fd_targets(vm.proc.pid), 'closefd left the fd open'
        with pytest.raises(QMPError) as e:
            c.cmd('closefd', fdname='x')
        assert (e.value.cls, e.value.desc) == ('GenericError', "File descriptor named 'x' not found")
    finally:
        os.close(r)
        os.close(w)


def test_getfd_same_name_replaces_old_fd(make_vm):
    vm = make_vm('-S', accel='none')
    c = vm.qmp
    p1, p2 = os.pipe(), os.pipe()
    try:
        t1 = os.readlink(f'/proc/self/fd/{p1[1]}')
        t2 = os.readlink(f'/proc/self/fd/{p2[1]}')
        c.cmd('getfd', fds=[p1[1]], fdname='dup')
        c.cmd('getfd', fds=[p2[1]], fdname='dup')
        held = proc_fd_targets(vm.proc.pid)
        assert t1 not in held and t2 in held, held
        c.cmd('closefd', fdname='dup')
        assert t2 not in proc_fd_targets(vm.proc.pid)
    finally:
        for fd in p1 + p2:
            os.close(fd)


def test_getfd_errors(client):
    with pytest.raises(QMPError) as e:
        client.cmd('getfd', fdname='nofd')
    assert (e.value.cls, e.value.desc) == ('GenericError',
                                           'No file descriptor supplied via SCM_RIGHTS')
    with pytest.raises(QMPError) as e:
        client.cmd('closefd', fdname='nosuch')
    assert (e.value.cls, e.value.desc) == ('GenericError',
                                           "File descriptor named 'nosuch' not found")
    r, w = os.pipe()
    try:
        with pytest.raises(QMPError) as e:
            client.cmd('getfd', fds=[w], fdname='123')
        assert e.value.desc == "Parameter 'fdname' expects a name not starting with a digit"
    finally:
        os.close(r)
        os.close(w)


# ---- quit ----

def test_quit(make_vm):
    vm = make_vm('-S', accel='none')
    other = vm.connect()
    c = vm.qmp
    c.send_raw(b'{"execute":"quit","id":"q"}\n')
    ev = c.recv()
    assert ev['event'] == 'SHUTDOWN', ev
    assert ev['data'] == {'guest': False, 'reason': 'host-qmp-quit'}, ev
    assert_timestamp(ev)
    assert c.recv() == {'return': {}, 'id': 'q'}
    with pytest.raises((EOFError, ConnectionResetError)):
        c.recv()
    ev = other.recv()
    assert ev['event'] == 'SHUTDOWN', ev
    with pytest.raises((EOFError, ConnectionResetError)):
        other.recv()
    other.close()
    assert vm.proc.wait(timeout=15) == 0
    assert vm.stderr_path.read_text() == ''


def test_sigterm_shuts_down_cleanly(make_vm):
    """QEMU: SIGTERM gives SHUTDOWN {"guest": false, "reason": "host-signal"} and exit 0."""
    vm = make_vm('-S', accel='none')
    vm.proc.terminate()
    ev = vm.qmp.wait_event('SHUTDOWN', timeout=10)
    assert ev['data'] == {'guest': False, 'reason': 'host-signal'}, ev
    assert vm.proc.wait(timeout=15) == 0


def test_client_vanishing_does_not_disturb_events(make_vm):
    vm = make_vm('-S', accel='none')
    gone = vm.connect()
    gone.sock.shutdown(socket.SHUT_RDWR)
    gone.close()
    half = vm.connect()
    half.send_raw(b'{"execute": "query-st')      # leaves mid-message
    half.close()
    for _ in range(3):
        vm.qmp.cmd('cont')
        vm.qmp.cmd('stop')
    assert [e['event'] for e in vm.qmp.events] == ['RESUME', 'STOP'] * 3
    assert vm.qmp.cmd('query-status')['status'] == 'paused'


def test_qmp_over_stdio(tmp_path):
    proc = subprocess.Popen([str(MINIVM), '-accel', 'none', '-m', '16M', '-S',
                             '-serial', 'none', '-qmp', 'stdio'],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        def recv():
            line = proc.stdout.readline()
            assert line, 'EOF on QMP stdio; stderr: ' + proc.stderr.read().decode()
            assert line.endswith(b'\r\n'), line
            return json.loads(line)

        def send(obj):
            proc.stdin.write(json.dumps(obj).encode() + b'\n')
            proc.stdin.flush()
        assert 'QMP' in recv()
        send({'execute': 'query-status'})
        assert recv()['error']['class'] == 'CommandNotFound'
        send({'execute': 'qmp_capabilities'})
        assert recv() == {'return': {}}
        send({'execute': 'cont', 'id': 1})
        msgs = [recv(), recv()]
        assert {'return': {}, 'id': 1} in msgs
        assert any(m.get('event') == 'RESUME' for m in msgs), msgs
        send({'execute': 'quit'})
        assert recv()['event'] == 'SHUTDOWN'
        assert recv() == {'return': {}}
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
