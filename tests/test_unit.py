"""Run every GTest unit case (tests/unit), one pytest test per GLib test path, so a
case that calls g_test_skip() is counted as skipped, not passed."""
import os
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ.get('MINIVM_BUILD', Path(__file__).resolve().parents[1] / 'build'))
UNIT = sorted(p for p in (BUILD / 'tests' / 'unit').glob('test-*')
              if p.is_file() and os.access(p, os.X_OK))


def cases():
    """(binary, test path) for every case the binaries list (-l)."""
    out = []
    for binary in UNIT:
        r = subprocess.run([str(binary), '-l'], capture_output=True, text=True, timeout=60)
        paths = [l for l in r.stdout.splitlines() if l.startswith('/')]
        # a binary that cannot list its cases still runs whole, and fails there
        out += [(binary, p) for p in paths] if r.returncode == 0 and paths else [(binary, None)]
    return out


CASES = cases()


@pytest.mark.parametrize('binary,path', CASES,
                         ids=[f'{b.name}{p or ""}' for b, p in CASES])
def test_unit(binary, path):
    args = [str(binary), '--tap'] + (['-p', path] if path else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    lines = r.stdout.splitlines()
    failed = [l for l in lines if l.startswith('not ok')]
    assert r.returncode == 0 and not failed, r.stdout + r.stderr
    ran = [l for l in lines if l.startswith('ok ')]
    assert ran, r.stdout + r.stderr
    if all('# SKIP' in l for l in ran):
        pytest.skip(ran[0].split('# SKIP', 1)[1].strip() or 'skipped by the test')


def test_unit_binaries_exist():
    assert UNIT, f'no unit test binaries under {BUILD}/tests/unit'
