"""Checkpoint and resume of two_phase_fit: kills at any point lose nothing."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_data, tiny_model, weights_of
from tlrecipes import checkpoint as ckpt_module
from tlrecipes.checkpoint import CRASH_ENV, TrainingCheckpoint, arrays_of, assign
from tlrecipes.safe_loading import safe_load_model
from tlrecipes.training import two_phase_fit

ROOT = Path(__file__).resolve().parents[1]
RUN = {
    "head_epochs": 2,
    "fine_tune_epochs": 3,
    "batch_size": 16,
    "verbose": 0,
    "seed": 7,
}


class Interrupt(Exception):
    """Stands in for a crash inside this process."""


class InterruptAt(keras.callbacks.Callback):
    """Raises `Interrupt` at `(epoch, batch)`; batch "begin" is the epoch start."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.at == (epoch, "begin"):
            raise Interrupt(self.at)

    def on_train_batch_end(self, batch, logs=None):
        if self.at == (self.epoch, batch):
            raise Interrupt(self.at)


def _fit(directory, callbacks=(), **kwargs):
    """A fresh model built from the same seed, trained with RUN settings."""
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = tiny_data()
    settings = {**RUN, **kwargs}
    hist = two_phase_fit(
        model,
        x,
        y,
        validation_data=(x[:12], y[:12]),
        checkpoint_dir=directory,
        callbacks=list(callbacks),
        **settings,
    )
    return model, hist


def _state(directory):
    return json.loads((Path(directory) / "state.json").read_text())


