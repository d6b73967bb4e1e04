"""freeze / unfreeze / freeze_until / trainable_summary on real (tiny) models."""

import keras
import pytest

from tests.helpers import tiny_model
from tlrecipes import (
    add_head,
    flat_layers,
    freeze,
    freeze_until,
    trainable_summary,
    unfreeze,
)
from tlrecipes.freezing import is_batchnorm

pytestmark = pytest.mark.multibackend


def _mobilenet_model():
    base = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), include_top=False, weights=None
    )
    return base, add_head(base, 5)


def _expected_flags(model, start_name):
    leaves = flat_layers(model)
    names = [layer.name for layer in leaves]
    start = names.index(start_name)
    return {
        layer.name: i >= start and not is_batchnorm(layer)
        for i, layer in enumerate(leaves)
    }


def _actual_flags(model):
    """Effective flags: a leaf trains iff Keras will give it gradients."""
    trainable_ids = {id(v) for v in model.trainable_weights}
    out = {}
    for layer in flat_layers(model):
        if layer.weights:
            out[layer.name] = any(id(v) in trainable_ids for v in layer.weights)
    return out


def test_freeze_until_nested_application_by_name():
    base, model = _mobilenet_model()
    freeze_until(model, "block_13_expand")
    expected = _expected_flags(model, "block_13_expand")
    actual = _actual_flags(model)
    assert actual == {name: expected[name] for name in actual}
    # Spot checks a reader can verify by eye.
    assert not model.get_layer(base.name).get_layer("block_12_project").trainable
    assert base.get_layer("block_13_expand").trainable
    assert not base.get_layer("block_13_expand_BN").trainable  # BN stays frozen
    assert model.get_layer("head_logits").trainable
    assert base.trainable  # container open, or the inner flags would be ignored


def test_freeze_until_nested_application_by_index_and_negative_index():
    base, model = _mobilenet_model()
    names = [layer.name for layer in flat_layers(model)]
    index = names.index("block_13_expand")
    freeze_until(model, "block_13_expand")
    by_name = _actual_flags(model)
    freeze(model)
    freeze_until(model, index)
    assert _actual_flags(model) == by_name
    freeze(model)
    freeze_until(model, index - len(names))
    assert _actual_flags(model) == by_name


def test_freeze_until_keeps_the_tutorials_fine_tune_at_meaning_on_a_flat_base():
    base = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), include_top=False, weights=None
    )
    freeze_until(base, 100)
    for i, layer in enumerate(base.layers):
        assert layer.trainable == (i >= 100 and not is_batchnorm(layer)), layer.name


def test_train_bn_lets_batchnorm_train_everywhere():
    model = tiny_model()
    freeze_until(model, "block2_conv", train_bn=True)
    base = model.get_layer("base")
    assert base.get_layer("block1_bn").trainable  # in the frozen part too
    assert base.get_layer("block2_bn").trainable
    assert not base.get_layer("block1_conv").trainable
    assert base.get_layer("block2_conv").trainable


def test_nested_model_name_stands_for_its_first_layer():
    model = tiny_model()
    freeze_until(model, "base")
    assert model.get_layer("base").get_layer("block1_conv").trainable


def test_freeze_and_unfreeze():
    model = tiny_model()
    unfreeze(model)
    n_bn = 2 * 2  # two BN layers, gamma and beta each
    all_trainable = sum(len(layer.trainable_weights) for layer in flat_layers(model))
    assert len(model.trainable_weights) == all_trainable
    unfreeze(model, train_bn=True)
    assert len(model.trainable_weights) == all_trainable + n_bn
    freeze(model)
    assert model.trainable_weights == []
    freeze(model, train_bn=True)
    assert len(model.trainable_weights) == n_bn


def test_unknown_name_lists_closest_names():
    _, model = _mobilenet_model()
    with pytest.raises(ValueError, match="No layer named 'block_13_expnd'") as err:
        freeze_until(model, "block_13_expnd")
    assert "block_13_expand" in str(err.value)
    assert "Closest names" in str(err.value)


def test_index_out_of_range_states_the_range():
    model = tiny_model()
    n = len(flat_layers(model))
    with pytest.raises(ValueError, match=rf"must be in \[{-n}, {n - 1}\]"):
        freeze_until(model, n)
    with pytest.raises(ValueError, match="Received: layer=-99"):
        freeze_until(model, -99)


def test_bad_argument_types():
    model = tiny_model()
    with pytest.raises(TypeError, match="layer name \\(str\\) or an index"):
        freeze_until(model, 1.5)
    with pytest.raises(TypeError, match="expects `model` to be a Keras model"):
        freeze_until("model", 0)


def test_trainable_summary_counts_match_keras():
    base, model = _mobilenet_model()
    freeze_until(model, "block_13_expand")
    summary = trainable_summary(model)
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    frozen = sum(int(keras.ops.size(w)) for w in model.non_trainable_weights)
    assert summary.trainable_params == trainable
    assert summary.non_trainable_params == frozen
    blocks = {row["block"]: row for row in summary.rows}
    assert blocks[f"{base.name}/block_12"]["trainable_layers"] == 0
    assert blocks[f"{base.name}/block_13"]["trainable_layers"] > 0
    text = str(summary)
    assert "block_13" in text and "total" in text


def test_add_head_base_inside_sequential_is_found():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1")], name="inner"
    )
    model = keras.Sequential(
        [keras.Input((4,)), inner, keras.layers.Dense(2, name="d2")]
    )
    freeze_until(model, "d2")
    assert not inner.get_layer("d1").trainable
    assert len(model.trainable_weights) == 2
