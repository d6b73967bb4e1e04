"""Tests of `calibrate_batchnorm`: moving statistics set to batch statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlrecipes.lab.real_backbone import calibrate_batchnorm


def tiny_model() -> keras.Model:
    """Conv -> BN -> ReLU -> Dropout -> Conv -> BN -> pooled, random weights."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.99, name="bn2")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs)


def _input_of(model: keras.Model, name: str, x: np.ndarray) -> np.ndarray:
    """The inference-mode input of layer `name` (its calibrated predecessors)."""
    layer = model.get_layer(name)
    probe = keras.Model(model.input, layer.input)
    return np.asarray(probe(x, training=False))


def test_moving_statistics_equal_the_batch_statistics():
    model = tiny_model()
    x = np.random.default_rng(0).uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    assert calibrate_batchnorm(model, x) == 2
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        inputs = _input_of(model, name, x)
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-3
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(),
            inputs.var(axis=(0, 1, 2)),
            rtol=1e-3,
            atol=1e-3,
        )
    # Momenta and the dropout rate are restored.
    assert model.get_layer("bn1").momentum == 0.9
    assert model.get_layer("bn2").momentum == 0.99
    assert model.get_layer("drop").rate == 0.5


def test_inference_outputs_are_standardised_not_degenerate():
    model = tiny_model()
    x = np.random.default_rng(1).uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    bn2 = keras.Model(model.input, model.get_layer("bn2").output)
    before = np.asarray(bn2(x, training=False))
    calibrate_batchnorm(model, x)
    after = np.asarray(bn2(x, training=False))
    # Initial statistics (mean 0, variance 1) leave raw-pixel scale through;
    # calibrated, each channel has mean 0 and deviation 1 on these images.
    assert np.abs(before.std(axis=(0, 1, 2)) - 1).max() > 1
    np.testing.assert_allclose(after.mean(axis=(0, 1, 2)), 0, atol=1e-3)
    np.testing.assert_allclose(after.std(axis=(0, 1, 2)), 1, atol=1e-2)


def test_calibration_refuses_too_few_images_or_no_batchnorm():
    with pytest.raises(ValueError, match="at least 2 images"):
        calibrate_batchnorm(tiny_model(), np.zeros((1, 8, 8, 3), "float32"))
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="without BatchNormalization"):
        calibrate_batchnorm(plain, np.zeros((4, 3), "float32"))
