"""A small QMP and HMP client and a harness that runs the real minivm binary."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get('MINIVM_BUILD', ROOT / 'build'))
MINIVM = BUILD / 'minivm'


def kvm_available():
    return os.access('/dev/kvm', os.R_OK | os.W_OK)


try:
    import pytest
    NEED_KVM = pytest.mark.skipif(not kvm_available(),
                                  reason='/dev/kvm is not accessible: KVM tests need it')
except ImportError:            # the harness also serves scripts/demo.py and bench/
    NEED_KVM = None


class QMPError(Exception):
    def __init__(self, error):
        super().__init__(f"{error.get('class')}: {error.get('desc')}")
        self.cls = error.get('class')
        self.desc = error.get('desc')


class QMPClient:
    """Talks QMP over a unix or tcp socket; keeps events that arrive."""

    def __init__(self, address, negotiate=True, timeout=60):
        family = socket.AF_UNIX if isinstance(address, (str, Path)) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(address) if family == socket.AF_UNIX else address)
        except OSError:
            self.sock.close()     # Minivm.connect tries again with a new socket
            raise
        self.buf = b''
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            self.cmd('qmp_capabilities')

    def close(self):
        self.sock.close()

    def send_raw(self, data, fds=None):
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)

    def recv(self):
        while b'\n' not in self.buf:
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                raise EOFError('QMP connection closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def recv_reply(self):
        while True:
            msg = self.recv()
            if 'event' in msg:
                self.events.append(msg)
                continue
            return msg

    def execute(self, command, arguments=None, id=None, fds=None):
        msg = {'execute': command}
        if arguments is not None:
            msg['arguments'] = arguments
        if id is not None:
            msg['id'] = id
        self.send_raw(json.dumps(msg).encode() + b'\n', fds)
        return self.recv_reply()

    def cmd(self, command, fds=None, **arguments):
        reply = self.execute(command, arguments or None, fds=fds)
        if 'error' in reply:
            raise QMPError(reply['error'])
        return reply['return']

    def hmp(self, line):
        return self.cmd('human-monitor-command', **{'command-line': line})

    def wait_event(self, name, timeout=120):
        deadline = time.time() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev['event'] == name:
                    return self.events.pop(i)
            remaining = deadline - time.time()
            if remaining <= 0:
                raise TimeoutError(f'no {name} event')
            self.sock.settimeout(remaining)
            try:
                msg = self.recv()
            finally:
                self.sock.settimeout(60)
            if 'event' in msg:
                self.events.append(msg)


class Minivm:
    """A minivm process with one QMP socket (more on request) and a serial log."""

    def __init__(self, *args, accel=None, mem='128M', smp=1, extra_qmp=0, hmp=False,
                 workdir=None, wait_ready=True, env=None, start_timeout=30, prefix=()):
        self.dir = Path(workdir or tempfile.mkdtemp(prefix='minivm-test-'))
        self.own_dir = workdir is None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.qmp_path = self.dir / 'qmp.sock'
        self.serial_path = self.dir / 'serial.log'
        self.extra = [self.dir / f'qmp{i}.sock' for i in range(extra_qmp)]
        self.hmp_path = self.dir / 'hmp.sock' if hmp else None
        if accel is None:
            accel = 'kvm' if kvm_available() else 'none'
        self.accel = accel
        cmd = [str(MINIVM), '-accel', accel, '-m', mem, '-smp', str(smp),
               '-serial', f'file:{self.serial_path}',
               '-qmp', f'unix:{self.qmp_path},server=on,wait=off']
        for p in self.extra:
            cmd += ['-qmp', f'unix:{p},server=on,wait=off']
        if self.hmp_path:
            cmd += ['-monitor', f'unix:{self.hmp_path},server=on,wait=off']
        cmd = list(prefix) + cmd + list(args)    # prefix: e.g. setpriv to run as another user
        self.smp = smp
        self.stderr_path = self.dir / 'stderr.log'
        self.stderr = open(self.stderr_path, 'w')
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr,
                                     env={**os.environ, **{k: str(v) for k, v in env.items()}}
                                     if env else None)
        try:
            self.qmp = self.connect(timeout=start_timeout)
            if wait_ready and accel == 'kvm' and '-S' not in args and not any(
                    a in args for a in ('-kernel', '-load-vmcore')):
                self.wait_serial_ready()
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            self.stderr.close()
            raise

    def connect(self, path=None, negotiate=True, timeout=30):
        """A QMP client on path once minivm listens there: bind() makes the socket
        file before listen() runs, so a refused connection is tried again."""
        path = path or self.qmp_path
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'minivm exited with {self.proc.returncode}: '
                                   f'{self.stderr_path.read_text()}')
            if Path(path).exists():
                try:
                    return QMPClient(str(path), negotiate=negotiate)
                except ConnectionRefusedError:
                    pass
            if time.time() > deadline:
                raise TimeoutError(f'{path} did not start listening')
            time.sleep(0.02)

    def wait_serial(self, text, timeout=60):
        """Until `text` is on the serial port (a -kernel guest saying it is ready)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.serial_path.exists() and text in self.serial_path.read_text(errors='replace'):
                return
            time.sleep(0.02)
        raise TimeoutError(f'{text!r} not seen on the serial port')

    def wait_serial_ready(self, timeout=120):
        deadline = time.time() + timeout
        want = {f'minivm demo guest: cpu {i} ready' for i in range(self.smp)}
        while time.time() < deadline:
            text = self.serial_path.read_text(errors='replace') if self.serial_path.exists() else ''
            if want <= set(text.splitlines()):
                return text
            time.sleep(0.05)
        raise TimeoutError('demo guest did not report ready: ' + text)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.qmp.cmd('quit')
            except Exception:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.qmp.close()
        self.stderr.close()
        self.check_sanitizers()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    SANITIZER_MARKERS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:')

    def check_sanitizers(self):
        """With a sanitizer build, any report on minivm's stderr fails the test."""
        if not os.environ.get('MINIVM_SANITIZE') or not self.stderr_path.exists():
            return
        text = self.stderr_path.read_text(errors='replace')
        if any(m in text for m in self.SANITIZER_MARKERS):
            raise AssertionError('sanitizer report from minivm:\n' + text[-6000:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HMPClient:
    """A line-oriented HMP client over a socket; returns output up to the prompt."""

    PROMPT = b'(qemu) '

    def __init__(self, path, timeout=60):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.banner = self._read_until_prompt()

    def _read_until_prompt(self):
        data = b''
        while not data.endswith(self.PROMPT):
            chunk = self.sock.recv(65536)
            if not chunk:
                return data.decode()
            data += chunk
        return data[:-len(self.PROMPT)].decode()

    def run(self, line):
        self.sock.sendall(line.encode() + b'\n')
        return self._read_until_prompt()

    def close(self):
        self.sock.close()
