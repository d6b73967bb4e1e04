"""`advise` answers from measurements: the shipped evidence is the committed study."""

import json
from pathlib import Path

import pytest

from tlrecipes.lab.advice import advise
from tlrecipes.lab.cli import main
from tlrecipes.lab.evidence import (
    EVIDENCE_FILE,
    compact_evidence,
    describe_measurement,
    load_evidence,
    measured_row,
)

STUDY = Path(__file__).resolve().parents[1] / "reports" / "study" / "summary.json"


def test_shipped_evidence_is_the_committed_study_compacted():
    committed = compact_evidence(json.loads(STUDY.read_text()))
    assert json.loads(EVIDENCE_FILE.read_text()) == committed, (
        "re-ship it: python -m tlrecipes.lab.evidence reports/study/summary.json"
    )
    assert committed["provenance"]["commit"] and not committed["provenance"]["dirty"]


def test_each_case_quotes_its_row_interval_and_verdict():
    evidence = load_evidence()
    for size, similarity in [
        ("small", "similar"), ("small", "different"),
        ("large", "similar"), ("large", "different"),
    ]:
        row = measured_row(evidence, size, similarity)
        advice = advise(10 if size == "small" else 400, similarity == "similar")
        vs = row["strategies"][advice.strategy]["vs_scratch"]
        text = str(advice)
        assert f"Row: {row['task']}, {row['n_per_class']} images per class" in text
        low, high = f"{100 * vs['low']:+.1f}", f"{100 * vs['high']:+.1f}"
        assert f"{low} to {high}) -> {vs['verdict']}" in text
        assert vs["verdict"] == (
            "ahead" if vs["low"] > 0 else "behind" if vs["high"] < 0 else "tie"
        )
        assert ("The evidence is a tie" in text) == (vs["verdict"] == "tie")
        assert f"Best on validation: {row['best']}" in text


def _evidence(verdict_low, verdict_high, best="two_phase", vs_best=None):
    verdict = (
        "ahead" if verdict_low > 0 else "behind" if verdict_high < 0 else "tie"
    )
    comparison = {
        "name": "two_phase - scratch", "mean": (verdict_low + verdict_high) / 2,
        "low": verdict_low, "high": verdict_high, "n": 5, "comparisons": 5,
        "confidence": 0.95,
        "verdict": verdict,
    }
    return {
        "format": "tlrecipes-evidence/1",
        "provenance": {"commit": "abc1234", "dirty": False, "backend": "jax",
                       "device": "GPU", "date": "2026-12-07"},
        "seeds": [0, 1, 2, 3, 4],
        "cases": [{
            "task": "t", "relation": "similar", "size": "large", "n_per_class": 500,
            "best": best, "selected_on": "validation",
            "advised_vs_best": vs_best or [],
            "strategies": {
                "two_phase": {"accuracy_mean": 0.9, "vs_scratch": comparison}
            },
        }],
    }


def test_a_behind_row_says_the_measurement_disagrees():
    lines = describe_measurement(
        _evidence(-0.05, -0.01), "large", "similar", "two_phase"
    )
    assert any("-> behind" in line for line in lines)
    assert any("disagrees with the table" in line for line in lines)
    assert not any("tie" in line for line in lines)


def test_an_advised_recipe_beaten_on_validation_names_the_best():
    vs_best = [{"name": "fine_tune_all - two_phase", "mean": 0.03, "low": 0.01,
                "high": 0.05, "verdict": "ahead", "n": 5, "comparisons": 1,
                "confidence": 0.95}]
    lines = describe_measurement(
        _evidence(0.01, 0.05, best="fine_tune_all", vs_best=vs_best),
        "large", "similar", "two_phase", images_per_class=500,
    )
    assert "  Best on validation: fine_tune_all." in lines
    assert any(
        "fine_tune_all - two_phase: +3.0 points" in line and "consider it" in line
        for line in lines
    )
    assert not any("not a measured size" in line for line in lines)


def test_missing_row_is_said():
    assert describe_measurement(_evidence(0.0, 0.1), "small", "different", "x") == [
        "Measured: no small/different row in this evidence."
    ]


def test_a_study_summary_path_and_none(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(STUDY.read_text())
    assert advise(10, True, evidence=path).measured == advise(10, True).measured
    assert advise(10, True, evidence=None).measured == []
    assert "not checked against measurements" in str(advise(10, True, evidence=None))


@pytest.mark.parametrize("content", [None, "not json", '{"x": 1}'])
def test_bad_evidence_is_refused_with_a_fix(tmp_path, content):
    path = tmp_path / "summary.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match="Fix:"):
        advise(10, True, evidence=path)


def test_cli_evidence_flag(tmp_path, capsys):
    assert main(["advise", "--images-per-class", "10", "--similar", "no"]) == 0
    assert "Measured (tlrecipes study at" in capsys.readouterr().out
    assert main(["advise", "--images-per-class", "10", "--similar", "no",
                 "--evidence", "none"]) == 0
    assert "Measured" not in capsys.readouterr().out
    assert main(["advise", "--images-per-class", "10", "--similar", "no",
                 "--evidence", str(tmp_path / "missing.json")]) == 2
    assert "is not a file" in capsys.readouterr().err


CASES = [
    ("small", "similar"), ("small", "different"),
    ("large", "similar"), ("large", "different"),
]  # fmt: skip


def test_study_cell_is_the_report_row_of_its_case():
    """The case notebooks' cell of the 2x2 is REPORT.md's row (and so README's)."""
    from tlrecipes import lab
    from tlrecipes.lab.study_summary import advised_cell, best_cell, case_name, verdict

    report = (STUDY.parent / "REPORT.md").read_text()
    evidence = load_evidence()
    for size, similarity in CASES:
        row = measured_row(evidence, size, similarity)
        case = {**row, "comparisons": row["advised_vs_best"]}
        best, gain = best_cell(case)
        cells = [case_name(case), row["advice"], best, gain, advised_cell(case),
                 verdict(case)]  # fmt: skip
        assert "| " + " | ".join(cells) + " |" in report, (size, similarity)
        text = lab.study_cell(size, similarity)
        assert all(cell in text for cell in cells)
        assert f"at {evidence['provenance']['commit'][:7]}" in text


def test_study_cell_rejects_a_case_outside_the_table():
    from tlrecipes import lab

    with pytest.raises(ValueError, match="expected one of \\['small', 'large'\\]"):
        lab.study_cell("medium", "similar")
    old = load_evidence()
    for case in old["cases"]:
        case["advice"] = None
    with pytest.raises(ValueError, match="re-compact"):
        lab.study_cell("small", "similar", old)
