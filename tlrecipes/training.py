"""Two-phase transfer learning: train a new head, then fine-tune at a low rate.

The recipe, as the Keras guide and fastai's `fine_tune` teach it:

1. freeze the base and train only the new head (phase 1);
2. unfreeze the base (BatchNorm kept frozen), recompile at a low learning
   rate, and continue training (phase 2).

`two_phase_fit` is those steps and nothing else, written with the public
helpers so each step can be copied on its own:

    freeze_until(model, head_start)          # phase 1: only the head trains
    model.compile(optimizer(head_lr), loss, metrics)
    model.fit(..., epochs=head_epochs)
    freeze_until(model, unfreeze_from or 0)  # phase 2: base opens, BN stays frozen
    model.compile(optimizer(fine_tune_lr), loss, metrics)
    model.fit(..., initial_epoch=..., epochs=...)
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tlrecipes.checkpoint import TrainingCheckpoint, arrays_of, assign, describe
from tlrecipes.features import cached_head_phase
from tlrecipes.freezing import flat_layers, freeze_until
from tlrecipes.heads import HEAD_PREFIX, base_bn_training
from tlrecipes.safety import check_images, check_labels

__all__ = [
    "two_phase_fit",
    "TwoPhaseHistory",
    "NaNLossError",
    "make_optimizer",
    "compile_args",
]

#: Default head learning rate. See `two_phase_fit` for why it is 1e-2 rather
#: than the Keras guide's 1e-3 (measured: benchmarks/results/defaults.json).
HEAD_LR = 1e-2
#: Default fine-tuning learning rate. See `two_phase_fit` for why it is 1e-4
#: rather than the Keras guide's 1e-5.
FINE_TUNE_LR = 1e-4
#: Default minimum number of optimisation steps in phase 1.
MIN_HEAD_STEPS = 200


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
        best: `{"monitor", "value", "epoch"}` of the model kept by `keep_best`,
            else None.
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


def make_optimizer(
    optimizer: str | keras.optimizers.Optimizer, learning_rate: Any
) -> keras.optimizers.Optimizer:
    """Builds a fresh optimizer of the given kind at `learning_rate`.

    Each phase needs its own optimizer: the phase-1 optimizer's slots belong to
    the head's variables only, and its learning rate is the head's.

    Args:
        optimizer: A name Keras knows (`"adam"`, `"adamw"`, `"sgd"`,
            `"rmsprop"`, ...) or an optimizer instance, whose configuration
            (momentum, weight decay, ...) is copied.
        learning_rate: A float or a `keras.optimizers.schedules` schedule.

    Returns:
        A new `keras.optimizers.Optimizer`.

    Raises:
        ValueError: For an unknown optimizer name or a non-positive rate.

    Example:

    >>> round(float(make_optimizer("sgd", 0.01).learning_rate), 6)
    0.01
    """
    if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
        if not learning_rate > 0:
            raise ValueError(
                "Received an invalid learning rate, expected a positive number. "
                f"Received: learning_rate={learning_rate!r}. Fix: use e.g. 1e-3 "
                "for the head and 1e-4 for fine-tuning."
            )
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        config["learning_rate"] = learning_rate
        return type(optimizer).from_config(config)
    if isinstance(optimizer, str):
        try:
            return keras.optimizers.get(
                {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
            )
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"Unknown optimizer {optimizer!r}. Expected a Keras optimizer name "
                "such as 'adam', 'adamw', 'sgd' or 'rmsprop', or an optimizer "
                f"instance. Received: optimizer={optimizer!r}."
            ) from err
    raise TypeError(
        "`optimizer` must be a name or a keras.optimizers.Optimizer. Received: "
        f"optimizer={type(optimizer).__name__}."
    )


def compile_args(model: keras.Model, y: Any = None) -> dict[str, Any]:
    """Loss, metrics and compile options to reuse when recompiling `model`.

    Taken from the model's own `compile()` when it was compiled; otherwise
    inferred from the output layer: softmax -> (sparse) categorical
    crossentropy, one sigmoid unit -> binary crossentropy, a linear
    multi-unit output -> sparse categorical crossentropy from logits; metrics
    `["accuracy"]`.

    Raises:
        ValueError: When the loss cannot be inferred from the output layer.
    """
    config = getattr(model, "_compile_config", None)
    if getattr(model, "compiled", False) and config is not None:
        cfg = dict(config.config)
        if cfg.get("loss") is not None:
            return {
                "loss": cfg["loss"],
                "loss_weights": cfg.get("loss_weights"),
                "metrics": cfg.get("metrics"),
                "weighted_metrics": cfg.get("weighted_metrics"),
                "run_eagerly": cfg.get("run_eagerly", False),
                "steps_per_execution": cfg.get("steps_per_execution", 1),
                "jit_compile": cfg.get("jit_compile", "auto"),
            }
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    units = getattr(last, "units", None)
    one_hot = isinstance(y, np.ndarray) and y.ndim == 2 and y.shape[-1] == units > 1
    if activation == "softmax":
        loss = (
            "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
        )
    elif activation == "sigmoid" and units == 1:
        loss = "binary_crossentropy"
    elif activation == "linear" and units and units > 1:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        raise ValueError(
            f"Cannot infer a loss for model {model.name!r}: its last layer "
            f"{last.name!r} has activation={activation!r}, units={units!r}. "
            "Expected softmax, one sigmoid unit, or a linear multi-unit Dense. "
            "Fix: compile the model with the loss you want before calling "
            "two_phase_fit; its loss and metrics are reused in both phases."
        )
    return {"loss": loss, "metrics": ["accuracy"]}


def _find_head_start(model: keras.Model, head_start: int | str | None) -> int | str:
    if head_start is not None:
        return head_start
    for i, layer in enumerate(flat_layers(model)):
        if layer.name.startswith(HEAD_PREFIX):
            return i
    raise ValueError(
        f"Cannot tell where the head of model {model.name!r} starts: no layer "
        f"name starts with {HEAD_PREFIX!r}. Fix: build the model with "
        "tlrecipes.add_head, or pass head_start=<name or index of the first "
        "head layer>."
    )


def _steps_per_epoch(x: Any, fit_kwargs: dict[str, Any]) -> int | None:
    if fit_kwargs.get("steps_per_epoch"):
        return int(fit_kwargs["steps_per_epoch"])
    if isinstance(x, (np.ndarray, list)) or hasattr(x, "shape"):
        n = len(x) * (1.0 - float(fit_kwargs.get("validation_split", 0.0)))
        return max(1, math.ceil(n / int(fit_kwargs.get("batch_size") or 32)))
    try:
        return int(len(x))  # PyDataset, tf.data with known cardinality
    except (TypeError, ValueError):
        return None


def _optimizer_in_scope(
    model: keras.Model, optimizer: Any, learning_rate: Any
) -> keras.optimizers.Optimizer:
    """`make_optimizer` inside the model's `tf.distribute` strategy scope.

    A model built under `MirroredStrategy().scope()` needs its optimizer's
    variables created in that scope too; elsewhere (other backends, no
    strategy) the scope is a no-op.
    """
    strategy = getattr(model, "_distribute_strategy", None)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        return make_optimizer(optimizer, learning_rate)


class NaNLossError(FloatingPointError):
    """Training stopped because the loss became NaN or Inf.

    Raised by `two_phase_fit` after it restored the weights of the last epoch
    whose loss was finite. `history` holds the `TwoPhaseHistory` up to that
    epoch.
    """

    def __init__(self, message: str, history: TwoPhaseHistory | None = None) -> None:
        super().__init__(message)
        self.history = history


def _positive_epochs(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a non-negative "
            f"integer. Received: {name}={value!r}. Fix: e.g. {name}=5."
        )
    return int(value)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            "Received an invalid value for `seed`, expected a non-negative integer "
            f"or None. Received: seed={seed!r}. Fix: e.g. seed=0."
        )
    return int(seed)


# --- input validation -------------------------------------------------------


def _label_kind(loss: Any) -> str | None:
    """The label encoding a classification loss expects; None for other losses."""
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    name = str(name or getattr(loss, "__name__", "") or type(loss).__name__).lower()
    if "sparse_categorical" in name or "sparsecategorical" in name:
        return "sparse"
    if "binary" in name:
        return "binary"
    if "categorical" in name:
        return "one_hot"
    return None


def _is_tf_dataset(x: Any) -> bool:
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "take")


def _first_batch(x: Any, input_rank: int | None) -> tuple[Any, Any]:
    """The first `(x, y)` batch of a PyDataset or tf.data.Dataset, as arrays."""
    if isinstance(x, keras.utils.PyDataset):
        if x.num_batches == 0:
            raise ValueError(
                "`x` is an empty PyDataset (len(x) == 0). Fix: check the data "
                "loading step; two_phase_fit needs at least one batch."
            )
        batch = x[0]
    else:
        empty = ValueError(
            "`x` is an empty tf.data.Dataset. Fix: check the data loading step "
            "(a wrong folder, a filter that removed everything, .take(0))."
        )
        if int(x.cardinality()) == 0:
            raise empty
        try:
            batch = next(iter(x.take(1)))
        except StopIteration:
            raise empty from None
    batch = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
    xb, yb = batch[0], batch[1] if len(batch) > 1 else None
    if isinstance(xb, dict) or isinstance(xb, (list, tuple)):
        return None, None  # multi-input models: Keras checks the structure
    xb = np.asarray(xb)
    if input_rank is not None and xb.ndim == input_rank:
        raise ValueError(
            f"`x` yields single examples of shape {xb.shape}, not batches. Fix: "
            "batch the dataset, e.g. ds.batch(32)."
        )
    return xb, None if yb is None else np.asarray(yb)


def _validate_data(
    model: keras.Model, x: Any, y: Any, validation_data: Any, loss: Any
) -> None:
    """Refuses inputs that would train silently on wrong data (safety.py)."""
    single = not isinstance(model.input_shape, list)
    input_shape = tuple(model.input_shape[1:]) if single else None
    units = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    kind = _label_kind(loss) if units else None
    min_classes = 2
    if isinstance(x, keras.utils.PyDataset) or _is_tf_dataset(x):
        x, y = _first_batch(x, None if input_shape is None else len(input_shape))
        min_classes = 1  # one batch may hold one class
    elif hasattr(x, "__array__") and not isinstance(x, (list, dict)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        return
    _validate_pair(x, y, input_shape, units, kind, min_classes, "x", "y")
    if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
        xv, yv = validation_data[0], validation_data[1]
        if hasattr(xv, "__array__") and not isinstance(xv, (list, dict)):
            names = ("validation_data[0]", "validation_data[1]")
            _validate_pair(np.asarray(xv), yv, input_shape, units, kind, 1, *names)


def _validate_pair(x, y, input_shape, units, kind, min_classes, x_name, y_name):
    if input_shape is not None:
        check_images(x, input_shape, name=x_name)
    elif len(x) == 0:
        raise ValueError(f"`{x_name}` is empty (0 examples). Fix: check loading.")
    if y is None:
        return
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(
            f"`{x_name}` and `{y_name}` have different lengths: len({x_name})="
            f"{len(x)}, len({y_name})={y.size if y.ndim == 0 else len(y)}. "
            "Fix: pass one label per example."
        )
    if kind is not None:
        check_labels(y, units, kind, min_classes=min_classes, name=y_name)


# --- resumable shuffling ------------------------------------------------------


class _SeededBatches(keras.utils.PyDataset):
    """Array batches in an order fixed by `(seed, epoch)`, not by process state.

    Keras shuffles arrays with the process's random state, so a process that
    resumes a run would see other batches than the one that was killed. Here
    item `i` is batch `i % steps` of epoch `first_epoch + i // steps`, in a
    permutation drawn from `np.random.default_rng([seed, epoch])`: the same in
    any process. The dataset reports no length, so Keras keeps one iterator
    for the whole `fit` and `i` counts from the fit's first epoch.
    """

    def __init__(self, arrays, batch_size, steps, seed, first_epoch, shuffle) -> None:
        super().__init__()
        self.arrays = arrays
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed
        self.first_epoch = first_epoch
        self.shuffle = shuffle
        self.size = len(arrays[0])
        self.batches = math.ceil(self.size / batch_size)
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    @property
    def num_batches(self) -> None:
        return None

    def _order(self, epoch: int, lap: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        if (epoch, lap) not in self._orders:
            self._orders = {  # keep only the current epoch's orders
                key: v for key, v in self._orders.items() if key[0] == epoch
            }
            rng = np.random.default_rng([self.seed, epoch, lap])
            self._orders[(epoch, lap)] = rng.permutation(self.size)
        return self._orders[(epoch, lap)]

    def __getitem__(self, i: int) -> tuple:
        epoch, step = divmod(int(i), self.steps)
        lap, b = divmod(step, self.batches)  # steps_per_epoch may exceed a pass
        order = self._order(self.first_epoch + epoch, lap)
        index = order[b * self.batch_size : (b + 1) * self.batch_size]
        return tuple(a[index] for a in self.arrays)


def _fit_inputs(
    x: Any, y: Any, validation_data: Any, fit_kwargs: dict[str, Any], seed: int | None
):
    """Returns `inputs(first_epoch) -> dict` of `model.fit` keyword arguments."""
    if seed is None or not isinstance(x, np.ndarray):
        fixed = {"x": x, "y": y, "validation_data": validation_data, **fit_kwargs}
        return lambda first_epoch: fixed
    kwargs = dict(fit_kwargs)
    batch_size = kwargs.pop("batch_size", None) or 32
    shuffle = kwargs.pop("shuffle", True)
    split = kwargs.pop("validation_split", 0.0)
    sample_weight = kwargs.pop("sample_weight", None)
    arrays = [a for a in (x, y, sample_weight) if a is not None]
    arrays = [np.asarray(a) for a in arrays]
    if split and validation_data is None:  # as Keras splits: the last fraction
        cut = int(math.floor(len(x) * (1.0 - split)))
        validation_data = tuple(a[cut:] for a in arrays)
        arrays = [a[:cut] for a in arrays]
    steps = kwargs.pop("steps_per_epoch", None) or math.ceil(
        len(arrays[0]) / batch_size
    )
    kwargs.setdefault("validation_batch_size", batch_size)

    def inputs(first_epoch: int) -> dict[str, Any]:
        batches = _SeededBatches(arrays, batch_size, steps, seed, first_epoch, shuffle)
        return {
            "x": batches,
            "validation_data": validation_data,
            "steps_per_epoch": steps,
            "shuffle": False,
            **kwargs,
        }

    return inputs


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] >> 1)


def _reseed(seed: int) -> None:
    """`keras.utils.set_random_seed(seed)` without TensorFlow's global seed.

    `tf.random.set_seed` clears TensorFlow's kernel caches, so every compiled
    train step is set up again afterwards: measured 20-50 ms per epoch on a
    2-core CPU, more than a whole small epoch. Keras 3 layers draw their
    randomness from their own seed generators and stateless ops, not from
    TensorFlow's global seed, so it is left alone here (it is still set once
    by the user's own `keras.utils.set_random_seed`).
    """
    import random

    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
    except ImportError:  # a Keras without these internals: the public call
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


# --- callbacks ------------------------------------------------------------------


def _finite(logs: dict | None, key: str = "loss") -> bool:
    value = (logs or {}).get(key)
    return value is None or math.isfinite(float(keras.ops.convert_to_numpy(value)))


class _StopOnNaN(keras.callbacks.Callback):
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

    def on_train_begin(self, logs=None):
        self._good = arrays_of(self.model.variables)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.failed_at is None and not _finite(logs):
            self.failed_at = (self._epoch, batch)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.failed_at is None and _finite(logs):
            self._good = arrays_of(self.model.variables)
            self.good_epoch = epoch
        elif self.failed_at is None:
            self.failed_at = (epoch, -1)
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.failed_at is not None:
            assign(self.model.variables, self._good, "model")


class _RecordEpochs(keras.callbacks.Callback):
    """Merges the history, reseeds each epoch, writes checkpoints and best.keras.

    Runs after the user's callbacks, so it sees an early stop they requested.
    """

    def __init__(self, run: _Run, phase: str, guard: _StopOnNaN) -> None:
        super().__init__()
        self.run = run
        self.phase = phase
        self.guard = guard
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # Reseed at the first batch, not at epoch begin: on torch, unseeded
        # dropout draws from torch's global generator, and starting a fit
        # (creating its DataLoader iterator) consumes a draw between the two.
        if batch == 0 and self.run.seed is not None:
            _reseed(_epoch_seed(self.run.seed, self.epoch))

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failed_at is not None:
            return  # the NaN epoch is neither recorded nor checkpointed
        logs = {
            k: float(keras.ops.convert_to_numpy(v)) for k, v in (logs or {}).items()
        }
        self.run.record(self.phase, epoch, logs, stopped=self.model.stop_training)


class _Run:
    """The progress of one `two_phase_fit` call, resumed from its checkpoint."""

    def __init__(
        self,
        model: keras.Model,
        compiled: dict[str, Any],
        inputs,
        callbacks: list,
        seed: int | None,
        checkpoint: TrainingCheckpoint | None,
        keep_best: str | None,
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

        With `cached` (a `features.CachedHeadPhase`), the head model trains on
        the base's cached features instead of the full model on the images.
        """
        if phase in self.finished:
            return
        start = self.phase_start.setdefault(phase, self.epoch)
        if self.epoch < start + epochs:
            guard = _StopOnNaN()
            trainer, inputs, callbacks = self.model, self.inputs, self.callbacks
            if cached is not None:
                trainer, inputs, callbacks = cached.prepare(
                    self.compiled, callbacks, epochs=start + epochs - self.epoch
                )
            try:
                hist = trainer.fit(
                    **inputs(self.epoch),
                    initial_epoch=self.epoch,
                    epochs=start + epochs,
                    callbacks=[*callbacks, guard, _RecordEpochs(self, phase, guard)],
                )
            finally:
                if cached is not None:
                    cached.close()
            self.phase_histories[phase] = hist
            if guard.failed_at is not None:
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
        monitor = self.keep_best
        if monitor not in logs:
            raise ValueError(
                f"keep_best={monitor!r} is not a metric of this run. Available: "
                f"{sorted(logs)}. Fix: pick one of these (val_* metrics need "
                "validation_data)."
            )
        value = logs[monitor]
        lower = "loss" in monitor or "error" in monitor
        best = None if self.best is None else self.best["value"]
        if best is None or (value < best if lower else value > best):
            self.checkpoint.save_best(self.model)
            self.best = {"monitor": monitor, "value": value, "epoch": epoch}

    def save(self, phase: str, label: str) -> None:
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
        """Marks the run done (once) and returns its merged history."""
        last = self.finished[-1] if self.finished else None
        if not self.done and last is not None:
            self.done = True
            self.save(last, "done")
        result = self._history(phase_lrs)
        return result

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

    def _nan_error(self, phase: str, guard: _StopOnNaN) -> NaNLossError:
        epoch, batch = guard.failed_at
        where = f"epoch {epoch}" + (f", batch {batch}" if batch >= 0 else "")
        kept = (
            f"the weights at the end of epoch {guard.good_epoch}"
            if guard.good_epoch is not None
            else f"the weights from before phase {phase!r}"
        )
        lr = "head_lr" if phase == "head" else "fine_tune_lr"
        history = self._history({})
        return NaNLossError(
            f"Training stopped: the loss became NaN or Inf in phase {phase!r} at "
            f"{where}. The model holds {kept} (the last finite loss). Fix: lower "
            f"`{lr}` (e.g. by 10x), scale the inputs (images to [0, 1] or the "
            "backbone's preprocessing), or clip gradients with an optimizer such "
            "as keras.optimizers.Adam(clipnorm=1.0). With checkpoint_dir, delete "
            "the directory before running with new settings.",
            history,
        )


