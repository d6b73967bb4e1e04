"""The user's callbacks see one run over both phases (tlrecipes/callbacks.py)."""

import csv

import keras
import numpy as np
import pytest
from helpers import tiny_data, tiny_model

from tlrecipes import two_phase_fit
from tlrecipes.callbacks import monitor_mode

pytestmark = pytest.mark.multibackend

FIT = {"batch_size": 16, "verbose": 0, "seed": 0}


class Hooks(keras.callbacks.Callback):
    """Counts the run-level hooks and records the epochs it is shown."""

    def __init__(self):
        super().__init__()
        self.begins, self.ends, self.epochs, self.params_epochs = 0, 0, [], None

    def on_train_begin(self, logs=None):
        self.begins += 1
        self.params_epochs = self.params.get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        assert self.model.input_shape == (None, 8, 8, 1)  # the full model

    def on_train_end(self, logs=None):
        self.ends += 1


@pytest.mark.parametrize("cache", [True, False])
def test_callbacks_see_one_run_over_both_phases(cache):
    hooks = Hooks()
    x, y = tiny_data()
    two_phase_fit(
        tiny_model(), x, y, head_epochs=2, fine_tune_epochs=3, callbacks=[hooks],
        cache_features=cache, **FIT,
    )  # fmt: skip
    assert (hooks.begins, hooks.ends) == (1, 1)
    assert hooks.epochs == [0, 1, 2, 3, 4]
    assert hooks.params_epochs == 5


def test_csv_logger_keeps_the_rows_of_both_phases(tmp_path):
    path = tmp_path / "log.csv"
    x, y = tiny_data()
    hist = two_phase_fit(
        tiny_model(), x, y, validation_data=(x[:12], y[:12]), head_epochs=2,
        fine_tune_epochs=2, callbacks=[keras.callbacks.CSVLogger(str(path))], **FIT,
    )  # fmt: skip
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    np.testing.assert_allclose(
        [float(r["val_loss"]) for r in rows], hist.history["val_loss"], rtol=1e-5
    )


def test_tensorboard_writes_one_run_with_every_epoch(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("reads the event files with TensorFlow")
    import tensorflow as tf

    x, y = tiny_data()
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path))
    two_phase_fit(
        tiny_model(), x, y, head_epochs=2, fine_tune_epochs=2, callbacks=[board],
        **FIT,
    )  # fmt: skip
    steps = []
    for path in sorted((tmp_path / "train").glob("events.out.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            steps += [event.step for v in event.summary.value if v.tag == "epoch_loss"]
    assert sorted(steps) == [0, 1, 2, 3]


def test_reduce_lr_on_plateau_acts_in_both_phases():
    x, y = tiny_data()
    seen = []

    class Rate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rate = self.model.optimizer.learning_rate
            seen.append(float(keras.ops.convert_to_numpy(rate)))

    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=1e9, min_lr=0
    )
    two_phase_fit(
        tiny_model(), x, y, head_epochs=2, fine_tune_epochs=2, head_lr=1e-2,
        fine_tune_lr=1e-4, callbacks=[plateau, Rate()], **FIT,
    )  # fmt: skip
    # Epoch 0 sets the best loss; every later epoch is a plateau and halves the
    # rate of the optimizer in use. Phase 2 continues the same run: its first
    # epoch is halved too (a fresh run would take it as a new best).
    assert seen == pytest.approx([1e-2, 5e-3, 5e-5, 2.5e-5])


def test_early_stopping_ends_the_phase_it_stops():
    x, y = tiny_data()
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    hist = two_phase_fit(
        tiny_model(), x, y, head_epochs=5, fine_tune_epochs=3, callbacks=[stop], **FIT
    )
    assert hist.phase_epochs["head"] == 2  # epoch 0 sets the best, epoch 1 stops
    assert hist.phase_epochs["fine_tune"] >= 1


def test_keep_best_reads_the_direction_from_the_metric(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent")
        ],
    )
    hist = two_phase_fit(
        model, x, y, validation_data=(x[:12], y[:12]), head_epochs=3,
        fine_tune_epochs=2, head_lr=0.3, checkpoint_dir=tmp_path, keep_best="val_xent",
        **FIT,
    )  # fmt: skip
    values = hist.history["val_xent"]
    assert hist.best["mode"] == "min"
    assert hist.best["epoch"] == int(np.argmin(values))
    assert hist.best["value"] == pytest.approx(min(values))


def test_keep_best_refuses_before_training_what_it_cannot_read(tmp_path):
    x, y = tiny_data()

    def score(y_true, y_pred):
        return keras.ops.mean(y_pred)

    model = tiny_model()
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[score],
    )
    before = [np.array(w) for w in model.get_weights()]
    kwargs = {"head_epochs": 1, "fine_tune_epochs": 0, "checkpoint_dir": tmp_path}
    with pytest.raises(ValueError, match=r"better high or low.*\('score', 'min'\)"):
        two_phase_fit(model, x, y, keep_best="score", **kwargs, **FIT)
    with pytest.raises(ValueError, match="not a metric this run logs"):
        two_phase_fit(model, x, y, keep_best="val_score", **kwargs, **FIT)
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(b, a)
    hist = two_phase_fit(model, x, y, keep_best=("score", "max"), **kwargs, **FIT)
    assert hist.best["mode"] == "max"


def test_monitor_mode_from_keras_metrics():
    compiled = {"loss": "mse", "metrics": ["accuracy", "mae"]}
    assert monitor_mode("val_loss", compiled) == "min"
    assert monitor_mode("accuracy", compiled) == "max"
    assert monitor_mode("val_mae", compiled) == "min"
