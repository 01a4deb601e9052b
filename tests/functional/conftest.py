"""Shared fixtures for the functional tests."""
import os
import subprocess
import time

import pytest

from qmp import Minivm


@pytest.fixture
def make_vm():
    """make_vm(*args, env={...}, **Minivm kwargs) starts minivm; every VM is closed at teardown."""
    vms = []

    def make(*args, **kw):
        vm = Minivm(*args, **kw)
        vms.append(vm)
        return vm
    yield make
    for vm in vms:
        vm.close()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs (needs root)."""
    mnt = tmp_path / 'small'
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip('mounting a small tmpfs needs root')
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2M', 'tmpfs', str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs: {proc.stderr.strip()}')
    try:
        yield mnt
    finally:
        for _ in range(50):
            if subprocess.run(['umount', str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
