"""Experiments: tiny end-to-end sweeps, scratch comparisons, resuming from a store."""

import numpy as np
import pytest

from tests.experiment_helpers import TINY_TRAIN, tiny_source_base, tiny_splits
from tlrecipes.lab.backbones import small_convnet
from tlrecipes.lab.configs import TrainConfig
from tlrecipes.lab.experiments import (
    size_sweep,
    transfer_vs_scratch,
    transferability_by_layer,
)
from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.results import ResultStore, aggregate, transfer_benefit


def test_size_sweep_end_to_end_and_cached_reload(tmp_path, fits):
    source = tiny_source_base()
    data = tiny_splits(per_class=10)
    store = ResultStore(tmp_path / "sweep.jsonl")
    kwargs = {"sizes": [2, 4], "seeds": [0], "config": TINY_TRAIN, "progress": False}
    strategies = ["scratch", "freeze_1"]
    rows = size_sweep(source, data, strategies=strategies, store=store, **kwargs)
    assert [(r["strategy"], r["n_per_class"]) for r in rows] == [
        (s, n) for n in (2, 4) for s in strategies
    ]
    assert [r["n_train"] for r in rows] == [6, 6, 12, 12]
    assert all(r["n_test"] == 18 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert all(len(r["curve_steps"]) == len(r["curve_accuracy"]) >= 1 for r in rows)
    assert len({r["run_id"] for r in rows}) == 4 and len(fits) == 4

    reloaded = ResultStore(tmp_path / "sweep.jsonl")  # a new session
    again = size_sweep(source, data, strategies=strategies, store=reloaded, **kwargs)
    assert again == rows and len(fits) == 4  # nothing retrained

    other = {**kwargs, "config": TrainConfig(epochs=1, min_steps=0, batch_size=6)}
    size_sweep(
        source, data, strategies=["scratch"], store=reloaded, **{**other, "sizes": [2]}
    )
    assert len(fits) == 5  # a changed config is a different run


def test_size_sweep_default_strategies_and_errors():
    source = tiny_source_base()
    data = tiny_splits(per_class=4)
    with pytest.raises(ValueError, match=r"strategy='freeze_3'.*freeze_1"):
        size_sweep(source, data, strategies=["freeze_3"], progress=False)
    with pytest.raises(ValueError, match=r"two_phase"):
        size_sweep(source, data, strategies=["two_phases"], progress=False)
    with pytest.raises(ValueError, match=r"n=5 examples per class.*only 4"):
        size_sweep(source, data, sizes=[5], strategies=["scratch"], progress=False)
    wrong = tiny_splits(per_class=4, shape=(12, 12, 1))
    with pytest.raises(ValueError, match=r"\(12, 12, 1\).*expects \(8, 8, 1\)"):
        size_sweep(source, wrong, sizes=[2], strategies=["scratch"], progress=False)
    with pytest.raises(TypeError, match="SourceModel"):
        size_sweep("not a model", data, progress=False)


def test_size_sweep_on_a_task_uses_its_target_subset(tmp_path):
    class TinyTask:
        name = "tiny_task"

        def __init__(self):
            self.asked = []

        def target_subset(self, n_per_class, seed=0, val_per_class=0):
            self.asked.append((n_per_class, seed))
            x, y, xt, yt = tiny_splits(per_class=n_per_class, seed=seed)
            return ImageSplits(x, y, xt, yt, ["a", "b", "c"], "tiny")

    task = TinyTask()
    source = tiny_source_base()
    rows = size_sweep(
        source, task, sizes=[3], seeds=[0, 1], strategies=["feature_extractor"],
        config=TINY_TRAIN, progress=False,
    )  # fmt: skip
    assert task.asked == [(3, 0), (3, 1)]
    assert [r["n_train"] for r in rows] == [9, 9]
    summary = aggregate(rows, by=["strategy"])
    assert summary[0]["accuracy_n"] == 2


def test_transfer_vs_scratch_benefits_match_the_curves(fits):
    source = tiny_source_base()
    config = TrainConfig(epochs=2, min_steps=0, batch_size=12, curve_points=2)
    result = transfer_vs_scratch(
        source, tiny_splits(), strategy="feature_extractor", seeds=[0, 1],
        config=config, progress=False,
    )  # fmt: skip
    assert [(r["strategy"], r["seed"]) for r in result.rows] == [
        ("feature_extractor", 0), ("scratch", 0),
        ("feature_extractor", 1), ("scratch", 1),
    ]  # fmt: skip
    t, s = result.rows[0], result.rows[1]
    expected = transfer_benefit(
        t["curve_accuracy"], s["curve_accuracy"], steps=t["curve_steps"]
    )
    assert {k: result.benefits[0][k] for k in expected} == pytest.approx(
        expected, nan_ok=True
    )
    assert result.summary["jumpstart_n"] == 2
    assert result.summary["transfer_accuracy_mean"] == pytest.approx(
        np.mean([r["accuracy"] for r in result.rows if r["strategy"] != "scratch"])
    )
    steps, curves = result.curves("scratch")
    assert steps.tolist() == [3, 6] and curves.shape == (2, 2)
    assert len(fits) == 4
    with pytest.raises(ValueError, match="strategy='scratch'"):
        transfer_vs_scratch(source, tiny_splits(), strategy="scratch", progress=False)


def test_transferability_by_layer_end_to_end_resumes_and_reloads(tmp_path, fits):
    source_a = tiny_source_base()
    data = tiny_splits()
    store = ResultStore(tmp_path / "yosinski.jsonl")
    longer = TrainConfig(epochs=2, min_steps=0, batch_size=12, curve_points=1)
    kwargs = {"cuts": [2], "seeds": [0], "config": TINY_TRAIN, "progress": False}
    kwargs["base_b_config"] = longer  # base B trains longer than the variants
    transferability_by_layer(source_a, data, variants=["AnB"], store=store, **kwargs)
    assert len(fits) == 2  # base B, AnB2
    rows = transferability_by_layer(source_a, data, store=store, **kwargs)
    assert [(r["variant"], r["n"]) for r in rows] == [
        ("baseB", None), ("AnB", 2), ("AnB+", 2), ("BnB", 2), ("BnB+", 2)
    ]  # fmt: skip
    assert all(0 <= r["accuracy"] <= 1 and r["n_per_class"] == "all" for r in rows)
    assert [r["steps"] for r in rows] == [6, 3, 3, 3, 3]
    # Base B's row was stored, but BnB copies its weights: trained again (once),
    # then AnB+, BnB, BnB+; AnB2 was reused.
    assert len(fits) == 6
    again = transferability_by_layer(
        source_a, data, store=ResultStore(store.path), **kwargs
    )
    assert again == rows and len(fits) == 6  # a new session: nothing retrained


def test_transferability_by_layer_errors():
    source_a = tiny_source_base()
    data = tiny_splits()
    with pytest.raises(ValueError, match=r"\[3\] outside \[1, 2\]"):
        transferability_by_layer(source_a, data, cuts=[3], progress=False)
    with pytest.raises(ValueError, match=r"\['AnB\+\+'\]"):
        transferability_by_layer(source_a, data, variants=["AnB++"], progress=False)


def test_unknown_strategy_lists_the_new_ones():
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    with pytest.raises(ValueError, match="earlier_block"):
        size_sweep(
            base,
            (np.zeros((2, 8, 8, 1)), [0, 1]) * 2,
            sizes=[1],
            strategies=["earlier_block_2"],
        )
