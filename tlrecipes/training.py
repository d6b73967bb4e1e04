"""Two-phase transfer learning: train a new head, then fine-tune at a low rate.

The recipe, as the Keras guide and fastai's `fine_tune` teach it, is the body
of `two_phase_fit`:

    freeze_until(model, head_start)            # phase 1: only the head trains
    model.compile(optimizer(head_lr), loss, metrics)
    model.fit(..., epochs=head_epochs)
    freeze_until(model, unfreeze_from or 0)    # phase 2: the base opens,
    model.compile(optimizer(fine_tune_lr), ...)  # BatchNorm stays frozen
    model.fit(..., initial_epoch=..., epochs=...)

Everything else (checking the inputs before any weight moves, resuming from a
checkpoint, training the head on cached base features, the NaN guard) sits
behind those lines in `validation`, `resume`, `cached_head` and `callbacks`.
Why the defaults are what they are is measured in `docs/defaults.md`.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tlrecipes.batch_checks import check_fit_inputs
from tlrecipes.batches import fit_inputs
from tlrecipes.cached_head import CachedHeadPhase, cached_head_phase
from tlrecipes.callbacks import RunCallbacks, logged_metric_names, monitor_mode
from tlrecipes.checkpoint import (
    TrainingCheckpoint,
    base_weights_digest,
    data_identity,
    describe,
)
from tlrecipes.checkpoint_dir import DirectoryLock, check_directory
from tlrecipes.freezing import freeze_until, layer_index
from tlrecipes.heads import base_bn_training, find_head_start, outputs_logits
from tlrecipes.optimizers import make_optimizer, with_lr_multipliers
from tlrecipes.resume import NaNLossError, Run, TwoPhaseHistory
from tlrecipes.validation import (
    check_epochs,
    check_seed,
    steps_per_epoch,
    validate_fit_data,
)

__all__ = [
    "FINE_TUNE_LR",
    "HEAD_LR",
    "MIN_HEAD_STEPS",
    "NaNLossError",
    "TwoPhaseHistory",
    "compile_args",
    "two_phase_fit",
]

#: Default learning rate of phase 1 (the new head). See docs/defaults.md.
HEAD_LR = 1e-2
#: Default learning rate of phase 2 (fine-tuning). See docs/defaults.md.
FINE_TUNE_LR = 1e-4
#: Optimisation steps phase 1 runs at least when `head_epochs="auto"`.
MIN_HEAD_STEPS = 200


def two_phase_fit(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    validation_data: Any = None,
    head_epochs: int | str = "auto",
    fine_tune_epochs: int,
    head_lr: Any = HEAD_LR,
    fine_tune_lr: Any = FINE_TUNE_LR,
    unfreeze_from: int | str | None = None,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    seed: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    run_key: str | None = None,
    keep_best: str | tuple[str, str] | None = None,
    train_bn: bool | None = None,
    head_start: int | str | None = None,
    lr_multipliers: dict[str, float] | None = None,
    cache_features: bool | str = "auto",
    check_data: str = "full",
    **fit_kwargs: Any,
) -> TwoPhaseHistory:
    """Trains a new head on a frozen base, then fine-tunes at a low rate.

    Phase 1 freezes everything before the head and trains the head at
    `head_lr`. Phase 2 unfreezes the base from `unfreeze_from`, keeps
    BatchNormalization frozen (inference mode) unless `train_bn`, recompiles
    with the same loss and metrics at `fine_tune_lr` and continues the epoch
    numbering. This is linear-probe-then-fine-tune (Kumar et al. 2022): a
    trained head keeps large, random gradients from wrecking the pretrained
    features. Every argument and the data are checked before any weight moves.

    Phase 1 is budgeted in optimisation steps: with 50 images an epoch is 2
    steps, and a head trained for a few such epochs has barely moved. So
    `head_epochs="auto"` runs enough epochs for at least `MIN_HEAD_STEPS`
    (200) steps; a number runs exactly that many epochs. The rates (1e-2 for
    the head, 1e-4 for fine-tuning) were chosen by measurement on small
    targets, where the Keras guide's 1e-3 / 1e-5 under-train: see
    `docs/defaults.md` for the evidence and when to change them.

    Args:
        model: A model built by `add_head` (its last `head_*` layers are the
            head), or any model together with `head_start`. If compiled, its
            loss, metrics and compile options are reused in both phases;
            otherwise a crossentropy from logits is chosen from the output.
        x: Training inputs: a NumPy array, a `keras.utils.PyDataset` or a
            `tf.data.Dataset` yielding `(x, y)`.
        y: Labels when `x` is an array. Defaults to None.
        validation_data: Passed to `model.fit` in both phases. Defaults to None.
        head_epochs: Epochs of phase 1, or `"auto"` (at least 200 steps, at
            least one epoch); 0 skips phase 1. Defaults to `"auto"`.
        fine_tune_epochs: Epochs of phase 2; 0 skips phase 2.
        head_lr: Learning rate (float or schedule) of phase 1. Defaults to 1e-2.
        fine_tune_lr: Learning rate (float or schedule) of phase 2. Defaults
            to 1e-4.
        unfreeze_from: Layer (name, or index into `flat_layers(model)`) from
            which phase 2 trains. Defaults to None: the whole base.
        optimizer: Optimizer name or instance, rebuilt for each phase at that
            phase's rate. Defaults to `"adam"`.
        callbacks: Keras callbacks. They see one run over both phases (one
            `on_train_begin`, one `on_train_end`, continuous epochs); one that
            stops training ends the phase it stops. Defaults to None.
        seed: Makes the run repeatable on CPU and its resume exact (batch
            order and dropout fixed by `(seed, epoch)`). Defaults to None.
        checkpoint_dir: Directory holding this run's checkpoint; the same call
            after an interruption resumes from it (see `tlrecipes.resume`).
            It must be new, empty or hold only this run's files (tlrecipes
            never deletes a file it did not write), and one run at a time
            writes it (a lock file; see `tlrecipes.checkpoint_dir`). A
            checkpoint resumes only for the same job: the same settings, the
            same data (arrays are hashed in full) and the same starting
            weights of the layers before the head (the head's may differ).
            Defaults to None (no checkpoint).
        run_key: With `checkpoint_dir`, a string that names the data, part
            of what a checkpoint must match to resume. Required when `x` or
            `validation_data` is streamed (a PyDataset, a tf.data.Dataset, a
            generator), which tlrecipes cannot hash: derive it from what the
            data are read from (`tlrecipes.lab.folder_key(data_dir)` for an
            image folder). Optional with arrays. Unused without
            `checkpoint_dir`. Defaults to None.
        keep_best: A logged metric (`"val_accuracy"`), or `(metric, "min" |
            "max")`: the model of the best epoch is saved to
            `<checkpoint_dir>/best.keras`. The direction is read from the
            metric unless given. Requires `checkpoint_dir`. Defaults to None.
        train_bn: Whether BatchNormalization layers train. Defaults to None:
            as `add_head(..., bn_training=...)` built the model.
        head_start: First head layer (name or index), for models not built by
            `add_head`. Defaults to None.
        lr_multipliers: Per-layer rate multipliers for phase 2
            (`tlrecipes.lr_multipliers(model)`). Defaults to None.
        cache_features: Train phase 1 on the base's features computed once
            when that gives the same training (`"auto"`), always (True, else
            an error saying why not), or never (False). Defaults to `"auto"`.
        check_data: `"full"` reads every batch of the training and validation
            data once before training (labels in range, labels present,
            values finite): for arrays a few NumPy reductions, for a dataset
            one pass over it without the model. `"first_batch"` checks only
            the first batch of a dataset, for data too large to read twice.
            Defaults to `"full"`.
        **fit_kwargs: Passed to `model.fit` by name in both phases
            (`batch_size`, `verbose`, `class_weight`, `validation_split`, ...).

    Returns:
        A `TwoPhaseHistory`: the merged `history`, `fine_tune_start_epoch`,
        `phase_epochs`, `phase_lrs`, `resumed_at_epoch`, `best`,
        `features_cached` and `feature_cache_note`.

    Raises:
        ValueError: For bad arguments or data (labels outside the classes or
            missing in any batch, a single class, wrong image shape or
            channels, NaN/Inf, x/y or sample_weight of different lengths, a
            Python generator read by both phases, labels a compiled
            regression loss cannot compare with the output), a checkpoint
            made by another run (other settings, data or starting base
            weights), streamed data with a `checkpoint_dir` but no `run_key`,
            or a `checkpoint_dir` that is a file, is not writable, holds
            files tlrecipes did not write, or is being written by another run.
        NaNLossError: If the loss becomes NaN or Inf; the model then holds the
            weights of the last epoch with a finite loss.

    Example:

    >>> base = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(4, 3, activation="relu")], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> x = np.random.rand(32, 8, 8, 1).astype("float32")
    >>> y = np.arange(32) % 3
    >>> hist = two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1,
    ...                      verbose=0, seed=0)
    >>> hist.phase_epochs, round(float(model.optimizer.learning_rate), 6)
    ({'head': 1, 'fine_tune': 1}, 0.0001)
    """
    plan = _Plan.check(
        model, x, y, validation_data, head_epochs, fine_tune_epochs,
        unfreeze_from, callbacks, seed, checkpoint_dir, keep_best, train_bn,
        head_start, cache_features, fit_kwargs,
        settings={"head_lr": head_lr, "fine_tune_lr": fine_tune_lr,
                  "optimizer": optimizer, "lr_multipliers": lr_multipliers,
                  "run_key": run_key},
        check_data=check_data,
    )  # fmt: skip
    with plan.lock():  # checkpoint_dir: one writer at a time
        run = plan.start()

        # Phase 1: freeze everything before the head; train the head at head_lr.
        if plan.head_epochs:
            freeze_until(model, plan.head_start, train_bn=plan.train_bn)
            cached = plan.cached_head()  # on features computed once, when valid
            run.compile("head", _optimizer(model, optimizer, head_lr))
            run.fit("head", plan.head_epochs, cached=cached)

        # Phase 2: unfreeze from unfreeze_from (BatchNorm stays frozen), recompile
        # at the low fine_tune_lr, continue the epoch numbering.
        if plan.fine_tune_epochs:
            freeze_until(model, plan.unfreeze_from, train_bn=plan.train_bn)
            phase2 = _optimizer(model, optimizer, fine_tune_lr)
            if lr_multipliers is not None:  # discriminative rates (optimizers.py)
                phase2 = with_lr_multipliers(phase2, lr_multipliers)
            run.compile("fine_tune", phase2)
            run.fit("fine_tune", plan.fine_tune_epochs)

        result = run.finish({"head": head_lr, "fine_tune": fine_tune_lr})
        result.features_cached = plan.cache is not None and plan.cache.used
        result.feature_cache_note = plan.cache_note
    return result


@dataclass
class _Plan:
    """The checked arguments of one `two_phase_fit` call."""

    model: keras.Model
    x: Any
    y: Any
    validation_data: Any
    head_epochs: int
    fine_tune_epochs: int
    head_start: int
    unfreeze_from: int
    train_bn: bool
    seed: int | None
    compiled: dict[str, Any]
    callbacks: RunCallbacks
    checkpoint: TrainingCheckpoint | None
    keep_best: tuple[str, str] | None
    cache_features: bool | str
    fit_kwargs: dict[str, Any]
    cache: CachedHeadPhase | None = None
    cache_note: str | None = None

    @classmethod
    def check(
        cls, model, x, y, validation_data, head_epochs, fine_tune_epochs,
        unfreeze_from, callbacks, seed, checkpoint_dir, keep_best, train_bn,
        head_start, cache_features, fit_kwargs, settings, check_data="full",
    ) -> _Plan:  # fmt: skip
        """Checks every argument and the data, before any weight moves."""
        head_epochs = check_epochs(head_epochs, "head_epochs")
        fine_tune_epochs = check_epochs(fine_tune_epochs, "fine_tune_epochs")
        if fine_tune_epochs == "auto":
            raise ValueError(
                "Received fine_tune_epochs='auto', expected a number of epochs. "
                "Fix: e.g. fine_tune_epochs=10 (0 skips fine-tuning)."
            )
        for key in ("epochs", "initial_epoch"):
            if key in fit_kwargs:
                raise ValueError(
                    f"`{key}` is set by two_phase_fit. Received: {key}="
                    f"{fit_kwargs[key]!r}. Fix: use head_epochs and "
                    "fine_tune_epochs."
                )
        if cache_features not in ("auto", True, False):
            raise ValueError(
                "Received an invalid value for `cache_features`, expected 'auto', "
                f"True or False. Received: cache_features={cache_features!r}. "
                "Fix: use 'auto' (cache when valid), True (require it) or False."
            )
        for name in ("head_lr", "fine_tune_lr"):
            _check_rate(settings[name], name)
        seed = check_seed(seed)
        compiled = compile_args(model, y)
        validate_fit_data(model, x, y, validation_data, compiled["loss"])
        check_fit_inputs(  # every batch, generators, sample_weight, input scale
            model, x, y, validation_data, compiled["loss"], fit_kwargs,
            both_phases=bool(head_epochs and fine_tune_epochs),
            check_data=check_data,
        )  # fmt: skip
        start = find_head_start(model) if head_start is None else head_start
        start = layer_index(model, start)
        unfreeze = layer_index(model, 0 if unfreeze_from is None else unfreeze_from)
        if head_epochs == "auto":
            head_epochs = _auto_head_epochs(x, fit_kwargs)
        if head_epochs == 0 and fine_tune_epochs == 0:
            raise ValueError(
                "Both phases are empty: head_epochs=0 and fine_tune_epochs=0. "
                "Fix: give at least one of them a positive number of epochs."
            )
        validation = validation_data is not None or bool(
            fit_kwargs.get("validation_split")
        )
        keep = _check_keep_best(
            keep_best, checkpoint_dir, compiled, validation, _output_names(model)
        )
        if train_bn is None:
            train_bn = base_bn_training(model)
        plan = cls(
            model, x, y, validation_data, head_epochs, fine_tune_epochs, start,
            unfreeze, bool(train_bn), seed, compiled,
            RunCallbacks(callbacks or [], model, head_epochs + fine_tune_epochs),
            None, keep, cache_features, dict(fit_kwargs),
        )  # fmt: skip
        if checkpoint_dir is not None:
            check_directory(checkpoint_dir)  # a writable dir holding only ours
            plan.checkpoint = TrainingCheckpoint(
                checkpoint_dir, describe(plan.settings(settings))
            )
        return plan

    def settings(self, extra: dict[str, Any]) -> dict[str, Any]:
        """What identifies this run for its checkpoint."""
        lr_multipliers = extra.pop("lr_multipliers", None)
        data = {"x": self.x, "y": self.y, "validation_data": self.validation_data}
        data = data_identity(data, extra.pop("run_key", None))
        return {
            **extra,
            **({"lr_multipliers": lr_multipliers} if lr_multipliers else {}),
            "head_epochs": self.head_epochs,
            "fine_tune_epochs": self.fine_tune_epochs,
            "unfreeze_from": self.unfreeze_from,
            "head_start": self.head_start,
            "train_bn": self.train_bn,
            "seed": self.seed,
            "compile": self.compiled,
            "fit_kwargs": {k: v for k, v in self.fit_kwargs.items() if k != "verbose"},
            "data": data,
            "model": [[list(v.shape), str(v.dtype)] for v in self.model.variables],
            "base_weights": base_weights_digest(self.model, self.head_start),
            "backend": keras.backend.backend(),
        }

    def lock(self) -> contextlib.AbstractContextManager:
        """Holds `checkpoint_dir` for the run (no other run may write it)."""
        if self.checkpoint is None:
            return contextlib.nullcontext()
        return DirectoryLock(self.checkpoint.directory)

    def start(self) -> Run:
        """The run, resumed from its checkpoint when there is one."""
        inputs = fit_inputs(
            self.x, self.y, self.validation_data, self.fit_kwargs, self.seed
        )
        return Run(
            self.model, self.compiled, inputs, self.callbacks, self.seed,
            self.checkpoint, self.keep_best,
        )  # fmt: skip

    def cached_head(self) -> CachedHeadPhase | None:
        """Phase 1 on cached features when valid (the model frozen for phase 1)."""
        self.cache, self.cache_note = cached_head_phase(
            self.model, self.head_start, self.cache_features, self.x, self.y,
            self.validation_data, self.fit_kwargs, self.seed,
        )  # fmt: skip
        return self.cache


def _check_rate(value: Any, name: str) -> None:
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return
    number = isinstance(value, (int, float, np.floating)) and not isinstance(
        value, bool
    )
    if not number or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive number "
            f"or a keras.optimizers.schedules schedule. Received: {name}={value!r}."
            " Fix: e.g. head_lr=1e-2, fine_tune_lr=1e-4."
        )


def _auto_head_epochs(x: Any, fit_kwargs: dict[str, Any]) -> int:
    steps = steps_per_epoch(x, fit_kwargs)
    if steps is None:
        raise ValueError(
            "head_epochs='auto' counts optimisation steps, but the number of "
            f"steps in an epoch of this `x` ({type(x).__name__}) is unknown. Fix: "
            "pass head_epochs=<number of epochs>, or steps_per_epoch=<steps>."
        )
    return max(1, math.ceil(MIN_HEAD_STEPS / steps))


def _output_names(model: keras.Model) -> list[str] | None:
    """The names Keras prefixes to each output's metrics; None for one output."""
    try:
        outputs = model.output
    except (AttributeError, ValueError):  # a subclassed model not yet called
        return None
    if isinstance(outputs, dict):
        return list(outputs)
    return list(model.output_names) if isinstance(outputs, (list, tuple)) else None


