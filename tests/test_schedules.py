"""One-cycle and warmup-cosine schedules, and the learning-rate finder."""

import math

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_data, tiny_model
from tlrecipes import two_phase_fit
from tlrecipes.lr_finder import LR_FIND_RULES, lr_find
from tlrecipes.schedules import OneCycle


def _lr(schedule, step) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def _arrays(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


@pytest.mark.multibackend
def test_one_cycle_at_chosen_steps():
    s = OneCycle(
        1e-2, total_steps=200, pct_start=0.25, div_factor=20, final_div_factor=100
    )
    start, end = 1e-2 / 20, 1e-2 / 20 / 100
    expected = {
        0: start,
        25: start + (1e-2 - start) * 0.5,  # half-way up the cosine
        50: 1e-2,  # the peak at pct_start * total_steps
        125: end + (1e-2 - end) * 0.5,  # half-way down
        200: end,
        500: end,  # held after the cycle
    }
    for step, lr in expected.items():
        assert _lr(s, step) == pytest.approx(lr, rel=1e-5), step


@pytest.mark.multibackend
def test_warm_up_then_cosine_is_keras_cosine_decay():
    """The removed WarmupCosine is Keras's CosineDecay with a warm-up target."""
    s = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=1e-5, decay_steps=80, alpha=1e-6 / 1e-3,
        warmup_target=1e-3, warmup_steps=20,
    )  # fmt: skip
    expected = {
        0: 1e-5,
        10: 1e-5 + (1e-3 - 1e-5) * 0.5,
        20: 1e-3,
        60: 1e-6 + (1e-3 - 1e-6) * 0.5,
        40: 1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 0.25)),
        100: 1e-6,
    }
    for step, lr in expected.items():
        assert _lr(s, step) == pytest.approx(lr, rel=1e-5), step


def test_schedules_serialize_and_validate():
    for s in (OneCycle(3e-3, 50, pct_start=0.3),):
        again = keras.optimizers.schedules.deserialize(
            keras.optimizers.schedules.serialize(s)
        )
        assert type(again) is type(s) and again.get_config() == s.get_config()
        assert _lr(again, 17) == pytest.approx(_lr(s, 17))
    with pytest.raises(ValueError, match="total_steps"):
        OneCycle(1e-3, total_steps=0)
    with pytest.raises(ValueError, match="pct_start"):
        OneCycle(1e-3, total_steps=10, pct_start=1.0)
    with pytest.raises(ValueError, match="max_lr"):
        OneCycle(-1.0, total_steps=10)


def test_model_with_schedule_saves_and_loads(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    model.compile(
        optimizer=keras.optimizers.Adam(OneCycle(1e-3, 10)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer._learning_rate, OneCycle)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(
        float(model.optimizer.learning_rate)
    )


@pytest.mark.multibackend
def test_two_phase_fit_takes_a_schedule_in_each_phase():
    model = tiny_model()
    x, y = tiny_data()  # 48 images, batch 16: 3 steps per epoch
    head = OneCycle(1e-2, total_steps=6)
    fine = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=6, warmup_target=1e-3, warmup_steps=3
    )
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(
                float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            )

    hist = two_phase_fit(
        model, x, y, head_epochs=2, fine_tune_epochs=3, head_lr=head,
        fine_tune_lr=fine, batch_size=16, callbacks=[Record()],
        verbose=0, seed=0,
    )  # fmt: skip
    assert hist.phase_lrs == {"head": head, "fine_tune": fine}
    expected = [_lr(head, i) for i in range(6)] + [_lr(fine, i) for i in range(9)]
    np.testing.assert_allclose(seen, expected, rtol=1e-5)
    # read back after the run: the phase-2 schedule at its final step
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 9
    assert float(model.optimizer.learning_rate) == pytest.approx(
        _lr(fine, 9), abs=1e-12
    )


@pytest.mark.multibackend
def test_lr_find_restores_weights_and_optimizer_bit_for_bit(tmp_path):
    model = tiny_model()
    x, y = tiny_data()
    model.get_layer("base").trainable = True  # BatchNorm statistics move too
    own = keras.optimizers.Adam(1e-3)
    model.compile(
        optimizer=own,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # optimizer state exists
    weights, slots = _arrays(model.variables), _arrays(own.variables)
    result = lr_find(
        model, x, y, num_steps=30, start_lr=1e-6, end_lr=1.0, batch_size=16
    )
    assert_identical(weights, _arrays(model.variables))
    assert model.optimizer is own
    assert_identical(slots, _arrays(own.variables))
    lrs = result.learning_rates
    assert lrs[0] == pytest.approx(1e-6) and len(lrs) == len(result.losses) <= 30
    assert np.all(np.diff(np.log(lrs)) > 0)
    assert set(result.suggestions) == set(LR_FIND_RULES)
    for rate in result.suggestions.values():
        assert lrs[0] <= rate <= lrs[-1]
    assert result.suggestion == result.suggestions["valley"]
    fig = result.plot(path=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0 and fig.axes
    # the model still trains normally with its own optimizer afterwards
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert int(keras.ops.convert_to_numpy(own.iterations)) == 6


def test_lr_find_on_an_uncompiled_model_and_divergence():
    model = tiny_model()
    x, y = tiny_data()
    weights = _arrays(model.variables)
    result = lr_find(
        model,
        x,
        y,
        num_steps=40,
        start_lr=1e-4,
        end_lr=1e4,
        rule="min/10",
        batch_size=16,
    )
    assert_identical(weights, _arrays(model.variables))
    assert result.stopped_early and len(result.learning_rates) < 40
    assert result.rule == "min/10"
    assert result.learning_rates[0] <= result.suggestion <= result.learning_rates[-1]
    assert float(model.optimizer.learning_rate) == pytest.approx(
        result.suggestion, rel=1e-6
    )


def test_lr_find_validates_arguments():
    model = tiny_model()
    x, y = tiny_data()
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        lr_find(model, x, y, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="rule"):
        lr_find(model, x, y, rule="best")
    with pytest.raises(ValueError, match="num_steps"):
        lr_find(model, x, y, num_steps=2)
