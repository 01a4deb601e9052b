"""Run every GTest unit binary (tests/unit) and fail on any failing case."""
import os
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ.get('MINIVM_BUILD', Path(__file__).resolve().parents[1] / 'build'))
UNIT = sorted(p for p in (BUILD / 'tests' / 'unit').glob('test-*')
              if p.is_file() and os.access(p, os.X_OK))


@pytest.mark.parametrize('binary', UNIT, ids=[p.name for p in UNIT])
def test_unit(binary):
    r = subprocess.run([str(binary), '--tap'], capture_output=True, text=True, timeout=300)
    failed = [l for l in r.stdout.splitlines() if l.startswith('not ok')]
    assert r.returncode == 0 and not failed, r.stdout + r.stderr


def test_unit_binaries_exist():
    assert UNIT, f'no unit test binaries under {BUILD}/tests/unit'