def _check_keep_best(
    keep_best: Any,
    checkpoint_dir: Any,
    compiled: dict[str, Any],
    validation: bool,
    output_names: list[str] | None = None,
) -> tuple[str, str] | None:
    if keep_best is None:
        return None
    if checkpoint_dir is None:
        raise ValueError(
            f"keep_best={keep_best!r} needs a place to save the best model. "
            "Received: checkpoint_dir=None. Fix: pass checkpoint_dir='runs/my_run'; "
            "the best model is saved to <checkpoint_dir>/best.keras."
        )
    if isinstance(keep_best, str):
        monitor, mode = keep_best, None
    elif (
        isinstance(keep_best, (tuple, list))
        and len(keep_best) == 2
        and isinstance(keep_best[0], str)
        and keep_best[1] in ("min", "max")
    ):
        monitor, mode = keep_best
    else:
        raise ValueError(
            "Received an invalid value for `keep_best`, expected a metric name or "
            f"(metric name, 'min' | 'max'). Received: keep_best={keep_best!r}. "
            "Fix: e.g. keep_best='val_accuracy' or keep_best=('val_xent', 'min')."
        )
    names = logged_metric_names(compiled, validation, output_names)
    if names is not None and monitor not in names:
        raise ValueError(
            f"keep_best={monitor!r} is not a metric this run logs. Available: "
            f"{sorted(names)}. Fix: pick one of these (val_* metrics need "
            "validation_data)."
        )
    return monitor, mode or monitor_mode(monitor, compiled, output_names)


