"""Mixed precision and jit_compile switches (tlrecipes/precision.py).

Stated tolerances, for the tiny model and data of tests/helpers.py:
- predictions of a bfloat16 copy of a float32 model: probabilities within
  0.02 of the float32 ones (bfloat16 keeps 8 bits of mantissa: ~0.4% per op);
- two_phase_fit under mixed_bfloat16 vs float32 from the same weights and
  batches: every epoch's loss within 0.05, final probabilities within 0.05;
- jit_compile True vs False on TensorFlow: weights within 1e-3 (XLA fuses
  ops in another order; Adam divides by the root of tiny second moments,
  which magnifies float32 rounding in the first steps).
"""

import keras
import numpy as np
import pytest
from helpers import tiny_base, tiny_data, tiny_model

from tlrecipes import add_head, two_phase_fit
from tlrecipes.heads import find_base
from tlrecipes.precision import (
    default_policy,
    precision,
    resolve_policy,
    set_precision,
    with_precision,
)


@pytest.fixture(autouse=True)
def _float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_policy_names_and_the_error_for_an_unknown_one():
    assert resolve_policy("bf16") == "mixed_bfloat16"
    assert resolve_policy("fp16") == "mixed_float16"
    assert resolve_policy(False) == resolve_policy("float32") == "float32"
    assert resolve_policy("auto") == default_policy() == "mixed_bfloat16"  # CPU
    with pytest.raises(ValueError, match="Received: precision='int8'"):
        resolve_policy("int8")


def test_precision_context_restores_the_global_policy():
    with precision("bf16") as name:
        dense = keras.layers.Dense(2)
        assert name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
    assert (dense.compute_dtype, dense.variable_dtype) == ("bfloat16", "float32")


@pytest.mark.multibackend
def test_a_bf16_copy_keeps_the_weights_and_a_float32_output():
    keras.utils.set_random_seed(0)
    model = tiny_model(3)
    x, _ = tiny_data(24)
    fast = with_precision(model, "bf16")
    assert find_base(fast).get_layer("block1_conv").compute_dtype == "bfloat16"
    assert fast.get_layer("head_logits").compute_dtype == "float32"
    assert not find_base(fast).trainable  # frozen flags carried over
    for a, b in zip(model.get_weights(), fast.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # variables stay float32
    p32 = model.predict(x, verbose=0)
    p16 = fast.predict(x, verbose=0)
    assert p16.dtype == np.float32
    np.testing.assert_allclose(p16, p32, atol=0.02)
    assert not np.array_equal(p16, p32)  # it really computed in bfloat16


@pytest.mark.multibackend
def test_two_phase_fit_in_bf16_matches_float32_within_tolerance():
    x, y = tiny_data(48)

    def run(policy):
        keras.utils.set_random_seed(0)
        model = tiny_model(3)
        if policy != "float32":
            model = with_precision(model, policy)
        history = two_phase_fit(
            model, x, y, head_epochs=3, fine_tune_epochs=2,
            batch_size=16, seed=0, verbose=0,
        )  # fmt: skip
        return model, history

    (m32, h32), (m16, h16) = run("float32"), run("bf16")
    assert h16.features_cached  # caching works under mixed precision too
    np.testing.assert_allclose(h16.history["loss"], h32.history["loss"], atol=0.05)
    np.testing.assert_allclose(
        m16.predict(x, verbose=0), m32.predict(x, verbose=0), atol=0.05
    )


def test_set_precision_before_building_gives_a_mixed_model_with_float32_head():
    set_precision("bf16")
    model = add_head(tiny_base(), 3)
    assert model.get_layer("head_pool").compute_dtype == "bfloat16"
    assert model.get_layer("head_logits").compute_dtype == "float32"
    x, y = tiny_data(32)
    history = two_phase_fit(
        model, x, y, head_epochs=2, fine_tune_epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    assert model.predict(x, verbose=0).dtype == np.float32


def test_mixed_float16_scales_the_loss():
    keras.utils.set_random_seed(0)
    model = with_precision(tiny_model(3), "fp16")
    x, y = tiny_data(32)
    history = two_phase_fit(
        model, x, y, head_epochs=1, fine_tune_epochs=1, verbose=0
    )
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="XLA switch on tf")
def test_jit_compile_reaches_both_phases_and_changes_nothing_numerically():
    x, y = tiny_data(48)

    def run(jit):
        keras.utils.set_random_seed(0)
        model = tiny_model(3, dropout=0.0)  # XLA draws other random numbers
        # two_phase_fit keeps the compile options of a compiled model.
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"], jit_compile=jit,
        )
        two_phase_fit(
            model, x, y, head_epochs=2, fine_tune_epochs=1,
            seed=0, verbose=0, cache_features=False,
        )  # fmt: skip
        return model

    eager_xla, xla = run(False), run(True)
    assert eager_xla.jit_compile is False and xla.jit_compile is True
    for a, b in zip(eager_xla.get_weights(), xla.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
