"""The from-scratch twin: same architecture, fresh weights, every layer trainable."""

import numpy as np

from tests.experiment_helpers import moved, tiny_source_base, weights
from tlrecipes.heads import add_head, find_base
from tlrecipes.lab.model_copies import scratch_twin


def test_scratch_twin_same_architecture_fresh_weights_all_trainable():
    model = add_head(tiny_source_base(), 3)  # base frozen by add_head
    before = [np.array(w) for w in model.get_weights()]
    twin = scratch_twin(model, seed=0)
    assert twin.name == f"{model.name}_scratch"
    assert [w.shape for w in twin.weights] == [w.shape for w in model.weights]
    assert len(twin.trainable_weights) == len(twin.weights) - 4  # BN moving stats
    base, twin_base = find_base(model), find_base(twin)
    assert moved(twin_base.get_layer("block1_conv"), base.get_layer("block1_conv"))
    assert np.array_equal(weights(twin_base.get_layer("block1_bn"))[2], np.zeros(4))
    assert all(layer.trainable for layer in twin_base.layers)
    for b, a in zip(before, model.get_weights(), strict=True):  # original untouched
        np.testing.assert_array_equal(b, a)
    again = scratch_twin(model, seed=0)
    for a, b in zip(twin.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the seed makes it reproducible
