"""benchmarks/compare_finetune_controls.py follows the validation protocol (quick).

One quick run on one task (module-scoped) is read by every test: each run keeps
its best-validation epoch, the method is picked on validation and carries its
validation score, test is read exactly once per method and seed (counted here
by wrapping `accuracy_of`), comparisons have intervals and verdicts, and the
results carry provenance.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.script_helpers import load_script
from tlrecipes.lab import evaluation
from tlrecipes.lab.comparison import SeedWarning

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _load_script():
    return load_script("benchmarks/compare_finetune_controls.py")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    script = _load_script()
    out = tmp_path_factory.mktemp("ftc")
    evaluated = []
    original = evaluation.accuracy_of

    def counting(model, x, y, batch_size=256):
        evaluated.append(len(x))
        return original(model, x, y, batch_size)

    mp = pytest.MonkeyPatch()
    mp.setenv("TLRECIPES_OFFLINE", "1")
    mp.setattr(evaluation, "accuracy_of", counting)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeedWarning)
            code = script.main(
                ["--quick", "--tasks", "fashion_a_to_b", "--out", str(out)]
            )
    finally:
        mp.undo()
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    return script, result, evaluated, out


def test_every_method_ran_every_seed_and_kept_its_best_validation_epoch(quick_run):
    script, result, _, _ = quick_run
    seeds = result["plan"]["seeds"]
    assert len(seeds) >= 2
    for method in script.METHODS:
        sel = [r for r in result["rows"] if r["method"] == method]
        assert sorted(r["seed"] for r in sel) == seeds
        for r in sel:
            assert r["val_accuracy"] == max(r["val_curve"])
            assert r["val_curve"][r["best_epoch"] - 1] == r["val_accuracy"]


def test_test_is_read_once_per_method_and_seed(quick_run):
    _, result, evaluated, _ = quick_run
    rows = result["rows"]
    assert all(r["test_reads"] == 1 for r in rows)
    assert result["test_reads"] == len(rows)
    n_test, n_val = rows[0]["n_test"], rows[0]["n_val"]
    assert n_test != n_val
    assert evaluated.count(n_test) == len(rows)  # counted independently


def test_choice_on_validation_and_comparisons(quick_run):
    script, result, _, _ = quick_run
    summary = result["summary"]["fashion_a_to_b"]
    choice = summary["choice"]
    assert choice["chosen_on"] == "validation"
    assert choice["method"] in script.METHODS
    best = max(m["validation"]["mean"] for m in summary["methods"].values())
    assert choice["validation_mean"] == pytest.approx(best)
    assert summary["pick_vs_plain"]["name_a"] == choice["method"]
    names = [c["name_a"] for c in summary["comparisons"]]
    assert names == [m for m in script.METHODS if m != "plain"]
    for c in [*summary["comparisons"], summary["pick_vs_plain"]]:
        assert c["low"] <= c["mean"] <= c["high"]
        assert c["verdict"] in ("ahead", "behind", "tie")
    assert {c["comparisons"] for c in summary["comparisons"]} == {len(names)}


def test_provenance_and_readme(quick_run):
    _, result, _, out = quick_run
    record = result["provenance"]
    for key in ("commit", "dirty", "describe", "backend", "device", "versions"):
        assert key in record
    assert record["settings"]["quick"] is True
    text = (out / "README.md").read_text()
    assert "QUICK smoke run" in text and "Picked on validation" in text
    assert (out / "results.csv").exists() and (out / "finetune_controls.png").exists()


def test_full_run_refuses_too_few_seeds(monkeypatch, tmp_path):
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    script = _load_script()
    with pytest.raises(SystemExit, match="fewer than the"):
        script.main(["--seeds", "2", "--out", str(tmp_path)])
