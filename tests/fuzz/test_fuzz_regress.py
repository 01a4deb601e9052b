"""Every fuzzing seed and regression input, replayed through the fuzz targets.

Two builds of each target run every input in tests/fuzz/seeds/<target>/ and
tests/fuzz/regress/<target>/:
  - the replay drivers that tests/fuzz/meson.build builds into the meson build
    (MINIVM_BUILD, default build/; under ASan+UBSan in build-asan/), so that
    `make check` runs them on every build;
  - the libFuzzer targets that tests/fuzz/run.sh builds with clang into
    MINIVM_FUZZ_BUILD (default build-fuzz/), when they exist.
A crash, a sanitizer report or taking longer than MINIVM_FUZZ_INPUT_TIMEOUT
seconds (default 10; every input here runs in well under a second) fails it. Inputs listed in
tests/fuzz/regress/known-unfixed.txt are expected to fail until their fix lands.
Also checks that the fuzz sandbox still covers every file, socket and process
call minivm's core library makes (tests/fuzz/sandbox.forbidden).
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD = Path(os.environ.get('MINIVM_BUILD', ROOT / 'build'))
FUZZ_BUILD = Path(os.environ.get('MINIVM_FUZZ_BUILD', ROOT / 'build-fuzz'))
TARGETS = ['fuzz_qmp', 'fuzz_hmp', 'fuzz_vmcore', 'fuzz_vmcoreinfo', 'fuzz_pagefilter']
SANITIZER_REPORT = re.compile(r'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|'
                              r'ERROR: libFuzzer|SUMMARY: UndefinedBehaviorSanitizer')
TIMEOUT = int(os.environ.get('MINIVM_FUZZ_INPUT_TIMEOUT', '10'))


def inputs():
    out = []
    for t in TARGETS:
        for kind in ('seeds', 'regress'):
            d = HERE / kind / t
            if d.is_dir():
                out += [(t, kind, p) for p in sorted(d.iterdir()) if p.is_file()]
    return out


def known_unfixed():
    """{'target/name': reason} from regress/known-unfixed.txt ('target/name: reason')."""
    f = HERE / 'regress' / 'known-unfixed.txt'
    known = {}
    if f.exists():
        for line in f.read_text().splitlines():
            line = line.split('#', 1)[0].strip()
            if ':' in line:
                key, reason = line.split(':', 1)
                known[key.strip()] = reason.strip()
    return known


INPUTS = inputs()
IDS = [f'{t}/{kind}/{p.name}' for t, kind, p in INPUTS]
KNOWN = known_unfixed()


def run_input(argv, path, request, wall=TIMEOUT):
    tmp = request.getfixturevalue('tmp_path')   # the target's private dir goes here
    t = Path(argv[0]).name.replace('-replay', '')
    reason = KNOWN.get(f'{t}/{path.name}')
    if reason and path.parent.parent.name == 'regress':
        request.applymarker(pytest.mark.xfail(reason=f'known, not fixed yet: {reason}',
                                              strict=False))
    env = dict(os.environ, TMPDIR=str(tmp))
    env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1')
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
    try:
        r = subprocess.run(argv + [str(path)], capture_output=True, text=True, errors='replace',
                           timeout=wall, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f'{path} did not finish within {TIMEOUT}s (a hang is a bug here)')
    report = SANITIZER_REPORT.search(r.stderr)
    assert r.returncode == 0 and not report, (
        f'{" ".join(argv)} {path}: exit {r.returncode}\n{r.stderr[-6000:]}')


@pytest.mark.parametrize('target,kind,path', INPUTS, ids=IDS)
def test_replay(target, kind, path, request):
    exe = BUILD / 'tests' / 'fuzz' / f'{target}-replay'
    if not exe.exists():
        pytest.skip(f'{exe} not built: the meson build lacks subdir(\'tests/fuzz\')')
    run_input([str(exe)], path, request)


@pytest.mark.parametrize('target,kind,path', INPUTS, ids=IDS)
def test_libfuzzer(target, kind, path, request):
    exe = FUZZ_BUILD / target
    if not exe.exists():
        pytest.skip(f'libFuzzer targets not built in {FUZZ_BUILD}: run tests/fuzz/run.sh build '
                    '(make fuzz; needs clang)')
    run_input([str(exe), '-runs=1', f'-timeout={TIMEOUT}'], path, request, wall=TIMEOUT + 10)


def test_every_target_has_seeds():
    for t in TARGETS:
        assert any((HERE / 'seeds' / t).iterdir()), f'no seeds for {t}'


def test_sandbox_covers_core():
    """minivm's core may reach files, sockets and processes only through the calls the
    fuzz sandbox redirects (sandbox.syms); fuzzing would otherwise write anywhere."""
    lib = BUILD / 'libminivm-core.a'
    if not lib.exists():
        pytest.skip(f'{lib} not built')
    words = re.sub(r'#.*', '', (HERE / 'sandbox.forbidden').read_text()).split()
    mapped = {line.split()[0] for line in (HERE / 'sandbox.syms').read_text().splitlines()
              if line.strip()}
    r = subprocess.run(['nm', '-u', '--format=just-symbols', str(lib)], capture_output=True,
                       text=True, check=True)
    used = set(r.stdout.split())
    missing = sorted((used & set(words)) - mapped)
    assert not missing, (f'minivm now calls {missing}: add fuzz_sandbox_ wrappers to '
                         'tests/fuzz/fuzz_common.c and lines to tests/fuzz/sandbox.syms')
