"""One full dump per format with minivm running under valgrind (memcheck): no errors, nothing
definitely lost."""
import os
import re
import shutil
import subprocess
import time

import pytest

from qmp import MINIVM, QMPClient

pytestmark = [
    pytest.mark.skipif(not shutil.which('valgrind'), reason='valgrind is not installed'),
    pytest.mark.skipif(bool(os.environ.get('MINIVM_SANITIZE')),
                       reason='the sanitizer build cannot run under valgrind'),
]


def test_every_format_under_valgrind(tmp_path):
    sock = tmp_path / 'qmp.sock'
    log = tmp_path / 'valgrind.log'
    proc = subprocess.Popen(
        ['valgrind', '--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite',
         f'--log-file={log}', str(MINIVM), '-accel', 'none', '-m', '16M', '-serial', 'none',
         '-qmp', f'unix:{sock},server=on,wait=off'],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, G_SLICE='always-malloc', G_DEBUG='gc-friendly'))
    deadline = time.time() + 120
    while not sock.exists():
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.1)
    q = QMPClient(str(sock), timeout=300)
    formats = q.cmd('query-dump-guest-memory-capability')['formats']
    for fmt in formats:
        q.cmd('dump-guest-memory', paging=fmt == 'elf', protocol=f'file:{tmp_path / fmt}',
              format=fmt)
        assert q.cmd('query-dump')['status'] == 'completed'
        (tmp_path / fmt).unlink()
    q.cmd('quit')
    q.close()
    rc = proc.wait(timeout=300)
    text = log.read_text()
    assert 'Memcheck' in text and rc == 0, text[-8000:]
    assert re.search(r'ERROR SUMMARY: 0 errors', text), text[-8000:]
    assert re.search(r'definitely lost: 0 bytes|no leaks are possible', text), text[-8000:]
