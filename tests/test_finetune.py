"""Discriminative learning rates, gradual unfreezing and surgical fine-tuning."""

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_data, tiny_model, weights_of
from tlrecipes import two_phase_fit
from tlrecipes.finetune import (
    gradual_unfreeze_fit,
    layer_groups,
    lr_multipliers,
    surgical_fit,
    train_only,
    with_lr_multipliers,
)
from tlrecipes.freezing import flat_layers

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
}


def _np(x) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(x))


def _twin_layers():
    """Two Dense layers with identical weights."""
    layers = []
    for name in ("slow", "fast"):
        layer = keras.layers.Dense(3, name=name, kernel_initializer="ones")
        layer.build((None, 4))
        layers.append(layer)
    return layers


@pytest.mark.multibackend
@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_multiplier_scales_the_update_for_identical_gradients(kind):
    slow, fast = _twin_layers()
    opt = with_lr_multipliers(OPTIMIZERS[kind](), {"slow": 0.1, "fast": 1.0})
    variables = [slow.kernel, slow.bias, fast.kernel, fast.bias]
    before = [_np(v) for v in variables]
    rng = np.random.default_rng(0)
    # AdamW's decay is proportional to the weights, which differ after one
    # step, so only its first step is exactly in ratio.
    for _ in range(1 if kind == "adamw" else 3):  # identical gradients
        gk = rng.normal(size=(4, 3)).astype("float32")
        gb = rng.normal(size=(3,)).astype("float32")
        opt.apply([gk, gb, gk, gb], variables)
    moved = [_np(v) - b for v, b in zip(variables, before, strict=True)]
    assert np.abs(moved[2]).min() > 0 and np.abs(moved[3]).min() > 0
    np.testing.assert_allclose(moved[0], 0.1 * moved[2], rtol=2e-3, atol=1e-8)
    np.testing.assert_allclose(moved[1], 0.1 * moved[3], rtol=2e-3, atol=1e-8)
    assert type(opt).__name__ == f"Discriminative{type(OPTIMIZERS[kind]()).__name__}"
    assert opt.multiplier(slow.kernel) == 0.1 and opt.multiplier(fast.bias) == 1.0


def _parallel_model() -> keras.Model:
    """Two identical Dense branches summed: both get the same gradient."""
    inputs = keras.Input((4,))
    branches = [
        keras.layers.Dense(2, name=name, kernel_initializer="ones")(inputs)
        for name in ("slow", "fast")
    ]
    return keras.Model(inputs, keras.layers.Add(name="sum")(branches))


def _linear_loss(y_true, y_pred):
    return keras.ops.mean(y_pred)  # a gradient that does not depend on the weights


@pytest.mark.multibackend
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_multiplier_ratio_holds_inside_model_fit(kind):
    model = _parallel_model()
    opt = with_lr_multipliers(OPTIMIZERS[kind](), {"slow": 0.1})
    model.compile(optimizer=opt, loss=_linear_loss)
    before = {n: _np(model.get_layer(n).kernel) for n in ("slow", "fast")}
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model.fit(x, np.zeros((16, 2), "float32"), batch_size=8, epochs=1, verbose=0)
    slow = _np(model.get_layer("slow").kernel) - before["slow"]
    fast = _np(model.get_layer("fast").kernel) - before["fast"]
    assert np.abs(fast).min() > 0
    np.testing.assert_allclose(slow, 0.1 * fast, rtol=2e-3, atol=1e-8)


@pytest.mark.multibackend
def test_zero_multiplier_glob_and_default():
    model = _parallel_model()
    opt = with_lr_multipliers(
        "sgd", {"sl*": 0.0}, learning_rate=0.1, default_multiplier=0.5
    )
    assert opt.multiplier(model.get_layer("slow").kernel) == 0.0
    assert opt.multiplier(model.get_layer("fast").kernel) == 0.5
    model.compile(optimizer=opt, loss=_linear_loss)
    slow = weights_of([model.get_layer("slow")])
    fast = weights_of([model.get_layer("fast")])
    x = np.ones((8, 4), "float32")
    model.fit(x, np.zeros((8, 2), "float32"), epochs=1, verbose=0)
    assert_identical(slow, weights_of([model.get_layer("slow")]))
    assert not np.array_equal(fast[0], _np(model.get_layer("fast").kernel))


@pytest.mark.multibackend
def test_saved_model_loads_with_optimizer_and_multipliers(tmp_path):
    model = _parallel_model()
    model.compile(
        optimizer=with_lr_multipliers("adam", {"slow": 0.1}, learning_rate=0.01),
        loss=_linear_loss,
    )
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.zeros((8, 2), "float32")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    saved = weights_of([model])
    custom = {"_linear_loss": _linear_loss}  # the test's loss, not the optimizer
    loaded = keras.models.load_model(path, custom_objects=custom, compile=True)
    assert type(loaded.optimizer).__name__ == "DiscriminativeAdam"
    assert loaded.optimizer.lr_multipliers == {"slow": 0.1}
    assert_identical(
        [_np(v) for v in model.optimizer.variables],
        [_np(v) for v in loaded.optimizer.variables],
    )
    for m in (model, loaded):  # one more identical step: same update
        m.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-6, atol=1e-7)
    plain = keras.models.load_model(path, compile=False)
    assert_identical(saved, weights_of([plain]))