def two_phase_fit(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    validation_data: Any = None,
    head_epochs: int,
    fine_tune_epochs: int,
    head_lr: Any = HEAD_LR,
    fine_tune_lr: Any = FINE_TUNE_LR,
    unfreeze_from: int | str | None = None,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    head_start: int | str | None = None,
    train_bn: bool | None = None,
    min_head_steps: int = MIN_HEAD_STEPS,
    checkpoint_dir: str | os.PathLike | None = None,
    seed: int | None = None,
    keep_best: str | None = None,
    lr_multipliers: dict[str, float] | None = None,
    cache_features: bool | str = "auto",
    feature_cache_dir: str | os.PathLike | None = None,
    jit_compile: bool | str | None = None,
    **fit_kwargs: Any,
) -> TwoPhaseHistory:
    """Trains a new head on a frozen base, then fine-tunes at a low rate.

    Phase 1 freezes everything before the head and trains the head at
    `head_lr`. Phase 2 unfreezes the base from `unfreeze_from` (default: all
    of it), keeps BatchNormalization frozen unless `train_bn`, recompiles with
    the same loss and metrics at `fine_tune_lr`, and continues the epoch
    numbering. This is linear-probe-then-fine-tune (Kumar et al. 2022): a
    trained head keeps large, random gradients from wrecking the pretrained
    features in phase 2.

    Three defaults differ from the Keras guide because the guide's are tuned
    for ImageNet-scale data and fail at small scale. Measured by
    `benchmarks/choose_defaults.py` (H100, JAX, 3 seeds; every number in
    `benchmarks/results/defaults.json`) on fashion_a_to_b and
    fashion_to_mnist with the shipped source models, `head_epochs=10,
    fine_tune_epochs=10`: with 10 images per class the guide's code as
    written reached 0.50 +- 0.13 test accuracy on fashion_a_to_b, below a
    from-scratch twin (0.78 +- 0.02); these defaults reached 0.83 +- 0.01.

    - **Phase 1 is budgeted in optimisation steps.** With 50 images and batch
      size 32 an epoch is 2 steps, so 10 "epochs" leave the head untrained.
      Phase 1 runs at least `min_head_steps` steps (200): `head_epochs` is
      raised when its epochs are too short, and `phase_epochs` records what ran.
    - **`head_lr` is 1e-2**, not 1e-3: a new head on frozen features needs
      larger steps to converge in a few hundred steps. Head only, 10 per
      class: 0.76 (1e-3), 0.81 (3e-3), 0.83 (1e-2) on fashion_a_to_b and
      0.22, 0.39, 0.53 on fashion_to_mnist; 1e-2 was best or tied in all four
      measured cells. Lower it if a wide head diverges.
    - **`fine_tune_lr` is 1e-4**, not 1e-5: at 1e-5 a few epochs barely move a
      small network. 1e-3 measured -0.8 to +1.3 points on the similar task
      and +5 to +7 on the different one, but it sits one factor of
      ten from the cliff: in notebook 03 one seed of three lost accuracy at
      1e-3 and 1e-2 destroyed two of three, while 1e-4 improved every seed.
      For a different domain, pass `fine_tune_lr=1e-3`; for large ImageNet
      backbones, consider 1e-5.

    **Inputs are checked before any weight moves** (`tlrecipes.safety`):
    labels outside [0, num_classes), a single class, images whose shape or
    channels do not match the model (grayscale into an RGB model: build it
    with `add_head(..., input_shape=(h, w, 1))`), NaN/Inf, empty data and
    x/y of different lengths raise a `ValueError` that says how to fix them.
    A NaN or Inf loss during training stops it, puts back the weights of the
    last epoch with a finite loss and raises `NaNLossError`.

    **Checkpoint and resume.** With `checkpoint_dir`, the run is saved after
    every epoch and at the end of each phase (model and optimizer variables,
    phase, epoch, trainable flags, learning rate, history; see
    `tlrecipes.checkpoint`). Calling `two_phase_fit` again with the same
    arguments after an interruption (during phase 1, between the phases or
    during phase 2) restores all of it and continues where the last completed
    epoch ended; the epoch that was running is redone. Writes are atomic: a
    kill at any instant leaves a checkpoint that loads. A checkpoint made with
    other settings (epochs, rates, optimizer, seed, data, model) is refused;
    delete the directory to start over. Once a run has completed, calling
    again does not retrain: it loads the final weights and optimizer state
    into `model` and returns the stored history. Callbacks with their own
    state (EarlyStopping's patience counter) start afresh on resume.

    **Reproducibility.** With `seed`, array inputs are shuffled each epoch by
    tlrecipes in an order fixed by `(seed, epoch)` instead of by Keras (which
    draws from the process's random state), and Keras's random seeds (Python,
    NumPy, Keras's global seed generator, torch's) are reset at the first
    batch of every epoch (not TensorFlow's global seed: resetting it clears
    TensorFlow's compiled kernels, 20-50 ms per epoch on CPU); the dropout
    seed state is part of the checkpoint. Then the same seed gives the same
    numbers in two runs on CPU, and a resumed run ends with the same weights
    as an uninterrupted one (within floating-point tolerance): `seed` is
    required for an exact resume.
    Seed the model's construction too (`keras.utils.set_random_seed(seed)`
    before building it) so the new head starts from the same weights. GPUs are
    not bit-deterministic: on TensorFlow call
    `tf.config.experimental.enable_op_determinism()` (slower); on JAX set
    `XLA_FLAGS=--xla_gpu_deterministic_ops=true`; on PyTorch call
    `torch.use_deterministic_algorithms(True)` and set
    `CUBLAS_WORKSPACE_CONFIG=:4096:8`. Without these, GPU runs differ in the
    last digits, and a resumed GPU run matches only approximately.
    `PyDataset` and `tf.data` inputs keep their own order: make it depend on
    the epoch alone for an exact resume.

    Args:
        model: A model built by `add_head`, or a flat model together with
            `head_start`. If compiled, its loss and metrics are reused;
            otherwise they are inferred from the output layer.
        x: Training inputs: a NumPy array, a `keras.utils.PyDataset`, or (on
            the TensorFlow backend) a `tf.data.Dataset` yielding `(x, y)`.
        y: Training labels when `x` is an array. Defaults to None.
        validation_data: Passed to `model.fit` in both phases. Defaults to None.
        head_epochs: Epochs of phase 1 (at least; see `min_head_steps`). 0 skips
            phase 1.
        fine_tune_epochs: Epochs of phase 2. 0 skips phase 2.
        head_lr: Learning rate (float or schedule) of phase 1. Defaults to 1e-2.
        fine_tune_lr: Learning rate (float or schedule) of phase 2. Defaults
            to 1e-4. Schedules (`tlrecipes.schedules.OneCycle`,
            `WarmupCosine`, any Keras schedule) work in both phases; each
            phase's optimizer counts its steps from 0, and phase 1 may run
            more epochs than `head_epochs` (see `min_head_steps`).
        unfreeze_from: Layer (name or index into `flat_layers(model)`) from
            which phase 2 trains; earlier layers stay frozen. Defaults to None:
            the whole base.
        optimizer: Optimizer name or instance, rebuilt for each phase at that
            phase's rate. Defaults to `"adam"`.
        callbacks: Keras callbacks, used in both phases. Early stopping in
            phase 1 ends phase 1 only. Defaults to None.
        head_start: Where the head starts in a flat model (name or index).
            Defaults to None: the first layer named `head_*`.
        train_bn: Whether BatchNormalization layers train. Defaults to None:
            True only if the model was built with `add_head(...,
            bn_training=True)`.
        min_head_steps: Minimum number of optimisation steps in phase 1 when
            the steps per epoch are known; 0 disables it. Defaults to 200.
        checkpoint_dir: Directory that holds this run's checkpoint; the run
            resumes from it when it holds one. Defaults to None (no
            checkpoint).
        seed: Non-negative integer that makes the run repeatable and its
            resume exact (see above). Defaults to None (Keras's own
            shuffling; a resume then continues with other batches).
        keep_best: Name of a logged metric (`"val_accuracy"`, `"val_loss"`,
            ...); the model at the epoch where it was best is saved to
            `<checkpoint_dir>/best.keras` (lower is better for names containing
            "loss" or "error", higher otherwise). Requires `checkpoint_dir`;
            `model` itself ends with the last epoch's weights. Defaults to None.
        lr_multipliers: Per-layer learning-rate multipliers for phase 2
            (discriminative fine-tuning), e.g.
            `tlrecipes.lr_multipliers(model, factor=2.6)`: the phase-2
            optimizer becomes `with_lr_multipliers(optimizer, ...)` and
            `fine_tune_lr` is the rate of multiplier 1 (the head). Defaults to
            None (one rate for all layers).
        cache_features: Whether phase 1 trains the head on the base's
            features computed once (`tlrecipes.features`), instead of running
            the frozen base on every batch of every epoch. `"auto"` caches
            when it gives the same training: array inputs, `validation_data`
            None or arrays, nothing before the head trainable (no
            `train_bn`) and nothing random there in training mode
            (augmentation, dropout inside the base: Keras 3 runs a base
            called with `training=False` in training mode inside `fit`).
            True requires it (also for a `PyDataset` or `tf.data.Dataset`
            without random augmentation, read once) and raises a
            `ValueError` saying why when it is invalid; False never caches.
            The same head layers train, so `model` comes back as the full
            model with the trained head; callbacks see `model`.
            `history.features_cached` and `history.feature_cache_note` say
            what happened. Defaults to `"auto"`.
        feature_cache_dir: Directory for the cached features as `np.memmap`
            `.npy` files (sets larger than memory). Defaults to None: in
            memory, or a temporary file above 1 GiB of features.
        jit_compile: Passed to `compile` in both phases (True: XLA on
            TensorFlow, `torch.compile` on torch; JAX always compiles).
            Defaults to None: the model's own setting, else Keras's "auto".
        **fit_kwargs: Passed to `model.fit` by name in both phases
            (`batch_size`, `verbose`, `class_weight`, `shuffle`,
            `validation_split`, ...).

    Returns:
        A `TwoPhaseHistory` with the merged `history`, `fine_tune_start_epoch`,
        `phase_lrs`, `phase_epochs`, `resumed_at_epoch` (None for a fresh run)
        and `best` (`{"monitor", "value", "epoch"}` with `keep_best`).

    Raises:
        ValueError: For negative epochs, both phases empty, a head that cannot
            be found, a loss that cannot be inferred, bad inputs (see above),
            `keep_best` without `checkpoint_dir` or not a logged metric, and a
            checkpoint made with other settings or damaged.
        NaNLossError: If the loss becomes NaN or Inf (a `FloatingPointError`).

    Example:

    >>> import keras, numpy as np
    >>> base = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(4, 3, activation="relu")], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> x = np.random.rand(32, 8, 8, 1).astype("float32")
    >>> y = np.arange(32) % 3
    >>> hist = two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1,
    ...                      min_head_steps=0, verbose=0, seed=0)
    >>> hist.fine_tune_start_epoch, round(float(model.optimizer.learning_rate), 6)
    (1, 0.0001)
    """
    head_epochs = _positive_epochs(head_epochs, "head_epochs")
    fine_tune_epochs = _positive_epochs(fine_tune_epochs, "fine_tune_epochs")
    if head_epochs == 0 and fine_tune_epochs == 0:
        raise ValueError(
            "Both phases are empty: head_epochs=0 and fine_tune_epochs=0. "
            "Fix: give at least one of them a positive number of epochs."
        )
    for key in ("epochs", "initial_epoch"):
        if key in fit_kwargs:
            raise ValueError(
                f"`{key}` is set by two_phase_fit. Received: {key}="
                f"{fit_kwargs[key]!r}. Fix: use head_epochs and fine_tune_epochs."
            )
    seed = _check_seed(seed)
    if keep_best is not None and checkpoint_dir is None:
        raise ValueError(
            f"keep_best={keep_best!r} needs a place to save the best model. "
            "Received: checkpoint_dir=None. Fix: pass checkpoint_dir='runs/my_run'; "
            "the best model is saved to <checkpoint_dir>/best.keras."
        )
    compiled = compile_args(model, y)
    if jit_compile is not None:  # XLA switch for both phases (precision.py)
        compiled = {**compiled, "jit_compile": jit_compile}
    _validate_data(model, x, y, validation_data, compiled["loss"])
    start = _find_head_start(model, head_start)
    if train_bn is None:
        train_bn = base_bn_training(model)
    if head_epochs:
        steps = _steps_per_epoch(x, fit_kwargs)
        if steps and min_head_steps:
            head_epochs = max(head_epochs, math.ceil(min_head_steps / steps))
    unfreeze_from = 0 if unfreeze_from is None else unfreeze_from
    checkpoint = None
    if checkpoint_dir is not None:
        settings = {
            "head_epochs": head_epochs,
            "fine_tune_epochs": fine_tune_epochs,
            "head_lr": head_lr,
            "fine_tune_lr": fine_tune_lr,
            "unfreeze_from": unfreeze_from,
            "optimizer": optimizer,
            **({"lr_multipliers": lr_multipliers} if lr_multipliers else {}),
            "head_start": start,
            "train_bn": train_bn,
            "seed": seed,
            "compile": compiled,
            "fit_kwargs": {k: v for k, v in fit_kwargs.items() if k != "verbose"},
            "data": {"x": x, "y": y, "validation_data": validation_data},
            "model": [[list(v.shape), str(v.dtype)] for v in model.variables],
            "backend": keras.backend.backend(),
        }
        checkpoint = TrainingCheckpoint(checkpoint_dir, describe(settings))
    inputs = _fit_inputs(x, y, validation_data, fit_kwargs, seed)
    run = _Run(
        model, compiled, inputs, list(callbacks or []), seed, checkpoint, keep_best
    )

    cached, cache_note = None, None
    if head_epochs:  # phase 1: only the head trains
        freeze_until(model, start, train_bn=train_bn)
        # On cached base features when valid (features.py): same head, same steps.
        cached, cache_note = cached_head_phase(
            model, start, cache_features, x, y, validation_data, fit_kwargs,
            seed, feature_cache_dir,
        )  # fmt: skip
        run.compile("head", _optimizer_in_scope(model, optimizer, head_lr))
        run.fit("head", head_epochs, cached=cached)
    if fine_tune_epochs:  # phase 2: the base opens (BatchNorm stays frozen)
        freeze_until(model, unfreeze_from, train_bn=train_bn)
        phase2 = _optimizer_in_scope(model, optimizer, fine_tune_lr)
        if lr_multipliers is not None:  # discriminative rates (finetune.py)
            from tlrecipes.finetune import with_lr_multipliers

            phase2 = with_lr_multipliers(phase2, lr_multipliers)
        run.compile("fine_tune", phase2)
        run.fit("fine_tune", fine_tune_epochs)
    result = run.finish({"head": head_lr, "fine_tune": fine_tune_lr})
    result.features_cached = cached is not None and cached.used
    result.feature_cache_note = cache_note
    return result
