#!/usr/bin/env python3
"""make check: every test, twice where it matters.

1. The whole suite (tests/: GTest units, functional tests, interop tests with real
   Linux memory and real readers) against build/.
2. The unit and functional suites again against build-asan/ (ASan + UBSan, LeakSanitizer
   on): any sanitizer report on minivm's stderr fails the test that ran it.

Ends with the plain line "N passed, N failed, N skipped" summed over both passes.
"""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(label, build, paths, extra_env):
    xml = Path(tempfile.mkstemp(prefix='minivm-check-', suffix='.xml')[1])
    # make check installs every reader: a missing one fails its tests, not skips them
    env = dict(os.environ, MINIVM_BUILD=str(ROOT / build), MINIVM_REQUIRE_READERS='1',
               **extra_env)
    print(f'==== {label} ({build})', flush=True)
    rc = subprocess.call([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                          f'--junitxml={xml}', *paths], cwd=ROOT, env=env)
    counts = {'passed': 0, 'failed': 0, 'skipped': 0}
    try:
        # one verdict per test: a failure or error anywhere (teardown too) fails it
        for case in ET.parse(xml).getroot().iter('testcase'):
            tags = {child.tag for child in case}
            verdict = ('failed' if tags & {'failure', 'error'} else
                       'skipped' if 'skipped' in tags else 'passed')
            counts[verdict] += 1
    except (ET.ParseError, FileNotFoundError):
        counts['failed'] += 1
    xml.unlink(missing_ok=True)
    if rc not in (0, 5) and counts['failed'] == 0:
        counts['failed'] += 1          # pytest itself failed (collection, internal error)
    return counts


def main():
    total = {'passed': 0, 'failed': 0, 'skipped': 0}
    passes = [('all tests', 'build', ['tests'], {})]
    if (ROOT / 'build-asan' / 'minivm').exists():
        passes.append(('unit and functional tests under ASan+UBSan', 'build-asan',
                       ['tests/test_unit.py', 'tests/functional', 'tests/fuzz'],
                       {'MINIVM_SANITIZE': '1', 'ASAN_OPTIONS': 'detect_leaks=1',
                        'UBSAN_OPTIONS': 'print_stacktrace=1'}))
    for label, build, paths, env in passes:
        for k, v in run(label, build, paths, env).items():
            total[k] += v
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if total['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