def _assert_same_run(model, hist, ref_model, ref_hist):
    for a, b in zip(
        arrays_of(model.variables), arrays_of(ref_model.variables), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert hist.epoch == ref_hist.epoch
    assert set(hist.history) == set(ref_hist.history)
    for key, values in ref_hist.history.items():
        np.testing.assert_allclose(hist.history[key], values, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, checkpointed, and its final variables."""
    keras.backend.clear_session()
    model, hist = _fit(tmp_path_factory.mktemp("reference"), keep_best="val_loss")
    return model, hist


@pytest.mark.multibackend
def test_resume_after_interruptions_in_process_matches_uninterrupted(
    tmp_path, monkeypatch, reference
):
    """Interrupted in phase 1, mid-write, between phases and in phase 2."""

    def crash_at(point):
        def crash(step, label):
            if f"{step}@{label}" == point:
                raise Interrupt(point)

        monkeypatch.setattr(ckpt_module, "_crash_point", crash)

    interruptions = [
        (lambda: InterruptAt(1, 1), None, 1),  # phase 1, after epoch 0's checkpoint
        (None, "arrays-temp@epoch-2", 1),  # mid-write: temporary arrays only
        (None, "state@end-head", 2),  # between the phases
        (lambda: InterruptAt(3, 0), None, 3),  # phase 2
    ]
    for make_callback, point, epochs_kept in interruptions:
        crash_at(point)
        callbacks = [make_callback()] if make_callback else []
        with pytest.raises(Interrupt):
            _fit(tmp_path, callbacks, keep_best="val_loss")
        assert _state(tmp_path)["epoch"] == epochs_kept
    monkeypatch.undo()
    model, hist = _fit(tmp_path, keep_best="val_loss")
    assert hist.resumed_at_epoch == 3
    _assert_same_run(model, hist, *reference)
    assert hist.best == reference[1].best
    assert _state(tmp_path)["status"] == "done"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("tmp-")) == []


@pytest.mark.multibackend
def test_completed_run_is_not_retrained(tmp_path, reference):
    _fit(tmp_path)

    class CountEpochs(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_begin(self, epoch, logs=None):
            CountEpochs.epochs += 1

    model, hist = _fit(tmp_path, callbacks=[CountEpochs()])
    assert CountEpochs.epochs == 0
    assert hist.resumed_at_epoch == 5 and hist.phase_epochs == {
        "head": 2,
        "fine_tune": 3,
    }
    _assert_same_run(model, hist, *reference)
    # The final optimizer state and learning rate are back, ready to continue.
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 9
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == (
        pytest.approx(1e-4)
    )


@pytest.mark.multibackend
def test_other_settings_are_refused_with_the_difference(tmp_path):
    _fit(tmp_path)
    with pytest.raises(ValueError, match=r"other settings.*fine_tune_lr: checkpoint"):
        _fit(tmp_path, fine_tune_lr=1e-3)
    with pytest.raises(ValueError, match=r"seed: checkpoint 7, now 8.*delete"):
        _fit(tmp_path, seed=8)
    keras.utils.set_random_seed(0)
    x, y = tiny_data(seed=1)  # other data, same shapes
    with pytest.raises(ValueError, match=r"data\.x\.sha256"):
        two_phase_fit(
            tiny_model(),
            x,
            y,
            validation_data=(x[:12], y[:12]),
            checkpoint_dir=tmp_path,
            **RUN,
        )


@pytest.mark.multibackend
def test_damaged_checkpoint_is_refused(tmp_path):
    _fit(tmp_path)
    arrays = tmp_path / _state(tmp_path)["arrays"]
    arrays.write_bytes(arrays.read_bytes()[:-20])  # truncated
    keras.utils.set_random_seed(0)  # the same starting base as the run's
    model = tiny_model()
    before = weights_of(model.layers)
    x, y = tiny_data()
    with pytest.raises(ValueError, match="is damaged.*Fix: delete"):
        two_phase_fit(
            model,
            x,
            y,
            validation_data=(x[:12], y[:12]),
            checkpoint_dir=tmp_path,
            **RUN,
        )
    assert_identical(before, weights_of(model.layers))


@pytest.mark.multibackend
def test_checkpoint_files_hold_no_pickles_and_state_is_readable(tmp_path):
    _fit(tmp_path, keep_best="val_accuracy")
    state = _state(tmp_path)
    with np.load(tmp_path / state["arrays"], allow_pickle=False) as data:
        assert all(data[key].dtype != object for key in data.files)
        assert len(data.files) == state["num_model"] + state["num_optimizer"]
    assert state["finished"] == ["head", "fine_tune"]
    assert state["phase_start"] == {"head": 0, "fine_tune": 2}
    assert state["learning_rate"] == pytest.approx(1e-4)
    assert state["optimizer_phase"] == "fine_tune" and any(state["trainable"])
    best = safe_load_model(tmp_path / "best.keras")
    assert best.output_shape == (None, 3)
    assert state["best"]["value"] == max(state["history"]["val_accuracy"])


@pytest.mark.multibackend
def test_early_stop_in_phase1_is_remembered_on_resume(tmp_path, monkeypatch):
    """Killed after the stopping epoch's checkpoint, before the phase-end one."""

    def crash(step, label):
        if (step, label) == ("arrays-temp", "end-head"):
            raise Interrupt(label)

    monkeypatch.setattr(ckpt_module, "_crash_point", crash)
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    with pytest.raises(Interrupt):
        _fit(tmp_path, callbacks=[stop], head_epochs=6)
    state = _state(tmp_path)
    stopped_after = state["epoch"]
    assert state["finished"] == ["head"] and stopped_after < 6
    monkeypatch.undo()
    _, hist = _fit(tmp_path, callbacks=[stop], head_epochs=6)
    assert hist.fine_tune_start_epoch == stopped_after  # phase 1 did not go on
    assert hist.phase_epochs["head"] == stopped_after
    assert hist.phase_epochs["fine_tune"] >= 1


@pytest.mark.multibackend
def test_keep_best_needs_a_directory_and_a_logged_metric(tmp_path):
    with pytest.raises(ValueError, match="keep_best='val_accuracy' needs a place"):
        _fit(None, keep_best="val_accuracy")
    with pytest.raises(ValueError, match=r"not a metric this run logs.*'val_loss'"):
        _fit(tmp_path, keep_best="val_acc")


@pytest.mark.multibackend
def test_assign_checks_count_and_shapes():
    model = tiny_model()
    arrays = arrays_of(model.variables)
    with pytest.raises(ValueError, match="holds 2 model variables but the model has"):
        assign(model.variables, arrays[:2], "model")
    arrays[0] = np.zeros((1, 2))
    with pytest.raises(ValueError, match=r"'block1_conv/kernel' has shape \(1, 2\)"):
        assign(model.variables, arrays, "model")


@pytest.mark.multibackend
@pytest.mark.parametrize("step", ["arrays-temp", "arrays", "state-temp", "state"])
def test_a_crash_at_any_step_of_a_write_leaves_the_previous_or_next_pair(
    tmp_path, monkeypatch, step
):
    model = tiny_model()
    saver = TrainingCheckpoint(tmp_path, {"a": 1})
    saver.save({"epoch": 1}, model, None, "first")
    first = arrays_of(model.variables)
    model.get_layer("head_logits").kernel.assign(np.ones((6, 3), "float32"))

    def crash(at, label):
        if (at, label) == (step, "second"):
            raise Interrupt(step)

    monkeypatch.setattr(ckpt_module, "_crash_point", crash)
    with pytest.raises(Interrupt):
        saver.save({"epoch": 2}, model, None, "second")
    state, arrays, _ = TrainingCheckpoint(tmp_path, {"a": 1}).load()
    expected = arrays_of(model.variables) if step == "state" else first
    assert state["epoch"] == (2 if step == "state" else 1)
    for a, b in zip(arrays, expected, strict=True):
        np.testing.assert_array_equal(a, b)


# --- a real process, killed with SIGKILL --------------------------------------

SCRIPT = """
import json, os, signal, sys
import keras, numpy as np
from tests.helpers import tiny_data, tiny_model
from tlrecipes.checkpoint import arrays_of
from tlrecipes.training import two_phase_fit

out, directory = sys.argv[1], sys.argv[2]
kill = os.environ.get("KILL_AT")  # "<epoch>:<batch>" or "<epoch>:begin"

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if kill == f"{epoch}:begin":
            os.kill(os.getpid(), signal.SIGKILL)
    def on_train_batch_end(self, batch, logs=None):
        if kill == f"{self.epoch}:{batch}":
            os.kill(os.getpid(), signal.SIGKILL)

keras.utils.set_random_seed(0)
model = tiny_model()
x, y = tiny_data()
hist = two_phase_fit(
    model, x, y, validation_data=(x[:12], y[:12]), head_epochs=2,
    fine_tune_epochs=3, batch_size=16, verbose=0, seed=7,
    checkpoint_dir=directory, keep_best="val_loss", callbacks=[Kill()],
)
np.savez(out + ".npz", *arrays_of(model.variables))
with open(out + ".json", "w") as f:
    json.dump({"history": hist.history, "resumed_at_epoch": hist.resumed_at_epoch,
               "best": hist.best}, f)
"""


def _run_script(tmp_path, directory, name, env=None):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / name), str(directory)],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _load_result(tmp_path, name):
    with np.load(tmp_path / f"{name}.npz", allow_pickle=False) as data:
        arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
    return arrays, json.loads((tmp_path / f"{name}.json").read_text())


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkilled_training_process_resumes_to_the_uninterrupted_result(
    tmp_path, reference
):
    # Each kill: (environment, where it happens, epochs the checkpoint keeps).
    kills = [
        ({"KILL_AT": "1:1"}, "phase 1, mid-epoch", 1),
        ({CRASH_ENV: "arrays-temp@epoch-2"}, "mid-write, temporary arrays", 1),
        ({CRASH_ENV: "state@end-head"}, "between the phases", 2),
        ({CRASH_ENV: "state-temp@epoch-4"}, "mid-write, temporary state", 3),
        ({"KILL_AT": "4:1"}, "phase 2, mid-epoch", 4),
    ]
    directory = tmp_path / "run"
    for env, where, epochs_kept in kills:
        proc = _run_script(tmp_path, directory, "result", env)
        assert proc.returncode == -signal.SIGKILL, (where, proc.stderr[-3000:])
        state = _state(directory)  # always a consistent, loadable pair
        assert state["epoch"] == epochs_kept, where
        with np.load(directory / state["arrays"], allow_pickle=False) as data:
            assert len(data.files) == state["num_model"] + state["num_optimizer"]
    proc = _run_script(tmp_path, directory, "result")
    assert proc.returncode == 0, proc.stderr[-3000:]

    # The uninterrupted reference ran in this process: same numbers.
    ref_model, ref_hist = reference
    arrays, resumed = _load_result(tmp_path, "result")
    assert resumed["resumed_at_epoch"] == 4
    for a, b in zip(arrays, arrays_of(ref_model.variables), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key, values in ref_hist.history.items():
        np.testing.assert_allclose(
            resumed["history"][key], values, rtol=1e-5, atol=1e-6
        )
    assert resumed["best"] == pytest.approx(ref_hist.best)
    assert not list(directory.glob("tmp-*")), "temporary files left behind"
