"""Input checks, in one place: every public helper validates its arguments here.

Two kinds of mistakes cost learners the most because nothing fails loudly:
data that trains without complaint but teaches nothing (labels 1..10 for a
10-class head, a folder glob that found one class, grayscale arrays fed to an
RGB backbone, a NaN that turns every weight into NaN), and arguments that are
only read after phase 1 has trained (a misspelled layer name). Each check
here turns one of these into an error that names the argument, what was
expected, what was received and the fix, and the helpers run them before any
weight moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

__all__ = [
    "LABEL_KINDS",
    "check_epochs",
    "check_images",
    "check_labels",
    "check_non_negative_int",
    "check_positive_int",
    "check_positive_number",
    "check_seed",
    "first_batch",
    "is_dataset",
    "is_tf_dataset",
    "label_kind",
    "steps_per_epoch",
    "validate_fit_data",
]

#: Label encodings `check_labels` knows, by the loss that consumes them.
LABEL_KINDS = ("sparse", "one_hot", "binary")


# --- numbers ------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(value: Any, name: str, fix: str = "") -> int:
    """Returns `value` as an int, or raises a `ValueError` naming `name`.

    NumPy integers are accepted (`y.max() + 1` is an `np.int64`).

    Example:

    >>> check_positive_int(np.int64(3), "num_classes")
    3
    """
    if not _is_int(value) or value < 1:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive "
            f"integer. Received: {name}={value!r}."
            + (f" Fix: {fix}" if fix else f" Fix: e.g. {name}=1.")
        )
    return int(value)


def check_non_negative_int(value: Any, name: str, fix: str = "") -> int:
    """Returns `value` as an int >= 0, or raises a `ValueError` naming `name`.

    Example:

    >>> check_non_negative_int(0, "fine_tune_epochs")
    0
    """
    if not _is_int(value) or value < 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a non-negative "
            f"integer. Received: {name}={value!r}."
            + (f" Fix: {fix}" if fix else f" Fix: e.g. {name}=5.")
        )
    return int(value)


def check_positive_number(value: Any, name: str, fix: str = "") -> float:
    """Returns `value` as a float > 0 (finite), or raises a `ValueError`.

    Example:

    >>> check_positive_number(1e-3, "max_lr")
    0.001
    """
    number = isinstance(value, (int, float, np.floating, np.integer))
    if not number or isinstance(value, bool) or not math.isfinite(float(value)):
        number = False
    if not number or float(value) <= 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive number. "
            f"Received: {name}={value!r}." + (f" Fix: {fix}" if fix else "")
        )
    return float(value)


def check_epochs(value: Any, name: str) -> int | str:
    """Returns `"auto"` or a number of epochs >= 0.

    Example:

    >>> check_epochs("auto", "head_epochs"), check_epochs(3, "head_epochs")
    ('auto', 3)
    """
    if value == "auto" and isinstance(value, str):
        return "auto"
    return check_non_negative_int(
        value, name, f"pass a number of epochs, e.g. {name}=5, or {name}='auto'."
    )


def check_seed(seed: Any) -> int | None:
    """Returns the seed as an int, or None; refuses anything else.

    Example:

    >>> check_seed(None), check_seed(np.int32(7))
    (None, 7)
    """
    if seed is None:
        return None
    return check_non_negative_int(seed, "seed", "e.g. seed=0, or seed=None.")


# --- what kind of input -------------------------------------------------------


def is_tf_dataset(x: Any) -> bool:
    """True for a `tf.data.Dataset` (checked without importing TensorFlow)."""
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "take")


def is_dataset(x: Any) -> bool:
    """True for a `keras.utils.PyDataset` or a `tf.data.Dataset`."""
    return isinstance(x, keras.utils.PyDataset) or is_tf_dataset(x)


def label_kind(loss: Any) -> str | None:
    """The label encoding a classification loss expects; None for other losses.

    Example:

    >>> label_kind(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    'sparse'
    """
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    name = str(name or getattr(loss, "__name__", "") or type(loss).__name__).lower()
    if "sparse_categorical" in name or "sparsecategorical" in name:
        return "sparse"
    if "binary" in name:
        return "binary"
    if "categorical" in name:
        return "one_hot"
    return None


def steps_per_epoch(x: Any, fit_kwargs: dict[str, Any]) -> int | None:
    """Optimisation steps in one epoch of `model.fit(x, **fit_kwargs)`.

    None when the data does not say (a generator, a `tf.data.Dataset` of
    unknown cardinality).

    Example:

    >>> steps_per_epoch(np.zeros((50, 2)), {"batch_size": 32})
    2
    """
    if fit_kwargs.get("steps_per_epoch"):
        return int(fit_kwargs["steps_per_epoch"])
    if isinstance(x, np.ndarray) or (hasattr(x, "shape") and hasattr(x, "__len__")):
        n = math.floor(len(x) * (1.0 - float(fit_kwargs.get("validation_split") or 0)))
        return max(1, math.ceil(n / int(fit_kwargs.get("batch_size") or 32)))
    if isinstance(x, keras.utils.PyDataset):
        n = x.num_batches
        return None if n is None else int(n)
    if is_tf_dataset(x):
        n = int(x.cardinality())
        return n if n > 0 else None
    return None


# --- images and labels --------------------------------------------------------


def _shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def check_images(
    x: np.ndarray, input_shape: Sequence[int | None], *, name: str = "x"
) -> None:
    """Checks an input array against a model's input shape before training.

    For images (channels last) it recognises the usual slips and says how to
    fix each: a missing channel axis, channels-first arrays, grayscale data
    for an RGB model, RGBA data, the wrong image size. Any other array input
    (tabular features) gets the same shape, emptiness and NaN checks.

    Args:
        x: The inputs, examples along the first axis.
        input_shape: One example's expected shape without the batch axis, as
            in `model.input_shape[1:]`; None matches any size.
        name: The argument name used in error messages. Defaults to `"x"`.

    Raises:
        ValueError: For an empty array, a non-numeric dtype, a shape that does
            not match `input_shape`, or NaN/Inf values.

    Example:

    >>> check_images(np.zeros((4, 8, 8, 3), "float32"), (8, 8, 3))
    >>> check_images(np.zeros((4, 8, 8), "float32"), (8, 8, 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `x` has no channel axis: ... Fix: add one with x[..., None].
    """
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"`{name}` is empty (0 examples). Fix: check the data loading step "
            "(a wrong folder or a filter that removed everything); training "
            "needs at least one batch."
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(
            f"`{name}` must hold numbers. Received: {name}.dtype={x.dtype}. Fix: "
            "load images as arrays of pixels (e.g. keras.utils.load_img + "
            "img_to_array), not file names or objects."
        )
    got, want = tuple(x.shape[1:]), tuple(input_shape)
    if len(got) != len(want):
        if len(got) + 1 == len(want) and want[-1] == 1:
            raise ValueError(
                f"`{name}` has no channel axis: each example has shape "
                f"{_shape(got)} but the model expects {_shape(want)}. Fix: add "
                f"one with {name}[..., None]."
            )
        raise ValueError(
            f"`{name}` has examples of shape {_shape(got)} but the model expects "
            f"{_shape(want)} (rank {len(want)}). Fix: reshape the data, or build "
            "the model for this input shape."
        )
    if len(want) == 3 and want[-1] is not None and got[-1] != want[-1]:
        raise ValueError(
            f"`{name}` has {got[-1]} channel(s) per image but the model expects "
            f"{want[-1]}: example shape {_shape(got)}, expected {_shape(want)}. "
            f"Fix: {_channel_fix(got, want[-1], name)}"
        )
    for axis, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is not None and g != w:
            raise ValueError(
                f"`{name}` has examples of shape {_shape(got)} but the model "
                f"expects {_shape(want)} (axis {axis + 1} differs). Fix: resize "
                "the images (e.g. keras.layers.Resizing in add_head's "
                "preprocessing) or build the model with add_head(..., "
                "input_shape=...) on a base that accepts this size."
            )
    if np.issubdtype(x.dtype, np.floating):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(
                f"`{name}` contains NaN or Inf values ({bad} entries). Fix: clean "
                "or impute them before training; a single NaN turns every "
                "weight into NaN."
            )


def _channel_fix(got: tuple, expected: int, name: str) -> str:
    channels = got[-1]
    if got[0] == expected and channels not in (1, 3, 4):
        return (
            "the array looks channels-first; move the channel axis last with "
            f"np.moveaxis({name}, 1, -1)."
        )
    if channels == 1 and expected == 3:
        return (
            "build the model with add_head(base, ..., input_shape=(h, w, 1)), "
            "which repeats the gray channel into RGB inside the model (a "
            f"RepeatChannels layer), or convert: np.repeat({name}, 3, axis=-1)."
        )
    if channels == 4 and expected == 3:
        return f"drop the alpha channel: {name}[..., :3]."
    if channels == 3 and expected == 1:
        return (
            f"convert to grayscale, e.g. {name}.mean(axis=-1, keepdims=True), or "
            "use an RGB model."
        )
    return "convert the images, or build the model for this many channels."


def check_labels(
    y: np.ndarray,
    num_outputs: int,
    kind: str = "sparse",
    *,
    min_classes: int = 2,
    name: str = "y",
) -> None:
    """Checks classification labels against the model's output layer.

    Labels that do not fit the head do not always fail: with sparse labels
    1..10 for 10 classes, JAX computes a wrong loss for label 10 and trains
    on silently, while TensorFlow and PyTorch stop with a low-level error that
    does not mention the labels. A single class trains to 100% accuracy and
    learns nothing. This refuses both, with the fix.

    Args:
        y: The labels, one per example.
        num_outputs: Units of the output layer (`model.output_shape[-1]`).
        kind: How labels are encoded, named after the loss: `"sparse"`
            (integer class ids for sparse categorical crossentropy),
            `"one_hot"` (rows of length `num_outputs`) or `"binary"` (0/1 for a
            single output unit). Defaults to `"sparse"`.
        min_classes: Fewest distinct classes accepted. Defaults to 2; use 1
            for a validation set or a single batch.
        name: The argument name used in error messages. Defaults to `"y"`.

    Raises:
        ValueError: For non-numeric or NaN labels, labels outside
            [0, num_outputs), non-integer sparse labels, one-hot rows of the
            wrong width, and fewer than `min_classes` classes.

    Example:

    >>> check_labels(np.array([0, 1, 2, 1]), 3)
    >>> check_labels(np.array([1, 2, 3]), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Labels must be integers in [0, 2] ... Fix: relabel to 0..k-1 ...
    """
    if kind not in LABEL_KINDS:
        raise ValueError(
            f"Received an invalid value for `kind`, expected one of {LABEL_KINDS}. "
            f"Received: kind={kind!r}."
        )
    y = np.asarray(y)
    if y.ndim == 0 or len(y) == 0:
        raise ValueError(
            f"`{name}` is empty (0 labels). Fix: pass one label per example."
        )
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        sample = list(np.unique(y.ravel()[:1000])[:3])
        raise ValueError(
            f"Labels must be numbers. Received: {name}.dtype={y.dtype}, values "
            f"such as {sample}. Fix: map class names to 0..k-1, e.g. "
            f"names, {name} = np.unique({name}, return_inverse=True)."
        )
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise ValueError(
            f"`{name}` contains NaN or Inf labels. Fix: drop or relabel those examples."
        )
    if kind == "one_hot":
        classes = _one_hot_classes(y, num_outputs, name)
    else:
        classes = _integer_classes(y, num_outputs, kind, name)
    if len(classes) < min_classes:
        raise ValueError(
            f"`{name}` holds only {len(classes)} class(es) (label "
            f"{classes.tolist()}) but training a classifier needs at least "
            f"{min_classes}. A model fed one class learns to always answer it. "
            "Fix: check the data loading step (one folder found, a filter that "
            "kept one class, labels all set to the same value)."
        )


def _one_hot_classes(y: np.ndarray, num_outputs: int, name: str) -> np.ndarray:
    if y.ndim != 2 or y.shape[-1] != num_outputs:
        raise ValueError(
            f"One-hot labels must have shape (n, {num_outputs}) for a model "
            f"with {num_outputs} outputs. Received: {name}.shape={y.shape}. "
            "Fix: encode with keras.utils.to_categorical(y, num_classes), or "
            "pass integer labels with a sparse loss."
        )
    if y.min() < 0 or y.max() > 1:
        raise ValueError(
            f"One-hot labels must lie in [0, 1]. Received values in "
            f"[{y.min()}, {y.max()}]. Fix: encode with keras.utils.to_categorical."
        )
    return np.unique(y.argmax(axis=-1))


def _integer_classes(
    y: np.ndarray, num_outputs: int, kind: str, name: str
) -> np.ndarray:
    if y.ndim == 2 and y.shape[-1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and kind == "sparse":
        raise ValueError(
            f"`{name}` looks one-hot with {y.shape[-1]} columns, but the model "
            f"has {num_outputs} outputs: one-hot labels must have shape "
            f"(n, {num_outputs}). Received: {name}.shape={y.shape}. Fix: "
            f"encode with keras.utils.to_categorical(labels, {num_outputs}), "
            "or build the head with the right num_classes."
        )
    if y.ndim != 1:
        raise ValueError(
            f"`{name}` must hold one label per example, shape (n,). Received: "
            f"{name}.shape={y.shape}. Fix: for one-hot labels use a "
            "categorical loss; otherwise flatten the labels."
        )
    lo, hi = y.min(), y.max()
    if kind == "binary":
        if lo < 0 or hi > 1:
            raise ValueError(
                "A model with one output unit expects labels 0 or 1. "
                f"Received labels in [{lo}, {hi}]. Fix: relabel to 0/1, or "
                f"build the head with num_classes={int(hi) + 1} for "
                "multi-class labels."
            )
        return np.unique(y > 0.5)
    integral = np.array_equal(y, np.round(y))
    if lo < 0 or hi >= num_outputs or not integral:
        raise ValueError(
            f"Labels must be integers in [0, {num_outputs - 1}] for a model with "
            f"{num_outputs} outputs. Received labels in [{lo}, {hi}]"
            + ("" if integral else ", not all integers")
            + ". Fix: relabel to 0..k-1 (e.g. y - 1 for labels 1..k), or build "
            "the head with the right num_classes."
        )
    return np.unique(y)


# --- the data of a fit ----------------------------------------------------------


def first_batch(x: Any, input_rank: int | None) -> tuple[Any, Any]:
    """The first `(x, y)` batch of a PyDataset or tf.data.Dataset, as arrays.

    Returns `(None, None)` for multi-input batches (Keras checks their
    structure itself).

    Raises:
        ValueError: For an empty dataset, or one that yields single examples
            instead of batches.
    """
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
    if isinstance(xb, (dict, list, tuple)):
        return None, None
    xb = np.asarray(xb)
    if input_rank is not None and xb.ndim == input_rank:
        raise ValueError(
            f"`x` yields single examples of shape {xb.shape}, not batches. Fix: "
            "batch the dataset, e.g. ds.batch(32)."
        )
    return xb, None if yb is None else np.asarray(yb)


def validate_fit_data(
    model: keras.Model, x: Any, y: Any, validation_data: Any, loss: Any
) -> None:
    """Refuses inputs that would train silently on wrong data.

    Arrays are checked whole (`check_images`, `check_labels`, matching
    lengths); a `PyDataset` or `tf.data.Dataset` is checked on its first
    batch. Run by every training helper before any weight moves.

    Raises:
        ValueError: See `check_images` and `check_labels`; also for `x` and
            `y` of different lengths.
    """
    single = not isinstance(model.input_shape, list)
    input_shape = tuple(model.input_shape[1:]) if single else None
    units = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    kind = label_kind(loss) if units else None
    min_classes = 2
    if is_dataset(x):
        x, y = first_batch(x, None if input_shape is None else len(input_shape))
        min_classes = 1  # one batch may hold one class
    elif hasattr(x, "__array__") and not isinstance(x, (list, dict)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        return
    _check_pair(x, y, input_shape, units, kind, min_classes, ("x", "y"))
    if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
        xv, yv = validation_data[0], validation_data[1]
        if hasattr(xv, "__array__") and not isinstance(xv, (list, dict)):
            names = ("validation_data[0]", "validation_data[1]")
            _check_pair(np.asarray(xv), yv, input_shape, units, kind, 1, names)


def _check_pair(x, y, input_shape, units, kind, min_classes, names) -> None:
    x_name, y_name = names
    if input_shape is not None:
        check_images(x, input_shape, name=x_name)
    elif len(x) == 0:
        raise ValueError(f"`{x_name}` is empty (0 examples). Fix: check loading.")
    if y is None:
        return
    if units is None and isinstance(y, (list, tuple, dict)):  # several outputs
        labels = y.values() if isinstance(y, dict) else y
        for leaf in labels:
            _check_pair(x, leaf, None, None, None, min_classes, names)
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
