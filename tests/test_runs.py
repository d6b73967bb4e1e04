"""Single runs: the step budget; each strategy freezes and trains what it says."""

import keras
import numpy as np
import pytest

from tests.experiment_helpers import (
    TINY_TRAIN,
    moved,
    same,
    tiny_source_base,
    tiny_splits,
    weights,
)
from tlrecipes.heads import find_base
from tlrecipes.lab.array_splits import as_array_splits, target_splits
from tlrecipes.lab.backbones import small_convnet
from tlrecipes.lab.configs import TrainConfig
from tlrecipes.lab.evaluation import accuracy_of
from tlrecipes.lab.runs import KERAS_GUIDE, step_budget, train_run


def test_budget_counts_steps_not_epochs():
    spe, epochs, points = step_budget(50, TrainConfig(epochs=10, min_steps=200))
    assert (spe, epochs) == (2, 100)  # 50 images: an epoch is 2 steps
    assert points == list(range(10, 101, 10))
    spe, epochs, points = step_budget(1000, TrainConfig(epochs=10, min_steps=200))
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
    splits = as_array_splits(tiny_splits(), "target")
    config = TrainConfig(epochs=2, min_steps=0, batch_size=12, curve_points=2)
    metrics, model = train_run(source, splits, config, seed=0, **kwargs)
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
    splits = as_array_splits(tiny_splits(), "target")
    _, model = train_run(source, splits, TINY_TRAIN, 0, strategy="scratch")
    base = find_base(model)
    assert moved(base.get_layer("block1_conv"), source.get_layer("block1_conv"))
    mean = weights(base.get_layer("block1_bn"))[2]
    assert not np.allclose(mean, 0.3)  # fresh statistics, updated in training mode
    assert not np.allclose(mean, 0.0)


def _tiny_splits(n_per_class=5, classes=3):
    rng = np.random.default_rng(0)
    y = np.arange(n_per_class * classes) % classes
    x = rng.normal(size=(len(y), 8, 8, 1)).astype("float32") + y[:, None, None, None]
    return as_array_splits((x, y, x, y), "target")


def test_keras_guide_counts_epochs_and_ends_at_1e_5():
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    config = TrainConfig(epochs=1, min_steps=200, batch_size=32, curve_points=3)
    metrics, model = train_run(
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
    metrics, model = train_run(
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
    # The block's 2x2x4 map is flattened into the head, not averaged away.
    assert any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)


def test_earlier_block_avg_pools_the_same_block():
    base = small_convnet((8, 8, 1), blocks=3, width=4)
    config = TrainConfig(epochs=1, min_steps=0)
    _, model = train_run(
        base, _tiny_splits(), config, 0, strategy="earlier_block_avg"
    )
    assert find_base(model).output_shape == base.get_layer("block2_pool").output.shape
    types = [type(layer) for layer in model.layers]
    assert keras.layers.GlobalAveragePooling2D in types
    assert keras.layers.Flatten not in types


def test_feature_extractor_flatten_freezes_the_whole_base_and_keeps_its_map():
    base = small_convnet((8, 8, 1), blocks=3, width=4)
    config = TrainConfig(epochs=1, min_steps=0)
    _, model = train_run(
        base, _tiny_splits(), config, 0, strategy="feature_extractor_flatten"
    )
    frozen = find_base(model)
    assert frozen.output_shape == base.output_shape  # every block, no cut
    assert not frozen.trainable_weights
    types = [type(layer) for layer in model.layers]
    assert keras.layers.Flatten in types
    assert keras.layers.GlobalAveragePooling2D not in types
    # Only the head trains: one weight per flattened feature and class, + bias.
    features = int(np.prod(base.output_shape[1:]))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == (
        features * 3 + 3
    )


def _splits_with_validation(val_per_class=4, n_per_class=6, classes=3):
    rng = np.random.default_rng(1)
    pool = np.repeat(np.arange(classes), 20)
    x = rng.normal(size=(len(pool), 8, 8, 1)).astype("float32")
    x += pool[:, None, None, None]
    y_test = np.arange(30) % classes
    x_test = rng.normal(size=(30, 8, 8, 1)).astype("float32")
    x_test += y_test[:, None, None, None]
    full = as_array_splits((x, pool, x_test, y_test), "target")
    return target_splits(full, n_per_class, 0, val_per_class)


def test_validation_is_disjoint_from_training_and_the_same_for_every_size():
    small = _splits_with_validation(n_per_class=3)
    large = _splits_with_validation(n_per_class=10)
    assert len(small.x_val) == len(large.x_val) == 12
    np.testing.assert_array_equal(small.x_val, large.x_val)
    assert np.bincount(small.y_val).tolist() == [4, 4, 4]
    assert np.bincount(large.y_train).tolist() == [10, 10, 10]
    val_rows = {row.tobytes() for row in large.x_val}
    assert not val_rows & {row.tobytes() for row in large.x_train}
    assert large.identity["val_per_class"] == 4


@pytest.mark.parametrize("strategy", ["scratch", "two_phase"])
def test_with_validation_the_run_ends_on_its_best_validation_point(strategy):
    splits = _splits_with_validation()
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    config = TrainConfig(epochs=6, min_steps=0, batch_size=8, curve_points=6)
    metrics, model = train_run(base, splits, config, 0, strategy=strategy)
    assert metrics["selected_on"] == "validation"
    assert metrics["n_val"] == 12 and len(metrics["curve_accuracy"]) == 6
    # The curve is read on validation; the model kept is its best point.
    assert metrics["val_accuracy"] == max(metrics["curve_accuracy"])
    best = metrics["curve_accuracy"].index(metrics["val_accuracy"])
    assert metrics["best_step"] == metrics["curve_steps"][best]
    assert accuracy_of(model, splits.x_val, splits.y_val) == metrics["val_accuracy"]
    # Test is read once, on that model.
    assert metrics["accuracy"] == accuracy_of(model, splits.x_test, splits.y_test)


def test_without_validation_the_score_is_the_last_test_point():
    config = TrainConfig(epochs=2, min_steps=0, curve_points=2)
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    metrics, _ = train_run(base, _tiny_splits(), config, 0, strategy="scratch")
    assert metrics["selected_on"] == "last test point"
    assert metrics["accuracy"] == metrics["curve_accuracy"][-1]
