"""Shared fixtures for the functional tests."""
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
