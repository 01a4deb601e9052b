"""docs/qmp.md is what scripts/qapi_gen.py makes from the qapi/ schema: a schema
change without the regenerated page fails here. To regenerate:
    python3 scripts/qapi_gen.py --markdown docs/qmp.md qapi/*.json"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_qmp_reference_is_generated_from_the_schema(tmp_path):
    out = tmp_path / 'qmp.md'
    schema = sorted(str(p) for p in (ROOT / 'qapi').glob('*.json'))
    subprocess.run([sys.executable, str(ROOT / 'scripts' / 'qapi_gen.py'), '--markdown', str(out),
                    *schema], check=True)
    checked_in = (ROOT / 'docs' / 'qmp.md').read_text()
    assert out.read_text() == checked_in, (
        'docs/qmp.md differs from the qapi/ schema: run '
        'python3 scripts/qapi_gen.py --markdown docs/qmp.md qapi/*.json')
