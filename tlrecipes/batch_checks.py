"""Checks of every batch a fit will see, run before the first training step.

`validate_fit_data` checks arrays whole but a `PyDataset` or `tf.data.Dataset`
only on its first batch, so a label out of range in the last batch trains
silently on JAX (and fails on TensorFlow and PyTorch only after weights
moved), and a NaN in a later batch is never seen. `check_fit_inputs` reads
every batch of the training and validation data once, without the model
(`check_data="full"`), and refuses what would fail or train on garbage later:
labels outside the classes, missing labels, NaN/Inf, a Python generator that
the second phase would find empty, sample weights of the wrong length, a
regression loss fed class ids. It warns when images in [0, 255] reach a model
that does not scale its inputs.

Cost: one pass over the data without the model. For arrays that is a few
vectorised NumPy reductions; for a dataset it is one epoch of loading and
decoding. `check_data="first_batch"` checks only the first batch, for data
too large to stream twice.
"""

from __future__ import annotations

import collections.abc
import inspect
import warnings
from typing import Any

import keras
import numpy as np

from tlrecipes.freezing import flat_layers
from tlrecipes.image_preprocessing import ImagePreprocessing
from tlrecipes.validation import (
    check_images,
    check_labels,
    is_dataset,
    label_kind,
)

__all__ = ["CHECK_DATA", "InputScaleWarning", "check_fit_inputs"]

#: Values of `check_data`: every batch, or the first one only.
CHECK_DATA = ("full", "first_batch")

#: Largest float input value taken for images already scaled to about [0, 1];
#: non-negative float images above it look like pixels in [0, 255].
SCALED_MAX = 1.5

#: Keras losses that compare labels and outputs element by element.
_ELEMENTWISE_LOSSES = {
    "mse", "mean_squared_error", "meansquarederror", "mae",
    "mean_absolute_error", "meanabsoluteerror", "mape",
    "mean_absolute_percentage_error", "meanabsolutepercentageerror", "msle",
    "mean_squared_logarithmic_error", "meansquaredlogarithmicerror", "huber",
    "huber_loss", "log_cosh", "logcosh", "poisson", "kld", "kl_divergence",
    "kldivergence", "hinge", "squared_hinge", "squaredhinge",
    "cosine_similarity", "cosinesimilarity",
}  # fmt: skip
_SCALING_LAYERS = (
    keras.layers.Rescaling,
    keras.layers.Normalization,
    ImagePreprocessing,
)


class InputScaleWarning(UserWarning):
    """Float images in [0, 255] reach a model that does not scale its inputs."""


