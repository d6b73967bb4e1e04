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

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tlrecipes.freezing import flat_layers, freeze_until
from tlrecipes.heads import HEAD_PREFIX, base_bn_training

__all__ = ["two_phase_fit", "TwoPhaseHistory", "make_optimizer", "compile_args"]

#: Default head learning rate (Adam's own default; the Keras guide's phase 1).
HEAD_LR = 1e-3
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
        phase_histories: The two `keras.callbacks.History` objects.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.fine_tune_start_epoch = 0
        self.phase_lrs: dict[str, Any] = {}
        self.phase_epochs: dict[str, int] = {"head": 0, "fine_tune": 0}
        self.phase_histories: dict[str, keras.callbacks.History] = {}

    def _extend(self, phase: str, hist: keras.callbacks.History) -> None:
        self.phase_histories[phase] = hist
        ran = len(hist.epoch)
        self.phase_epochs[phase] = ran
        for key, values in hist.history.items():
            self.history.setdefault(key, [math.nan] * len(self.epoch))
            self.history[key].extend(float(v) for v in values)
        self.epoch.extend(hist.epoch)
        for values in self.history.values():  # keys missing in this phase
            values.extend([math.nan] * (len(self.epoch) - len(values)))

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
        loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
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


def _validate_arrays(model: keras.Model, x: Any, y: Any) -> None:
    """Refuses array inputs that would train silently on wrong data."""
    if not isinstance(x, np.ndarray):
        return
    if len(x) == 0:
        raise ValueError(
            "`x` is empty (0 examples). Fix: check the data loading step; "
            "two_phase_fit needs at least one batch."
        )
    if y is not None:
        y_arr = np.asarray(y)
        if len(y_arr) != len(x):
            raise ValueError(
                f"`x` and `y` have different lengths: len(x)={len(x)}, "
                f"len(y)={len(y_arr)}. Fix: pass one label per example."
            )
        units = model.output_shape[-1] if model.output_shape else None
        if y_arr.ndim == 1 or (y_arr.ndim == 2 and y_arr.shape[-1] == 1):
            if units and units > 1 and np.issubdtype(y_arr.dtype, np.number):
                lo, hi = y_arr.min(), y_arr.max()
                if lo < 0 or hi >= units:
                    raise ValueError(
                        f"Labels must be integers in [0, {units - 1}] for a model "
                        f"with {units} outputs. Received labels in [{lo}, {hi}]. "
                        "Fix: relabel to 0..k-1 (e.g. y - 1 for labels 1..k), or "
                        "build the head with the right num_classes."
                    )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ValueError(
            "`x` contains NaN or Inf values "
            f"({int((~np.isfinite(x)).sum())} entries). Fix: clean or impute them "
            "before training; a single NaN turns every weight into NaN."
        )


def _positive_epochs(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a non-negative "
            f"integer. Received: {name}={value!r}. Fix: e.g. {name}=5."
        )
    return int(value)


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

    Two defaults differ from the Keras guide because the guide's are tuned for
    ImageNet-scale data and fail at small scale (measured; see README):

    - **Phase 1 is budgeted in optimisation steps.** With 50 images and batch
      size 32 an epoch is 2 steps, so 10 "epochs" leave the head untrained.
      Phase 1 runs at least `min_head_steps` steps (200): `head_epochs` is
      raised when its epochs are too short, and `phase_epochs` records what ran.
    - **`fine_tune_lr` is 1e-4**, not 1e-5: at 1e-5 a few epochs barely move a
      small network. Lower it for large pretrained backbones.

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
        head_lr: Learning rate (float or schedule) of phase 1. Defaults to 1e-3.
        fine_tune_lr: Learning rate (float or schedule) of phase 2. Defaults
            to 1e-4.
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
        **fit_kwargs: Passed to `model.fit` by name in both phases
            (`batch_size`, `verbose`, `class_weight`, `shuffle`,
            `validation_split`, ...).

    Returns:
        A `TwoPhaseHistory` with the merged `history`, `fine_tune_start_epoch`,
        `phase_lrs` and `phase_epochs`.

    Raises:
        ValueError: For negative epochs, both phases empty, a head that cannot
            be found, a loss that cannot be inferred, labels outside
            [0, num_classes), mismatched x/y lengths, empty data, or NaN/Inf in
            `x`.

    Example:

    >>> import keras, numpy as np
    >>> base = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(4, 3, activation="relu")], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> x = np.random.rand(32, 8, 8, 1).astype("float32")
    >>> y = np.arange(32) % 3
    >>> hist = two_phase_fit(model, x, y, head_epochs=1, fine_tune_epochs=1,
    ...                      min_head_steps=0, verbose=0)
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
    _validate_arrays(model, x, y)
    compiled = compile_args(model, y)
    start = _find_head_start(model, head_start)
    if train_bn is None:
        train_bn = base_bn_training(model)
    callbacks = list(callbacks or [])

    result = TwoPhaseHistory()
    result.set_model(model)
    result.phase_lrs = {"head": head_lr, "fine_tune": fine_tune_lr}

    if head_epochs:
        steps = _steps_per_epoch(x, fit_kwargs)
        if steps and min_head_steps:
            head_epochs = max(head_epochs, math.ceil(min_head_steps / steps))
        freeze_until(model, start, train_bn=train_bn)
        model.compile(optimizer=make_optimizer(optimizer, head_lr), **compiled)
        hist = model.fit(
            x,
            y,
            validation_data=validation_data,
            epochs=head_epochs,
            callbacks=callbacks,
            **fit_kwargs,
        )
        result._extend("head", hist)
    result.fine_tune_start_epoch = len(result.epoch)

    if fine_tune_epochs:
        freeze_until(model, 0 if unfreeze_from is None else unfreeze_from, train_bn)
        model.compile(optimizer=make_optimizer(optimizer, fine_tune_lr), **compiled)
        done = result.fine_tune_start_epoch
        hist = model.fit(
            x,
            y,
            validation_data=validation_data,
            initial_epoch=done,
            epochs=done + fine_tune_epochs,
            callbacks=callbacks,
            **fit_kwargs,
        )
        result._extend("fine_tune", hist)
    result.params = {"phase_epochs": dict(result.phase_epochs)}
    return result
