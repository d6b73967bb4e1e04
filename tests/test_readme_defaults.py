"""README's defaults table and docs/defaults_evidence.md come from the committed run.

`benchmarks/choose_defaults.py` writes `benchmarks/results/defaults_protocol.json`;
the README's table is its `readme_table`, the evidence page its
`render_markdown`, number for number. The rule under test
(`--min-fine-tune-steps`) has its own committed result, rendered on both pages.
"""

import json
from pathlib import Path

from tests.script_helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks/results/defaults_protocol.json"
RULE = ROOT / "benchmarks/results/defaults_rule_min_fine_tune_steps.json"


def _script():
    return load_script("benchmarks/choose_defaults.py", "choose_defaults_readme")


def test_readme_defaults_table_is_the_committed_runs():
    result = json.loads(RESULT.read_text())
    assert not result["quick"] and not result["provenance"]["dirty"]
    table = _script().readme_table(result)
    assert table in (ROOT / "README.md").read_text()
    assert len(table.splitlines()) == 2 + len(result["cells"])


def test_evidence_page_renders_from_the_committed_run():
    result = json.loads(RESULT.read_text())
    page = (ROOT / "docs/defaults_evidence.md").read_text()
    assert _script().render_markdown(result) in page
    assert result["provenance"]["describe"] in page


def test_defaults_page_is_dated_and_names_the_committed_run():
    page = (ROOT / "docs/defaults.md").read_text()
    result = json.loads(RESULT.read_text())
    assert "*Page dated 20" in page and "(defaults_evidence.md)" in page
    assert _script().readme_table(result) in page
    assert result["provenance"]["describe"] in page


def test_the_rule_under_test_renders_from_its_committed_run():
    rule, plain = json.loads(RULE.read_text()), json.loads(RESULT.read_text())
    assert not rule["quick"] and not rule["provenance"]["dirty"]
    assert rule["plan"]["min_fine_tune_steps"] > 0
    script = _script()
    table = script.render_rule_table(rule, plain)
    assert table in (ROOT / "docs/defaults.md").read_text()
    evidence = (ROOT / "docs/defaults_evidence.md").read_text()
    assert script.render_markdown(rule) in evidence and table in evidence