def check_fit_inputs(
    model: keras.Model,
    x: Any,
    y: Any,
    validation_data: Any,
    loss: Any,
    fit_kwargs: dict[str, Any],
    *,
    both_phases: bool,
    check_data: str = "full",
) -> None:
    """Refuses data that would fail, or train on garbage, after weights moved.

    Run by `two_phase_fit` after `validate_fit_data`, which checks arrays
    whole (here: labels given, `sample_weight`, the loss's shape). Every
    batch of a `PyDataset` (each index) and of a `tf.data.Dataset` (one
    pass) is read once and checked: labels present, of the kind the loss
    expects and inside the classes, inputs and labels finite, image shapes.
    With `steps_per_epoch` (or `validation_steps`) only
    that many batches are read; an endless dataset without it is checked on
    its first batch.

    Args:
        model: The model to train.
        x: Training inputs (arrays, `PyDataset`, `tf.data.Dataset`).
        y: Labels when `x` is an array, else None.
        validation_data: As passed to `model.fit`.
        loss: The loss the model is compiled with.
        fit_kwargs: The other `model.fit` arguments.
        both_phases: Whether the data is read by two fits (head, then
            fine-tuning): a generator then is refused.
        check_data: `"full"` (every batch, one pass over the data without the
            model) or `"first_batch"`. Defaults to `"full"`.

    Raises:
        ValueError: For a generator read by both phases, `validation_data`
            that is not `(x, y)`, batches without labels, labels outside the
            classes, NaN/Inf, `sample_weight` of another length than `x`, or
            labels whose shape the compiled loss cannot compare with the
            model's output; the error names the batch and the value.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> x, y = np.zeros((4, 2), "float32"), np.array([0, 1, 2, 0])
    >>> check_fit_inputs(model, x, y, None, "sparse_categorical_crossentropy",
    ...     {"sample_weight": np.ones(3)}, both_phases=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... expected one weight per example of `x`: length 4 (len(x)). ...
    """
    if check_data not in CHECK_DATA:
        raise ValueError(
            "Received an invalid value for `check_data`, expected one of "
            f"{list(CHECK_DATA)}. Received: check_data={check_data!r}. Fix: "
            "'full' checks every batch before training (one pass over the data); "
            "'first_batch' only the first, for data too large to read twice."
        )
    for name, value in (("x", x), ("validation_data", validation_data)):
        if both_phases and _is_generator(value):
            raise ValueError(_generator_message(name, value))
    _check_validation_form(validation_data)
    if not is_dataset(x) and hasattr(x, "__array__") and not isinstance(x, list):
        x = np.asarray(x)  # a tensor of another library, as validate_fit_data
    spec = _Spec(model, loss)
    limit = 1 if check_data == "first_batch" else None
    if is_dataset(x):
        image_max = _scan(x, "x", spec, limit or fit_kwargs.get("steps_per_epoch"))
    elif isinstance(x, np.ndarray):
        if y is None:
            raise ValueError(
                "Received y=None with array inputs: two_phase_fit trains on "
                "(x, y) pairs. Fix: pass the labels, two_phase_fit(model, x, y, "
                "...), or a dataset that yields (inputs, labels)."
            )
        _check_sample_weight(fit_kwargs.get("sample_weight"), len(x))
        _check_loss_shape(spec, "`y`", y)  # the rest: validate_fit_data
        image_max = _image_max(x) if spec.image_rank(x) else None
    else:
        return  # a generator read once, or multi-input data: Keras checks it
    if is_dataset(validation_data):
        steps = limit or fit_kwargs.get("validation_steps")
        _scan(validation_data, "validation_data", spec, steps)
    elif isinstance(validation_data, (tuple, list)):
        xv, yv = validation_data[0], validation_data[1]
        if isinstance(xv, np.ndarray):
            _check_loss_shape(spec, "`validation_data[1]`", yv)
    if image_max is not None and image_max > SCALED_MAX and not _scales(model):
        warnings.warn(
            f"`x` holds float images with values up to {image_max:g}, but model "
            f"{model.name!r} has no input-scaling layer (Rescaling, "
            "Normalization or ImagePreprocessing): a network trained on images "
            "in [0, 1] sees inputs 255 times too large and trains badly. Fix: "
            "divide the images by 255, or add keras.layers.Rescaling(1 / 255) "
            "inside the model before the base.",
            InputScaleWarning,
            stacklevel=4,
        )


class _Spec:
    """What one batch must look like for this model and loss."""

    def __init__(self, model: keras.Model, loss: Any) -> None:
        single_in = not isinstance(model.input_shape, list)
        self.input_shape = tuple(model.input_shape[1:]) if single_in else None
        out = model.output_shape
        self.output_shape = tuple(out[1:]) if isinstance(out, tuple) else None
        self.units = self.output_shape[-1] if self.output_shape else None
        self.kind = label_kind(loss) if self.units else None
        self.loss_name = _loss_name(loss)

    def image_rank(self, x: np.ndarray) -> bool:
        return self.input_shape is not None and len(self.input_shape) == 3 == (
            x.ndim - 1
        )