def _optimizer(
    model: keras.Model, optimizer: Any, learning_rate: Any
) -> keras.optimizers.Optimizer:
    """`make_optimizer` inside the model's `tf.distribute` scope, if it has one."""
    strategy = getattr(model, "_distribute_strategy", None)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        return make_optimizer(optimizer, learning_rate)


def compile_args(model: keras.Model, y: Any = None) -> dict[str, Any]:
    """Loss, metrics and compile options to reuse when recompiling `model`.

    Taken from the model's own `compile()` when it was compiled. Otherwise
    chosen from the output layer, always computed from logits for a model
    that outputs logits (`add_head`'s): several units -> (sparse) categorical
    crossentropy, one unit -> binary crossentropy, with accuracy (for one
    unit, at logit 0). A model that outputs softmax or sigmoid probabilities
    gets the matching loss on probabilities and a warning on jax and torch,
    where Keras clips probabilities at 1e-7 and a saturating head stalls.

    Raises:
        ValueError: When the loss cannot be chosen from the output layer.

    Example:

    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="b")
    >>> args = compile_args(add_head(base, 2))
    >>> args["loss"].get_config()["from_logits"], args["metrics"]
    (True, ['accuracy'])
    """
    config = getattr(model, "_compile_config", None)
    if getattr(model, "compiled", False) and config is not None:
        cfg = dict(config.config)
        if cfg.get("loss") is not None:
            keys = ("loss", "loss_weights", "metrics", "weighted_metrics")
            options = {"run_eagerly": False, "steps_per_execution": 1}
            options["jit_compile"] = "auto"
            return {
                **{k: cfg.get(k) for k in keys},
                **{k: cfg.get(k, v) for k, v in options.items()},
            }
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    units = getattr(last, "units", None)
    one_hot = isinstance(y, np.ndarray) and y.ndim == 2 and y.shape[-1] == units > 1
    if outputs_logits(model) and units == 1:
        return {
            "loss": keras.losses.BinaryCrossentropy(from_logits=True),
            "metrics": [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
        }
    if outputs_logits(model) and units and units > 1:
        loss = (
            keras.losses.CategoricalCrossentropy(from_logits=True)
            if one_hot
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        return {"loss": loss, "metrics": ["accuracy"]}
    if activation == "softmax":
        loss = (
            "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
        )
    elif activation == "sigmoid" and units == 1:
        loss = "binary_crossentropy"
    else:
        raise ValueError(
            f"Cannot choose a loss for model {model.name!r}: its last layer "
            f"{last.name!r} has activation={activation!r}, units={units!r}. "
            "Expected a Dense layer that outputs logits, softmax, or one sigmoid "
            "unit. Fix: compile the model with the loss you want before calling "
            "two_phase_fit; its loss and metrics are reused in both phases."
        )
    if keras.backend.backend() in ("jax", "torch"):
        warnings.warn(
            f"Model {model.name!r} outputs {activation} probabilities. On "
            f"{keras.backend.backend()}, Keras's crossentropy clips them at 1e-7, "
            "so an example whose true class falls below that gets no gradient "
            "and a saturating head stops learning. Fix: end the model with a "
            "Dense layer without activation (add_head does) so the loss is "
            "computed from logits.",
            stacklevel=3,
        )
    return {"loss": loss, "metrics": ["accuracy"]}