def test_layer_groups_and_multipliers():
    model = tiny_model()
    groups = layer_groups(model)
    assert list(groups) == ["block1", "block2", "head"]
    assert groups["head"] == ["head_pool", "head_dropout", "head_output"]
    m = lr_multipliers(model)
    assert m["head_output"] == 1.0
    assert m["block2_conv"] == pytest.approx(1 / 2.6)
    assert m["block1_bn"] == pytest.approx(1 / 2.6**2)
    geometric = lr_multipliers(model, lowest=0.01)
    assert geometric["block1_conv"] == pytest.approx(0.01)
    assert geometric["block2_conv"] == pytest.approx(0.1)
    custom = layer_groups(model, starts=["block1_conv", "head_pool"])
    assert list(custom) == ["block1_conv", "head_pool"]
    with pytest.raises(ValueError, match="block9"):
        layer_groups(model, starts=["block9"])
    with pytest.raises(ValueError, match="factor"):
        lr_multipliers(model, factor=0.5)
    with pytest.raises(ValueError, match="lowest"):
        lr_multipliers(model, lowest=2.0)


def test_invalid_multipliers_are_refused():
    with pytest.raises(ValueError, match="block1"):
        with_lr_multipliers("adam", {"block1": -1.0})
    with pytest.raises(TypeError, match="dict"):
        with_lr_multipliers("adam", [0.1, 1.0])
    with pytest.raises(TypeError, match="optimizer"):
        with_lr_multipliers(3, {})


def test_two_phase_fit_uses_multipliers_in_phase_two():
    model = tiny_model()
    x, y = tiny_data()
    base = model.get_layer("base")
    conv1, conv2 = base.get_layer("block1_conv"), base.get_layer("block2_conv")

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.before = (weights_of([conv1]), weights_of([conv2]))

    snap = Snapshot()
    two_phase_fit(
        model, x, y, head_epochs=1, fine_tune_epochs=1, min_head_steps=0,
        lr_multipliers={"block1_*": 0.0}, callbacks=[snap], verbose=0, seed=0,
    )  # fmt: skip
    assert type(model.optimizer).__name__ == "DiscriminativeAdam"
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)
    assert_identical(snap.before[0], weights_of([conv1]))  # multiplier 0
    assert not np.array_equal(snap.before[1][0], weights_of([conv2])[0])


def _trainable_names(model):
    return [layer.name for layer in flat_layers(model) if layer.trainable_weights]


@pytest.mark.multibackend
def test_gradual_unfreezing_opens_one_block_per_epoch():
    model = tiny_model()
    x, y = tiny_data()
    base = model.get_layer("base")
    watched = {
        "block1_conv": base.get_layer("block1_conv"),
        "block2_conv": base.get_layer("block2_conv"),
        "block1_bn": base.get_layer("block1_bn"),
        "head_output": model.get_layer("head_output"),
    }

    class Moves(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.moved = {}

        def on_epoch_begin(self, epoch, logs=None):
            self.start = {k: weights_of([v]) for k, v in watched.items()}
            self.flags = _trainable_names(self.model)

        def on_epoch_end(self, epoch, logs=None):
            self.moved[epoch] = {
                k: any(
                    not np.array_equal(a, b)
                    for a, b in zip(self.start[k], weights_of([v]), strict=True)
                )
                for k, v in watched.items()
            }
            self.moved[epoch]["flags"] = self.flags

    moves = Moves()
    hist = gradual_unfreeze_fit(model, x, y, callbacks=[moves], verbose=0)
    assert [s["unfreeze_from"] for s in hist.stages] == ["block2_conv", "block1_conv"]
    assert hist.stages[0]["trainable"] == ["block2_conv", "head_output"]
    assert hist.stages[1]["trainable"] == ["block1_conv", "block2_conv", "head_output"]
    assert moves.moved[0]["flags"] == hist.stages[0]["trainable"]
    assert moves.moved[1]["flags"] == hist.stages[1]["trainable"]
    expected = {
        0: {"block1_conv": False, "block2_conv": True, "head_output": True},
        1: {"block1_conv": True, "block2_conv": True, "head_output": True},
    }
    for epoch, moved in expected.items():
        for name, should_move in moved.items():
            assert moves.moved[epoch][name] is should_move, (epoch, name)
        assert moves.moved[epoch]["block1_bn"] is False  # BatchNorm stays frozen
    assert hist.epoch == [0, 1] and len(hist.history["loss"]) == 2


@pytest.mark.parametrize(
    ("block", "trained"),
    [
        ("first", ["block1_conv"]),
        ("last", ["block2_conv"]),
        ("middle", ["block1_conv"]),
        ("head", ["head_output"]),
        (["block2", "head"], ["block2_conv", "head_output"]),
    ],
)
def test_train_only_chooses_blocks(block, trained):
    model = train_only(tiny_model(), block)
    assert _trainable_names(model) == trained


def test_train_only_unknown_block_lists_groups():
    with pytest.raises(ValueError, match=r"block1', 'block2', 'head"):
        train_only(tiny_model(), "block7")


@pytest.mark.multibackend
def test_surgical_fit_moves_only_the_chosen_block():
    model = tiny_model()
    x, y = tiny_data()
    base = model.get_layer("base")
    others = [base.get_layer("block2_conv"), base.get_layer("block1_bn")]
    others.append(model.get_layer("head_output"))
    chosen = base.get_layer("block1_conv")
    before, before_chosen = weights_of(others), weights_of([chosen])
    surgical_fit(model, x, y, block="first", epochs=1, learning_rate=1e-2, verbose=0)
    assert_identical(before, weights_of(others))
    assert not np.array_equal(before_chosen[0], weights_of([chosen])[0])
    with pytest.raises(ValueError, match="epochs"):
        surgical_fit(model, x, y, block="first", epochs=0)
