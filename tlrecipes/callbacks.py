"""The callbacks `two_phase_fit` adds, and how it shows the user's callbacks one run.

`two_phase_fit` calls `model.fit` once per phase (twice, or more when it
resumes), but a user's callbacks should see what the user asked for: one
training run. `RunCallbacks` wraps them so that

- `on_train_begin` runs once, before the first epoch of phase 1, and
  `on_train_end` once, after the last epoch of phase 2 (a `CSVLogger` keeps
  every row, a `TensorBoard` writes one run);
- epochs are numbered across both phases, and `params["epochs"]` is the
  whole run's;
- they always see the full model, also while phase 1 trains the head alone on
  cached features (a `ModelCheckpoint` saves the model the user passed), and
  a stop they request reaches the model that trains.

`StopOnNaN` stops at the first NaN or Inf loss and puts back the weights of
the last finite epoch; `monitor_mode` reads whether a metric is better high or
low from the metric itself, for `keep_best`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

__all__ = ["RunCallbacks", "StopOnNaN", "monitor_mode", "logged_metric_names"]

_HOOKS = (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


class _UserCallback(keras.callbacks.Callback):
    """One user callback, seen through `RunCallbacks` (see the module docstring)."""

    def __init__(self, callback: keras.callbacks.Callback, run: RunCallbacks) -> None:
        super().__init__()
        self.callback, self.run, self.trainer = callback, run, None
        for name in _HOOKS:
            inner = getattr(callback, name)
            if getattr(inner, "_is_default", False):
                setattr(self, name, inner)  # keeps Keras's fast path
            else:
                setattr(self, name, self._forward(inner))

    def _forward(self, inner):
        def hook(*args, **kwargs):
            # On JAX the training model holds its variables outside them during
            # an epoch; Keras syncs them back when a callback reads
            # `self.model`, but the user's callback reads the full model.
            if self.trainer is not self.run.model:
                sync = getattr(self.trainer, "jax_state_sync", None)
                if sync is not None:
                    sync()
            inner(*args, **kwargs)
            if self.run.model.stop_training and self.trainer is not None:
                self.trainer.stop_training = True

        return hook

    def set_model(self, model: keras.Model) -> None:
        self.trainer = model
        self.callback.set_model(self.run.model)

    def set_params(self, params: dict) -> None:
        self.callback.set_params({**params, "epochs": self.run.total_epochs})

    def on_train_begin(self, logs=None):
        self.run.model.stop_training = False
        self.run.begin(self.callback, logs)

    def on_train_end(self, logs=None):
        self.run.last_logs = logs  # the run calls on_train_end once, at its end


class RunCallbacks:
    """The user's callbacks of one `two_phase_fit` call, as one run.

    Args:
        callbacks: The user's Keras callbacks.
        model: The model the user passed (what the callbacks see).
        total_epochs: Epochs of the whole run (both phases).
    """

    def __init__(
        self,
        callbacks: Sequence[keras.callbacks.Callback],
        model: keras.Model,
        total_epochs: int,
    ) -> None:
        self.callbacks = list(callbacks)
        self.model = model
        self.total_epochs = total_epochs
        self.begun: set[int] = set()
        self.last_logs: dict | None = None
        self.wrapped = [_UserCallback(c, self) for c in self.callbacks]

    def begin(self, callback: keras.callbacks.Callback, logs: dict | None) -> None:
        """Calls `callback.on_train_begin` the first time a phase starts."""
        if id(callback) not in self.begun:
            self.begun.add(id(callback))
            callback.on_train_begin(logs)

    def end(self) -> None:
        """Calls `on_train_end` once on every callback that began."""
        for callback in self.callbacks:
            if id(callback) in self.begun:
                self.begun.discard(id(callback))
                callback.on_train_end(self.last_logs)


def _finite(logs: dict | None, key: str = "loss") -> bool:
    value = (logs or {}).get(key)
    return value is None or math.isfinite(float(keras.ops.convert_to_numpy(value)))


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first NaN/Inf loss and restores the last finite epoch.

    Keras's `TerminateOnNaN` stops but leaves the NaN weights in the model;
    this keeps a copy of the weights at the end of each epoch whose loss was
    finite and puts it back.

    Where Keras runs batch hooks in the training loop itself (TensorFlow),
    it also checks each batch's loss and stops at the first bad batch. On
    JAX and torch a batch hook would make Keras wait for every step's loss
    (and the loss buffer may already be donated to the next step when a
    worker thread reads it), so there the check runs at the end of each
    epoch: the epoch's loss is a running mean, NaN or Inf once any batch's
    was, and training stops at the end of that epoch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failed_at: tuple[int, int] | None = None
        self.good_epoch: int | None = None
        self._epoch = 0
        self._good: list[np.ndarray] = []
        if keras.backend.backend() != "tensorflow":
            self.on_train_batch_end = super().on_train_batch_end  # Keras's no-op

    def _copy(self) -> list[np.ndarray]:
        return [
            np.array(keras.ops.convert_to_numpy(v.value)) for v in self.model.variables
        ]

    def on_train_begin(self, logs=None):
        self._good = self._copy()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.failed_at is None and not _finite(logs):
            self.failed_at = (self._epoch, batch)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.failed_at is None and _finite(logs):
            self._good = self._copy()
            self.good_epoch = epoch
        elif self.failed_at is None:
            self.failed_at = (epoch, -1)
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.failed_at is not None:
            for variable, value in zip(self.model.variables, self._good, strict=True):
                variable.assign(value)


def _metric_objects(metrics: Any) -> list[tuple[str, Any]]:
    """`(name as logged, metric object or None)` for a compile `metrics` value."""
    if metrics is None:
        return []
    if isinstance(metrics, dict):  # per output: names get prefixes, not known here
        return []
    found = []
    for spec in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
        if isinstance(spec, (list, tuple, dict)):
            continue
        if isinstance(spec, str):
            try:
                obj = keras.metrics.get(spec)
            except (ValueError, TypeError):
                obj = None
            obj = obj() if isinstance(obj, type) else obj
            found.append((spec, obj))
            if obj is not None and getattr(obj, "name", spec) != spec:
                found.append((obj.name, obj))
        else:
            found.append((getattr(spec, "name", getattr(spec, "__name__", "")), spec))
    return found


def logged_metric_names(
    compiled: dict[str, Any],
    validation: bool,
    output_names: Sequence[str] | None = None,
) -> set[str] | None:
    """The names `fit` will log for these compile arguments; None if unknown.

    For a model with several outputs (`output_names`, in Keras's order),
    Keras logs `loss`, then `<output>_loss` and `<output>_<metric>` for each
    output. Unknown (None) for several outputs when `output_names` is not
    given, or for a `metrics` structure Keras would not accept.

    Example:

    >>> sorted(logged_metric_names({"loss": "mse", "metrics": [["accuracy"], None]},
    ...                            False, ["a", "b"]))
    ['a_accuracy', 'a_loss', 'b_loss', 'loss']
    """
    found = _logged_metrics(compiled, output_names)
    if found is None:
        return None
    names = {"loss"} | {name for name, _ in found}
    return names | {f"val_{n}" for n in names} if validation else names


def _logged_metrics(
    compiled: dict[str, Any], output_names: Sequence[str] | None
) -> list[tuple[str, Any]] | None:
    """`(name as logged, metric or None)` for every metric and per-output loss."""
    metrics = compiled.get("metrics")
    several = output_names is not None and len(output_names) > 1
    if not several:
        if isinstance(compiled.get("loss"), (dict, list, tuple)):
            return None
        return None if isinstance(metrics, dict) else _metric_objects(metrics)
    outputs = list(output_names)
    if metrics is None:
        per_output = [None] * len(outputs)
    elif isinstance(metrics, dict) and set(metrics) <= set(outputs):
        per_output = [metrics.get(name) for name in outputs]
    elif isinstance(metrics, (list, tuple)) and len(metrics) == len(outputs):
        per_output = list(metrics)
    else:
        return None
    found: list[tuple[str, Any]] = [(f"{name}_loss", "loss") for name in outputs]
    for name, specs in zip(outputs, per_output, strict=True):
        found += [(f"{name}_{m}", obj) for m, obj in _metric_objects(specs)]
    return found


def monitor_mode(
    monitor: str,
    compiled: dict[str, Any],
    output_names: Sequence[str] | None = None,
) -> str:
    """Whether `monitor` is better when lower (`"min"`) or higher (`"max"`).

    Read from the metric itself, as Keras's callbacks do: a loss is better
    low; a Keras metric carries its direction (`accuracy` up,
    `SparseCategoricalCrossentropy` down). Names are not guessed from.

    Raises:
        ValueError: When the direction cannot be read from the metric.

    Example:

    >>> monitor_mode("val_accuracy", {"loss": "mse", "metrics": ["accuracy"]})
    'max'
    """
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    for logged, obj in _logged_metrics(compiled, output_names) or []:
        if logged == name and obj == "loss":
            return "min"
        direction = getattr(obj, "_direction", None)
        if logged == name and direction in ("up", "down"):
            return "max" if direction == "up" else "min"
    raise ValueError(
        f"Cannot tell whether {monitor!r} is better high or low: it is not the "
        "loss or a Keras metric that states its direction. Received: "
        f"keep_best={monitor!r}. Fix: name the direction, e.g. "
        f"keep_best=({monitor!r}, 'min') or keep_best=({monitor!r}, 'max')."
    )
