"""Shared by the experiment tests: tiny configs, data and a source base to transfer."""

import keras
import numpy as np

from tlrecipes.lab.backbones import small_convnet
from tlrecipes.lab.configs import SourceConfig, TrainConfig

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
