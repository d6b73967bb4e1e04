"""The progress of one `two_phase_fit` call: epochs, history, checkpoints, best model.

`Run` is what `two_phase_fit` calls between its recipe steps: `compile`
(restoring the optimizer's state when it resumes that phase), `fit` (the rest
of a phase, with the NaN guard and the user's callbacks seen as one run),
and `finish`. After every epoch it records the logs in one merged history,
keeps the best model by a metric (`keep_best`) and, with a checkpoint
directory, saves everything needed to resume (`tlrecipes.checkpoint`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from tlrecipes.batches import epoch_seed, reseed
from tlrecipes.callbacks import RunCallbacks, StopOnNaN
from tlrecipes.checkpoint import TrainingCheckpoint, assign
from tlrecipes.freezing import flat_layers

__all__ = ["Run", "RecordEpochs", "TwoPhaseHistory", "NaNLossError"]


class TwoPhaseHistory(keras.callbacks.History):
    """The record of a `two_phase_fit` run, shaped like Keras's `History`.

    Attributes:
        history: Dict of per-epoch metric lists, phase 1 followed by phase 2.
        epoch: Epoch numbers, continuous across both phases.
        fine_tune_start_epoch: Index of the first phase-2 epoch in `history`
            (equal to the number of phase-1 epochs that ran).
        phase_lrs: `{"head": head_lr, "fine_tune": fine_tune_lr}` as used.
        phase_epochs: `{"head": n1, "fine_tune": n2}` epochs actually run.
        phase_histories: The `keras.callbacks.History` of each phase that
            trained in this call.
        resumed_at_epoch: Epochs already done when this call resumed from a
            checkpoint; None for a fresh run.
        best: `{"monitor", "mode", "value", "epoch"}` of the model kept by
            `keep_best`, else None.
        features_cached: True when phase 1 trained the head on cached base
            features (`cache_features`).
        feature_cache_note: Why phase 1 did not cache features, else None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.fine_tune_start_epoch = 0
        self.phase_lrs: dict[str, Any] = {}
        self.phase_epochs: dict[str, int] = {"head": 0, "fine_tune": 0}
        self.phase_histories: dict[str, keras.callbacks.History] = {}
        self.resumed_at_epoch: int | None = None
        self.best: dict[str, Any] | None = None
        self.features_cached = False
        self.feature_cache_note: str | None = None

    def __repr__(self) -> str:
        return (
            f"TwoPhaseHistory(epochs={len(self.epoch)}, fine_tune_start_epoch="
            f"{self.fine_tune_start_epoch}, phase_lrs={self.phase_lrs})"
        )


class NaNLossError(FloatingPointError):
    """Training stopped because the loss became NaN or Inf.

    Raised by `two_phase_fit` after it restored the weights of the last epoch
    whose loss was finite. `history` holds the `TwoPhaseHistory` up to that
    epoch.
    """

    def __init__(self, message: str, history: TwoPhaseHistory | None = None) -> None:
        super().__init__(message)
        self.history = history


class RecordEpochs(keras.callbacks.Callback):
    """Merges the history, reseeds each epoch, writes checkpoints and best.keras.

    Runs after the user's callbacks, so it sees an early stop they requested.
    """

    def __init__(self, run: Run, phase: str, guard: StopOnNaN) -> None:
        super().__init__()
        self.run, self.phase, self.guard = run, phase, guard
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # Reseed at the first batch, not at epoch begin: on torch, unseeded
        # dropout draws from torch's global generator, and starting a fit
        # (creating its DataLoader iterator) consumes a draw between the two.
        if batch == 0 and self.run.seed is not None:
            reseed(epoch_seed(self.run.seed, self.epoch))

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failed_at is not None:
            return  # the NaN epoch is neither recorded nor checkpointed
        logs = {
            k: float(keras.ops.convert_to_numpy(v)) for k, v in (logs or {}).items()
        }
        self.run.record(self.phase, epoch, logs, stopped=self.model.stop_training)


