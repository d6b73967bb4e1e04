"""`tlrecipes.lab.finetune_controls`: one (task, seed) cell on the protocol."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tlrecipes import lab
from tlrecipes.lab.finetune_controls import BestOnValidation, fine_tune


def _tiny():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_best_on_validation_keeps_the_best_epochs_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = _tiny()
    keras.utils.set_random_seed(0)
    best = BestOnValidation(x[:32], y[:32])
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[best])
    assert len(best.scores) == 4
    assert best.best == max(best.scores)
    assert best.scores[best.best_epoch - 1] == best.best
    assert best.scores.index(best.best) == best.best_epoch - 1  # ties: earliest
    model.set_weights(best.weights)
    assert lab.evaluation.accuracy_of(model, x[:32], y[:32]) == best.best


def test_best_on_validation_refuses_an_empty_or_mismatched_split():
    with pytest.raises(ValueError, match="x_val"):
        BestOnValidation(np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(ValueError, match="same length"):
        BestOnValidation(np.zeros((3, 4)), np.zeros(2))


def test_fine_tune_refuses_an_unknown_method_before_training():
    model = _tiny()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="plain_10x"):
        fine_tune(model, "plain_100x", np.zeros((4, 4)), np.zeros(4), lr=1e-3, epochs=1)
    with pytest.raises(ValueError, match="method"):
        fine_tune(model, "head_only", np.zeros((4, 4)), np.zeros(4), lr=1e-3, epochs=1)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"methods": ("plain", "pain")}, "pain"),
        ({"methods": ()}, "methods"),
        ({"n_per_class": 0}, "n_per_class"),
        ({"fine_tune_epochs": 1.5}, "fine_tune_epochs"),
        ({"val_per_class": True}, "val_per_class"),
    ],
)
def test_cell_checks_its_arguments_first(kwargs, match):
    settings = {
        "n_per_class": 4,
        "val_per_class": 2,
        "head_epochs": 1,
        "fine_tune_epochs": 1,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        lab.finetune_controls_cell("fashion_a_to_b", 0, **settings)


def test_every_method_starts_from_the_same_head_and_reads_test_once():
    rows = lab.finetune_controls_cell(
        "fashion_a_to_b",
        1,
        n_per_class=6,
        val_per_class=3,
        head_epochs=1,
        fine_tune_epochs=2,
        methods=("head_only", "surgical_head", "plain_10x"),
        test_images=60,
    )
    assert [r["method"] for r in rows] == ["head_only", "surgical_head", "plain_10x"]
    head = rows[0]
    assert head["phase2_epochs"] == 0 and len(head["val_curve"]) == 1
    for row in rows:
        assert row["test_reads"] == 1 and row["n_test"] == 60 and row["n_val"] == 15
        assert row["val_accuracy"] == max(row["val_curve"])
    for row in rows[1:]:
        assert row["phase2_epochs"] == 2 and len(row["val_curve"]) == 2
