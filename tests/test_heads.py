"""add_head: structure, freezing, options, errors and .keras round trips."""

import keras
import numpy as np
import pytest

from tests.helpers import tiny_base, tiny_data
from tlrecipes import add_head, flat_layers, predict_proba, two_phase_fit
from tlrecipes.heads import find_head_start, head_layers

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
        "head_logits",
    ]
    assert model.output_shape == (None, 3)
    assert model.get_layer("head_logits").activation.__name__ == "linear"  # logits
    assert model.get_layer("head_logits").dtype_policy.compute_dtype == "float32"
    assert model.get_layer("base") is base


def test_base_frozen_on_return_head_trainable():
    base = tiny_base()
    model = add_head(base, 3)
    assert base.trainable_weights == []
    trainable = {id(v) for v in model.trainable_weights}
    head = model.get_layer("head_logits").weights
    assert trainable == {id(v) for v in head}


def test_binary_head_and_pooling_options():
    binary = add_head(tiny_base(), 1)
    assert binary.output_shape == (None, 1)
    assert binary.get_layer("head_logits").activation.__name__ == "linear"
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


def test_predict_proba_reads_probabilities_from_logits():
    x, _ = tiny_data(6)
    model = add_head(tiny_base(), 3)
    logits = model.predict(x, verbose=0)
    probs = predict_proba(model, x)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    binary = add_head(tiny_base(), 1)
    p = predict_proba(binary, x)
    np.testing.assert_allclose(
        p, 1 / (1 + np.exp(-binary.predict(x, verbose=0))), rtol=1e-5, atol=1e-7
    )


def test_num_classes_from_numpy_labels():
    _, y = tiny_data()
    model = add_head(tiny_base(), y.max() + 1)  # an np.int64, as users compute it
    assert model.output_shape == (None, 3)
    with pytest.raises(ValueError, match="`num_classes`, expected a positive integer"):
        add_head(tiny_base(), np.int64(0))


def _base_with_a_head_named_layer():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="head_conv")(x)  # the base's
    x = keras.layers.Conv2D(4, 3, padding="same", name="block2_conv")(x)
    return keras.Model(inputs, x, name="base")


def test_a_base_layer_named_head_is_not_taken_for_the_head():
    x, y = tiny_data()
    model = add_head(_base_with_a_head_named_layer(), 3)
    assert [layer.name for layer in head_layers(model)] == [
        "head_pool",
        "head_dropout",
        "head_logits",
    ]
    base = model.get_layer("base")
    before = [np.array(w) for w in base.get_weights()]
    two_phase_fit(model, x, y, head_epochs=2, fine_tune_epochs=0, verbose=0)
    for b, a in zip(before, base.get_weights()):
        np.testing.assert_array_equal(b, a)  # phase 1 trained the head only


def test_flat_model_head_is_the_trailing_run_of_head_layers():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="head_conv")(inputs)  # not the head
    x = keras.layers.Flatten(name="head_flat")(x)
    x = keras.layers.Dense(4, name="features")(x)
    outputs = keras.layers.Dense(3, name="head_logits")(x)
    model = keras.Model(inputs, outputs)
    assert flat_layers(model)[find_head_start(model)].name == "head_logits"



def test_a_saved_grayscale_head_loads_in_a_fresh_process(tmp_path):
    """`import tlrecipes` is lazy; safe_load_model still finds RepeatChannels."""
    import subprocess
    import sys

    base = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)], name="rgb_base"
    )
    model = add_head(base, 3, input_shape=(8, 8, 1))
    assert any(type(layer).__name__ == "RepeatChannels" for layer in model.layers)
    path = tmp_path / "gray.keras"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", keras.ops.convert_to_numpy(model(x)))
    code = (
        "import sys, numpy as np, tlrecipes as tl\n"
        f"model = tl.safe_load_model({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"y = np.load({str(tmp_path / 'y.npy')!r})\n"
        "import keras\n"
        "assert np.allclose(keras.ops.convert_to_numpy(model(x)), y, atol=1e-6)\n"
        "print('loaded', type(model.layers[1]).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded" in out.stdout


@pytest.mark.multibackend
def test_dropout_inside_the_base_is_active_during_fit():
    """Keras 3 passes the outer training flag into the base despite training=False."""
    base = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dropout(0.5)],
        name="dropout_base",
    )
    model = add_head(base, 2, dropout=0.0)
    x = np.ones((4, 4), "float32")

    def out(training):
        return keras.ops.convert_to_numpy(model(x, training=training))

    assert not base.trainable
    assert not np.allclose(out(True), out(True))  # base Dropout draws each call
    np.testing.assert_array_equal(out(False), out(False))
    # Feature caching notices it: the base's features are not fixed in training.
    y = np.arange(4) % 2
    history = two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=0, verbose=0)
    assert history.features_cached is False
    assert "training mode" in history.feature_cache_note
