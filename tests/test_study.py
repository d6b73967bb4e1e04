"""`tlrecipes study` end to end on tiny settings, resuming, bad arguments."""

import json

import numpy as np
import pytest

import tlrecipes.experiments as experiments
from tlrecipes.backbones import small_convnet
from tlrecipes.cli import main
from tlrecipes.experiments import KERAS_GUIDE, TrainConfig, _as_splits, _train_run
from tlrecipes.heads import find_base
from tlrecipes.study import SOURCE_ENV, run_demo, run_study

# A tiny source (2 blocks of 4 filters, one epoch on 20 images per class):
# trains in about a second, cached for the whole session.
TINY_SOURCE = json.dumps({"blocks": 2, "width": 4, "epochs": 1, "per_class": 20})
TINY = ["--quick", "--task", "fashion_a_to_b", "--sizes", "2", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _tiny_source(monkeypatch, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "source_cache"
    monkeypatch.setenv(experiments.CACHE_ENV, str(cache))
    monkeypatch.setenv(SOURCE_ENV, TINY_SOURCE)


@pytest.fixture
def trainings(monkeypatch):
    """Counts real trainings: wraps `_train_run` and calls straight through."""
    calls = []
    real = experiments._train_run

    def counting(*args, **kwargs):
        calls.append(kwargs.get("strategy"))
        return real(*args, **kwargs)

    monkeypatch.setattr(experiments, "_train_run", counting)
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
        (["--sizes", "100000"], "Fix: --sizes up to 6000"),
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


def _tiny_splits(n_per_class=5, classes=3):
    rng = np.random.default_rng(0)
    y = np.arange(n_per_class * classes) % classes
    x = rng.normal(size=(len(y), 8, 8, 1)).astype("float32") + y[:, None, None, None]
    return _as_splits((x, y, x, y), "target")


def test_keras_guide_counts_epochs_and_ends_at_1e_5():
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    config = TrainConfig(epochs=1, min_steps=200, batch_size=32, curve_points=3)
    metrics, model = _train_run(
        base, _tiny_splits(), config, 0, strategy="keras_guide_2_1"
    )
    # 15 images, batch 32: one step per epoch; 2 + 1 epochs, min_steps ignored.
    assert (metrics["epochs"], metrics["steps"]) == (3, 3)
    assert metrics["curve_steps"] == [1, 2, 3]
    assert float(model.optimizer.learning_rate) == pytest.approx(
        KERAS_GUIDE["fine_tune_lr"]
    )
    assert find_base(model).trainable  # the guide unfreezes the whole base


def test_earlier_block_reads_a_frozen_middle_block():
    base = small_convnet((8, 8, 1), blocks=3, width=4)
    config = TrainConfig(epochs=2, min_steps=0)
    metrics, model = _train_run(
        base, _tiny_splits(), config, 0, strategy="earlier_block"
    )
    cut = find_base(model)
    assert cut.output_shape == base.get_layer("block2_pool").output.shape
    assert not any(layer.name.startswith("block3_") for layer in cut.layers)
    for layer in cut.layers:  # frozen: the source weights, exactly
        for got, want in zip(
            layer.get_weights(), base.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want)
    assert metrics["steps"] == 2


def test_unknown_strategy_lists_the_new_ones():
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    with pytest.raises(ValueError, match="earlier_block"):
        experiments.size_sweep(
            base,
            (np.zeros((2, 8, 8, 1)), [0, 1]) * 2,
            sizes=[1],
            strategies=["earlier_block_2"],
        )


def test_demo_reports_both_phases(capsys):
    metrics = run_demo(
        images_per_class=2,
        source_per_class=10,
        source_epochs=1,
        head_epochs=1,
        fine_tune_epochs=1,
    )
    out = capsys.readouterr().out
    assert set(metrics) == {
        "source_accuracy",
        "head_accuracy",
        "fine_tuned_accuracy",
        "seconds",
    }
    assert all(
        0.0 <= metrics[k] <= 1.0 for k in ("head_accuracy", "fine_tuned_accuracy")
    )
    assert "frozen-base" in out and "fine-tuned test accuracy" in out
