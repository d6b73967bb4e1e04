"""Tiny real models and data shared by the tests."""

import keras
import numpy as np

from tlrecipes import add_head


def tiny_base(name: str = "base", channels: int = 1) -> keras.Model:
    """Two conv blocks with BatchNorm: small enough to train in a second."""
    inputs = keras.Input((8, 8, channels))
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.5, name="block1_bn")(x)
    x = keras.layers.ReLU(name="block1_relu")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="block2_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.5, name="block2_bn")(x)
    x = keras.layers.ReLU(name="block2_relu")(x)
    return keras.Model(inputs, x, name=name)


def tiny_model(num_classes: int = 3, **kwargs) -> keras.Model:
    return add_head(tiny_base(), num_classes, **kwargs)


def tiny_data(n: int = 48, num_classes: int = 3, seed: int = 0):
    """Learnable data: the class sets the mean brightness of the image."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    return x, y.astype("int64")


def weights_of(layers) -> list[np.ndarray]:
    return [
        np.array(keras.ops.convert_to_numpy(w))
        for layer in layers
        for w in layer.weights
    ]


def assert_identical(before: list[np.ndarray], after: list[np.ndarray]) -> None:
    assert len(before) == len(after)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)


def assert_all_changed(before: list[np.ndarray], after: list[np.ndarray]) -> None:
    assert len(before) == len(after) and before
    for b, a in zip(before, after):
        assert not np.array_equal(b, a), "a weight that must train did not move"
