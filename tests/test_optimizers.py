"""A fresh optimizer per phase, and per-layer rate multipliers (optimizers.py)."""

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, weights_of
from tlrecipes.optimizers import make_optimizer, with_lr_multipliers

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


def test_make_optimizer_copies_the_kind_and_settings():
    opt = make_optimizer(keras.optimizers.SGD(momentum=0.9), 0.5)
    assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == 0.9
    assert float(opt.learning_rate) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        make_optimizer("adamm", 1e-3)
    with pytest.raises(ValueError, match="positive number"):
        make_optimizer("adam", 0.0)