class Run:
    """The progress of one `two_phase_fit` call, resumed from its checkpoint.

    Args:
        model: The model being trained.
        compiled: Loss, metrics and compile options for both phases.
        inputs: `inputs(first_epoch) -> fit keyword arguments`.
        callbacks: The user's callbacks, seen as one run.
        seed: The run's seed, or None.
        checkpoint: Where the run is saved, or None.
        keep_best: `(monitor, "min" | "max")`, or None.
    """

    def __init__(
        self,
        model: keras.Model,
        compiled: dict[str, Any],
        inputs,
        callbacks: RunCallbacks,
        seed: int | None,
        checkpoint: TrainingCheckpoint | None,
        keep_best: tuple[str, str] | None,
    ) -> None:
        self.model, self.compiled, self.inputs = model, compiled, inputs
        self.callbacks, self.seed, self.checkpoint = callbacks, seed, checkpoint
        self.keep_best = keep_best
        self.epoch = 0  # epochs done, counted across both phases
        self.phase_start: dict[str, int] = {}
        self.finished: list[str] = []
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []
        self.best: dict[str, Any] | None = None
        self.phase_histories: dict[str, keras.callbacks.History] = {}
        self.resumed_at_epoch: int | None = None
        self.done = False
        self._optimizer_state: tuple[str, list, list[np.ndarray]] | None = None
        loaded = checkpoint.load() if checkpoint is not None else None
        if loaded is not None:
            state, model_arrays, optimizer_arrays = loaded
            assign(model.variables, model_arrays, "model")
            self.epoch, self.epochs = state["epoch"], state["epochs"]
            self.phase_start, self.finished = state["phase_start"], state["finished"]
            self.history, self.best = state["history"], state["best"]
            self.done = state["status"] == "done"
            self.resumed_at_epoch = self.epoch
            if state["optimizer_phase"] is not None:
                self._optimizer_state = (
                    state["optimizer_phase"],
                    state["trainable"],
                    optimizer_arrays,
                )

    def compile(self, phase: str, optimizer: keras.optimizers.Optimizer) -> None:
        """Compiles for `phase`; restores its optimizer state when resuming it."""
        self.model.compile(optimizer=optimizer, **self.compiled)
        if self._optimizer_state is None or self._optimizer_state[0] != phase:
            return
        _, trainable, arrays = self._optimizer_state
        if [bool(layer.trainable) for layer in flat_layers(self.model)] != trainable:
            raise ValueError(
                f"The checkpoint's trainable layers for phase {phase!r} differ "
                "from the model's. Fix: resume with the same model and "
                "unfreeze_from, or delete the checkpoint directory."
            )
        optimizer.build(self.model.trainable_variables)
        assign(optimizer.variables, arrays, "optimizer")
        self._optimizer_state = None

    def fit(self, phase: str, epochs: int, cached=None) -> None:
        """Runs the rest of `phase` (up to `epochs` epochs in the phase).

        With `cached` (a `cached_head.CachedHeadPhase`), the head model trains
        on the base's cached features instead of the full model on the images.
        """
        if phase in self.finished:
            return
        start = self.phase_start.setdefault(phase, self.epoch)
        if self.epoch < start + epochs:
            guard = StopOnNaN()
            trainer, inputs = self.model, self.inputs
            if cached is not None:
                trainer, inputs = cached.prepare(
                    self.compiled,
                    self.callbacks.callbacks,
                    epochs=start + epochs - self.epoch,
                )
            try:
                hist = trainer.fit(
                    **inputs(self.epoch),
                    initial_epoch=self.epoch,
                    epochs=start + epochs,
                    callbacks=[
                        *self.callbacks.wrapped,
                        guard,
                        RecordEpochs(self, phase, guard),
                    ],
                )
            finally:
                if cached is not None:
                    cached.close()
            self.phase_histories[phase] = hist
            if guard.failed_at is not None:
                self.callbacks.end()
                raise self._nan_error(phase, guard)
        if phase not in self.finished:
            self.finished.append(phase)
        self.save(phase, f"end-{phase}")

    def record(self, phase: str, epoch: int, logs: dict, stopped: bool) -> None:
        """Adds one finished epoch to the history; checkpoints it."""
        for key in logs:
            self.history.setdefault(key, [math.nan] * len(self.epochs))
        self.epochs.append(epoch)
        for key, values in self.history.items():
            values.append(logs.get(key, math.nan))
        self.epoch = epoch + 1
        if self.keep_best is not None:
            self._keep_best(epoch, logs)
        if stopped and phase not in self.finished:  # ends the phase on resume too
            self.finished.append(phase)
        self.save(phase, f"epoch-{self.epoch}")

    def _keep_best(self, epoch: int, logs: dict) -> None:
        monitor, mode = self.keep_best
        if monitor not in logs:
            raise ValueError(
                f"keep_best={monitor!r} is not a metric of this run. Available: "
                f"{sorted(logs)}. Fix: pick one of these (val_* metrics need "
                "validation_data)."
            )
        value = logs[monitor]
        best = None if self.best is None else self.best["value"]
        if best is None or (value < best if mode == "min" else value > best):
            self.checkpoint.save_best(self.model)
            self.best = {"monitor": monitor, "mode": mode, "value": value}
            self.best["epoch"] = epoch

    def save(self, phase: str, label: str) -> None:
        """Writes the checkpoint (no-op without a checkpoint directory)."""
        if self.checkpoint is None:
            return
        optimizer = self.model.optimizer
        lr = optimizer.learning_rate if optimizer is not None else None
        state = {
            "status": "done" if self.done else "running",
            "epoch": self.epoch,
            "epochs": self.epochs,
            "phase_start": self.phase_start,
            "finished": self.finished,
            "history": self.history,
            "best": self.best,
            "optimizer_phase": phase if optimizer is not None else None,
            "learning_rate": None
            if lr is None
            else float(keras.ops.convert_to_numpy(lr)),
            "trainable": [bool(layer.trainable) for layer in flat_layers(self.model)],
        }
        self.checkpoint.save(state, self.model, optimizer, label)

    def finish(self, phase_lrs: dict[str, Any]) -> TwoPhaseHistory:
        """Ends the user's callbacks, marks the run done, returns its history."""
        self.callbacks.end()
        last = self.finished[-1] if self.finished else None
        if not self.done and last is not None:
            self.done = True
            self.save(last, "done")
        return self._history(phase_lrs)

    def _history(self, phase_lrs: dict[str, Any]) -> TwoPhaseHistory:
        result = TwoPhaseHistory()
        result.set_model(self.model)
        result.history = {k: list(v) for k, v in self.history.items()}
        result.epoch = list(self.epochs)
        result.fine_tune_start_epoch = self.phase_start.get(
            "fine_tune", len(self.epochs)
        )
        result.phase_lrs = dict(phase_lrs)
        split = result.fine_tune_start_epoch
        result.phase_epochs = {
            "head": sum(1 for e in self.epochs if e < split),
            "fine_tune": sum(1 for e in self.epochs if e >= split),
        }
        result.phase_histories = dict(self.phase_histories)
        result.resumed_at_epoch = self.resumed_at_epoch
        result.best = dict(self.best) if self.best else None
        result.params = {"phase_epochs": dict(result.phase_epochs)}
        return result

    def _nan_error(self, phase: str, guard: StopOnNaN) -> NaNLossError:
        epoch, batch = guard.failed_at
        where = f"epoch {epoch}" + (f", batch {batch}" if batch >= 0 else "")
        kept = (
            f"the weights at the end of epoch {guard.good_epoch}"
            if guard.good_epoch is not None
            else f"the weights from before phase {phase!r}"
        )
        lr = "head_lr" if phase == "head" else "fine_tune_lr"
        return NaNLossError(
            f"Training stopped: the loss became NaN or Inf in phase {phase!r} at "
            f"{where}. The model holds {kept} (the last finite loss). Fix: lower "
            f"`{lr}` (e.g. by 10x), scale the inputs (images to [0, 1] or the "
            "backbone's preprocessing), or clip gradients with an optimizer such "
            "as keras.optimizers.Adam(clipnorm=1.0). With checkpoint_dir, delete "
            "the directory before running with new settings.",
            self._history({}),
        )
