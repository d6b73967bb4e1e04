"""Layer groups and discriminative learning-rate multipliers (discriminative.py)."""

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_data, tiny_model, weights_of
from tlrecipes import two_phase_fit
from tlrecipes.discriminative import layer_groups, lr_multipliers
from tlrecipes.optimizers import with_lr_multipliers


def test_layer_groups_and_multipliers():
    model = tiny_model()
    groups = layer_groups(model)
    assert list(groups) == ["block1", "block2", "head"]
    assert groups["head"] == ["head_pool", "head_dropout", "head_logits"]
    m = lr_multipliers(model)
    assert m["head_logits"] == 1.0
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
        model, x, y, head_epochs=1, fine_tune_epochs=1,
        lr_multipliers={"block1_*": 0.0}, callbacks=[snap], verbose=0, seed=0,
    )  # fmt: skip
    assert type(model.optimizer).__name__ == "DiscriminativeAdam"
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)
    assert_identical(snap.before[0], weights_of([conv1]))  # multiplier 0
    assert not np.array_equal(snap.before[1][0], weights_of([conv2])[0])