def _check_batch(spec: _Spec, where: str, xb: Any, yb: Any) -> None:
    """Checks one batch (or whole arrays); `where` names it in errors."""
    if spec.input_shape is not None and isinstance(xb, np.ndarray):
        _with_place(where, check_images, xb, spec.input_shape, name="x")
    else:
        for leaf in keras.tree.flatten(xb):
            _check_finite(np.asarray(leaf), where, "inputs")
    if yb is None or spec.units is None or isinstance(yb, (dict, list, tuple)):
        return
    yb = np.asarray(yb)
    if np.issubdtype(yb.dtype, np.floating):
        _check_finite(yb, where, "labels")
    if spec.kind is not None:
        bad = _bad_label(yb, spec.units, spec.kind)
        place = where if bad is None else f"{where} holds label {bad!r}"
        _with_place(place, check_labels, yb, spec.units, spec.kind,
                    min_classes=1, name="y")  # fmt: skip
    _check_loss_shape(spec, where, yb)


def _with_place(where: str, check: Any, *args: Any, **kwargs: Any) -> None:
    try:
        check(*args, **kwargs)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _check_finite(a: np.ndarray, where: str, what: str) -> None:
    if not np.issubdtype(a.dtype, np.floating):
        return
    finite = np.isfinite(a)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{where}: the {what} contain NaN or Inf values "
            f"({a.size - int(finite.sum())} entries; first: {a[index]!r} at "
            f"index {index}). Fix: clean or impute them before training; a "
            "single NaN turns every weight into NaN."
        )


def _bad_label(y: np.ndarray, units: int, kind: str) -> Any:
    """The first label outside what `kind` allows, or None."""
    if not np.issubdtype(y.dtype, np.number) or kind == "one_hot":
        return None
    flat = y.reshape(-1)
    top = 1 if kind == "binary" else units - 1
    bad = (flat < 0) | (flat > top)
    if kind == "sparse":
        bad |= flat != np.round(flat)
    return flat[bad][0].item() if bad.any() else None


def _check_loss_shape(spec: _Spec, where: str, y: Any) -> None:
    if spec.loss_name not in _ELEMENTWISE_LOSSES or spec.output_shape is None:
        return
    if y is None or isinstance(y, (dict, list, tuple)):
        return
    want, got = spec.output_shape, tuple(np.shape(y)[1:])
    if got == want or (got in ((), (1,)) and want in ((), (1,))):
        return
    got, want = _shape((None, *got)), _shape((None, *want))
    raise ValueError(
        f"{where}: the model is compiled with loss={spec.loss_name!r}, which "
        "compares labels and outputs value by value, but the labels have shape "
        f"{got} and the model outputs {want}. Fix: for "
        "class ids, compile with keras.losses.SparseCategoricalCrossentropy("
        "from_logits=True) (or do not compile: two_phase_fit then picks the "
        "crossentropy); to keep this loss, give labels the output's shape "
        "(e.g. keras.utils.to_categorical(y, num_classes))."
    )


def _check_sample_weight(sample_weight: Any, n: int) -> None:
    if sample_weight is None:
        return
    sw = np.asarray(sample_weight)
    if sw.ndim == 0 or len(sw) != n:
        got = "a scalar" if sw.ndim == 0 else f"len(sample_weight)={len(sw)}"
        raise ValueError(
            "Received an invalid value for `sample_weight`, expected one weight "
            f"per example of `x`: length {n} (len(x)). Received: {got}. Fix: "
            "pass an array of len(x) weights, e.g. np.ones(len(x))."
        )
    _check_finite(sw.astype("float64", copy=False), "`sample_weight`", "weights")


