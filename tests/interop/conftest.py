"""Linux guest fixtures for the interop tests (built by QEMU, cached between runs)."""
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))
sys.path.insert(0, str(ROOT / 'tests' / 'functional'))

import linux_fixture  # noqa: E402
from dumpcheck import missing_reader  # noqa: E402


def _fixture(name):
    missing = [t for t in ('qemu-system-x86_64', 'crash', 'makedumpfile') if not shutil.which(t)]
    if missing:
        missing_reader(f'interop tests need {", ".join(missing)}')
    try:
        fx = linux_fixture.get_fixture(name)
    except linux_fixture.FixtureError as e:
        missing_reader(f'the {name} Linux fixture could not be built here: {e}'.splitlines()[0])
    if not fx['vmlinux'] or not os.path.exists(fx['vmlinux']):
        missing_reader('the kernel debug symbols are missing: install linux-image-cloud-amd64-dbg')
    return fx


@pytest.fixture(scope='session')
def small_linux():
    return _fixture('small')


@pytest.fixture(scope='session')
def big_linux():
    return _fixture('big')


@pytest.fixture(scope='session')
def novmci_linux():
    return _fixture('novmci')
