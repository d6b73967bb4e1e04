"""add_head: structure, freezing, options, errors and .keras round trips."""

import keras
import numpy as np
import pytest

from tests.helpers import tiny_base, tiny_data
from tlrecipes import add_head, flat_layers

pytestmark = pytest.mark.multibackend


def test_structure_and_names():
    base = tiny_base()
    model = add_head(base, 3, hidden_units=(8,))
    names = [layer.name for layer in model.layers]
    assert names == [
        "image",
        "base",
        "head_pool",
        "head_dropout",
        "head_dense_1",
        "head_output",
    ]
    assert model.output_shape == (None, 3)
    assert model.get_layer("head_output").activation.__name__ == "softmax"
    assert model.get_layer("head_output").dtype_policy.compute_dtype == "float32"
    assert model.get_layer("base") is base


def test_base_frozen_on_return_head_trainable():
    base = tiny_base()
    model = add_head(base, 3)
    assert base.trainable_weights == []
    trainable = {id(v) for v in model.trainable_weights}
    head = model.get_layer("head_output").weights
    assert trainable == {id(v) for v in head}


def test_binary_head_and_pooling_options():
    assert add_head(tiny_base(), 1).get_layer("head_output").activation.__name__ == (
        "sigmoid"
    )
    m = add_head(tiny_base(), 2, pooling="flatten", dropout=0)
    assert "head_dropout" not in [layer.name for layer in m.layers]
    assert m.get_layer("head_pool").output.shape[-1] == 8 * 8 * 6
    m = add_head(tiny_base(), 2, pooling="max")
    assert isinstance(m.get_layer("head_pool"), keras.layers.GlobalMaxPooling2D)


def test_preprocessing_and_input_shape():
    base = tiny_base(channels=3)
    gray_to_rgb = keras.layers.Lambda(lambda t: keras.ops.concatenate([t, t, t], -1))
    model = add_head(
        base,
        2,
        input_shape=(8, 8, 1),
        preprocessing=[keras.layers.Rescaling(1 / 255.0), gray_to_rgb],
    )
    assert model.input_shape == (None, 8, 8, 1)
    out = model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0)
    assert out.shape == (2, 2)


def test_bn_training_keeps_batchnorm_trainable_in_frozen_base():
    model = add_head(tiny_base(), 3, bn_training=True)
    base = model.get_layer("base")
    assert base.get_layer("block1_bn").trainable
    assert not base.get_layer("block1_conv").trainable
    bn_weights = {
        id(v)
        for layer in flat_layers(base)
        if "bn" in layer.name
        for v in layer.trainable_weights
    }
    assert bn_weights <= {id(v) for v in model.trainable_weights}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "expected a positive integer. Received: num_classes=0"),
        ({"num_classes": 3, "pooling": "mean"}, "Received: pooling='mean'"),
        ({"num_classes": 3, "dropout": 1.5}, "Received: dropout=1.5"),
        ({"num_classes": 3, "hidden_units": (0,)}, "Received: hidden_units=0"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        add_head(tiny_base(), **kwargs)


def test_base_must_be_a_model():
    with pytest.raises(TypeError, match="expects `base` to be a keras.Model"):
        add_head(keras.layers.Dense(3), 2)


def test_keras_round_trip_predicts_the_same(tmp_path):
    model = add_head(tiny_base(), 3)
    x, _ = tiny_data(8)
    before = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), before, rtol=1e-6, atol=1e-6
    )
    assert [layer.name for layer in loaded.layers] == [
        layer.name for layer in model.layers
    ]