def _scan(data: Any, name: str, spec: _Spec, limit: int | None) -> float | None:
    """Checks the batches of a dataset; the largest float image value seen.

    None when there are no float images, or some value is negative
    (standardised images, not pixels in [0, 255]).
    """
    seen = None
    for i, batch in _batches(data, limit):
        where = f"Batch {i} of `{name}` ({_describe(data, i)})"
        parts = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        if len(parts) < 2 or parts[1] is None:
            raise ValueError(
                f"{where} holds inputs without labels: `{name}` must yield "
                "(inputs, labels) pairs. Received: a batch of "
                f"{len(parts)} element(s). Fix: pair the inputs with labels, "
                "e.g. tf.data.Dataset.zip((images, labels)) or "
                "ds.map(lambda x: (x, label_of(x)))."
            )
        xb = _arrays(parts[0])
        _check_batch(spec, where, xb, _arrays(parts[1]))
        if isinstance(xb, np.ndarray) and spec.image_rank(xb):
            low, top = _float_range(xb)
            seen = (
                (low, top) if seen is None else (min(seen[0], low), max(seen[1], top))
            )
    return None if seen is None or seen[0] < 0 else seen[1]


def _batches(data: Any, limit: int | None) -> collections.abc.Iterator:
    if isinstance(data, keras.utils.PyDataset):
        n, count = data.num_batches, limit or 1
        if n is not None:
            count = min(n, limit) if limit else n
        return ((i, data[i]) for i in range(count))
    cardinality = int(data.cardinality())
    if cardinality == -1 and not limit:  # tf.data.INFINITE_CARDINALITY
        limit = 1
    return enumerate(data.take(limit) if limit else data)


def _describe(data: Any, i: int) -> str:
    if isinstance(data, keras.utils.PyDataset):
        return f"{type(data).__name__}[{i}]"
    return "tf.data.Dataset, counted from 0 in one pass"


def _arrays(value: Any) -> Any:
    if value is None:
        return None
    return keras.tree.map_structure(_numpy, value)


def _numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _shape(shape: tuple) -> str:
    text = ", ".join("n" if d is None else str(d) for d in shape)
    return f"({text},)" if len(shape) == 1 else f"({text})"


def _float_range(x: np.ndarray) -> tuple[float, float]:
    if not np.issubdtype(x.dtype, np.floating) or x.size == 0:
        return 0.0, 0.0
    return float(np.min(x)), float(np.max(x))


def _image_max(x: np.ndarray) -> float | None:
    low, top = _float_range(x)
    return None if low < 0 else top


def _scales(model: keras.Model) -> bool:
    """Whether the model scales its own inputs."""
    return any(isinstance(layer, _SCALING_LAYERS) for layer in flat_layers(model))


def _loss_name(loss: Any) -> str:
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    name = name or getattr(loss, "__name__", None) or type(loss).__name__
    return str(name).lower()


def _is_generator(value: Any) -> bool:
    if value is None or is_dataset(value) or isinstance(value, np.ndarray):
        return False
    return inspect.isgenerator(value) or isinstance(value, collections.abc.Iterator)


def _generator_message(name: str, value: Any) -> str:
    return (
        f"`{name}` is a Python {type(value).__name__}, which can be read only "
        "once: phase 1 (the head) would consume it and phase 2 (fine-tuning) "
        "would find it empty. Fix: wrap the data in a keras.utils.PyDataset "
        "(batches by index) or tf.data.Dataset.from_generator(make_batches, "
        "output_signature=...) (the generator function is called again for "
        "each epoch); or run one phase (head_epochs=0 or fine_tune_epochs=0)."
    )


def _check_validation_form(validation_data: Any) -> None:
    if validation_data is None or is_dataset(validation_data):
        return
    pair = isinstance(validation_data, (tuple, list))
    if pair and len(validation_data) in (2, 3) and validation_data[1] is not None:
        return
    if pair:
        got = f"a {type(validation_data).__name__} of {len(validation_data)} "
        got += "element(s)" + (", labels None" if len(validation_data) > 1 else "")
    else:
        got = f"a {type(validation_data).__name__}"
    raise ValueError(
        "Received an invalid value for `validation_data`, expected (x_val, "
        "y_val) pairs: a tuple (x_val, y_val), or a PyDataset / tf.data.Dataset "
        f"yielding (inputs, labels). Received: {got}. Fix: pass "
        "validation_data=(x_val, y_val) with the labels of the validation "
        "examples."
    )
