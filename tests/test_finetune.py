"""Gradual unfreezing and surgical fine-tuning (finetune.py)."""

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_data, tiny_model, weights_of
from tlrecipes.finetune import gradual_unfreeze_fit, surgical_fit, train_only
from tlrecipes.freezing import flat_layers


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
        "head_logits": model.get_layer("head_logits"),
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
    assert hist.stages[0]["trainable"] == ["block2_conv", "head_logits"]
    assert hist.stages[1]["trainable"] == ["block1_conv", "block2_conv", "head_logits"]
    assert moves.moved[0]["flags"] == hist.stages[0]["trainable"]
    assert moves.moved[1]["flags"] == hist.stages[1]["trainable"]
    expected = {
        0: {"block1_conv": False, "block2_conv": True, "head_logits": True},
        1: {"block1_conv": True, "block2_conv": True, "head_logits": True},
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
        ("head", ["head_logits"]),
        (["block2", "head"], ["block2_conv", "head_logits"]),
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
    others.append(model.get_layer("head_logits"))
    chosen = base.get_layer("block1_conv")
    before, before_chosen = weights_of(others), weights_of([chosen])
    surgical_fit(model, x, y, block="first", epochs=1, learning_rate=1e-2, verbose=0)
    assert_identical(before, weights_of(others))
    assert not np.array_equal(before_chosen[0], weights_of([chosen])[0])
    with pytest.raises(ValueError, match="epochs"):
        surgical_fit(model, x, y, block="first", epochs=0)
