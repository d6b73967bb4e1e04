"""Feature caching: run a frozen base once, then train the head on its outputs.

When the base is frozen and nothing before the head is random, every epoch of
phase 1 pushes the same images through the same function: the base's features
never change. The Keras guide points this out ("run the base once on your
data, store the output, and use it as input for a standalone model"); this
module does it without changing what the user gets back:

    split = split_at_head(model)                 # the two halves, shared layers
    features = extract_features(split.features, x)   # one inference pass
    split.head.fit(features, y, ...)             # trains model's own head layers

`split.head` is built from `model`'s own head layers, so training it trains
`model`: there is nothing to copy back. `two_phase_fit(cache_features="auto")`
uses this in phase 1 (`tlrecipes.cached_head`) only when the cached features
are exactly what the model computes during phase 1 (see `cache_problem`):
preprocessing layers inside the model are part of the feature extractor and
are cached with it; preprocessing outside the model's layers (a KerasHub
task's `preprocessor`, a custom `train_step`) turns caching off, with the
reason in `history.feature_cache_note`.

Features are computed in inference mode, exactly as the frozen base runs
inside the model during phase 1: BatchNormalization uses its moving
statistics, dropout inside the base is off. Weight-free, deterministic layers
at the start of the head (global pooling, flatten) are folded into the
feature extractor, so a ResNet50 caches 2,048 numbers per image, not a 7x7x2048
map. Large sets go to disk through `np.memmap` (`path=`, `cache_dir=`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tlrecipes.freezing import flat_layers, is_batchnorm
from tlrecipes.heads import head_layers
from tlrecipes.validation import is_dataset

__all__ = [
    "FeatureSplit",
    "split_at_head",
    "extract_features",
    "cache_problem",
    "dataset_batches",
    "feature_bytes",
    "random_state",
]

#: Arrays of at most this many inference batches go through the feature model
#: by direct calls instead of `predict`, which traces a predict function first.
EAGER_EXTRACT_BATCHES = 8

#: Largest difference between the model's outputs and its head's outputs on
#: the cached features (relative to the outputs' scale) that still counts as
#: equal: float32 rounding of the same computation in another order.
OUTPUT_TOLERANCE = 1e-4


@dataclass
class FeatureSplit:
    """A model cut where its trainable head begins, both halves sharing layers.

    Attributes:
        features: Model from the original inputs to the cached tensor (the
            frozen base and any weight-free layers that follow it).
        head: Model from that tensor to the original outputs. Its layers are
            the original model's layers: training it trains the model.
        boundary: Name of the first layer of `head` (the layer whose input is
            cached).
    """

    features: keras.Model
    head: keras.Model
    boundary: str


def random_state(layer: keras.layers.Layer) -> bool:
    """True for a layer that draws random numbers (holds a SeedGenerator)."""
    seed_type = keras.random.SeedGenerator
    return any(isinstance(v, seed_type) for v in vars(layer).values())


def _top_level_index(model: keras.Model, head_start: int | str | None) -> int:
    """Index into `model.layers` of the first head layer."""
    layers = model.layers
    if head_start is None:
        head = head_layers(model)
        if not head:
            raise ValueError(
                f"Cannot find the head of model {model.name!r}: its last top-level "
                "layers are not named head_*. Fix: build it with "
                "tlrecipes.add_head, or pass head_start=<first head layer>."
            )
        return layers.index(head[0])
    if isinstance(head_start, str):
        for i, layer in enumerate(layers):
            if layer.name == head_start:
                return i
        target = head_start
    else:
        flat = flat_layers(model)
        if not -len(flat) <= int(head_start) < len(flat):
            raise ValueError(
                f"Received an invalid value for `head_start`: index {head_start} "
                f"is outside the model's {len(flat)} layers. Fix: pass the name "
                "of the first head layer."
            )
        found = flat[int(head_start)]
        target = found.name
        for i, layer in enumerate(layers):
            if layer is found:
                return i
    raise ValueError(
        f"The head of model {model.name!r} must start at a top-level layer to cache "
        f"features; layer {target!r} is inside a nested model. Received: "
        f"head_start={head_start!r}. Fix: start the head after the nested base, or "
        "pass cache_features=False."
    )


def split_at_head(
    model: keras.Model, head_start: int | str | None = None
) -> FeatureSplit:
    """Cuts a functional model into a feature extractor and a head that share layers.

    The cut is moved forward past weight-free, deterministic head layers
    (global pooling, flatten), so the cached tensor is as small as possible.
    Nothing is copied: `split.head` holds `model`'s own head layers.

    Args:
        model: A functional or Sequential model, e.g. one built by `add_head`.
        head_start: Name, or index into `flat_layers(model)`, of the first head
            layer; it must be a top-level layer. Defaults to None: the first
            top-level layer whose name starts with `head_`.

    Returns:
        A `FeatureSplit` with `features`, `head` and `boundary`.

    Raises:
        ValueError: When the head cannot be found, starts inside a nested
            model, or is not a single-input block fed only by the base (a head
            that reads other tensors cannot run on cached features).

    Example:

    >>> base = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(4, 3)], name="base")
    >>> split = split_at_head(add_head(base, num_classes=3))
    >>> split.boundary, split.features.output_shape
    ('head_dropout', (None, 4))
    """
    if not hasattr(model, "layers") or not getattr(model, "inputs", None):
        raise ValueError(
            f"Cannot cut model {getattr(model, 'name', model)!r} at its head: only "
            "functional and Sequential models with known inputs can be cut. Fix: "
            "build it with tlrecipes.add_head, or pass cache_features=False."
        )
    layers = model.layers
    index = _top_level_index(model, head_start)
    while index < len(layers) - 1:  # fold weight-free deterministic layers in
        layer = layers[index]
        if layer.weights or random_state(layer) or len(layer._inbound_nodes) != 1:
            break
        index += 1
    boundary = layers[index]
    tensor = boundary.input
    if isinstance(tensor, (list, tuple, dict)):
        raise ValueError(
            f"Layer {boundary.name!r}, where the head starts, takes several inputs; "
            "features can only be cached for a head fed by one tensor. Fix: pass "
            "cache_features=False."
        )
    inputs, outputs = model.inputs, model.outputs
    inputs = inputs[0] if len(inputs) == 1 else inputs
    outputs = outputs[0] if len(outputs) == 1 else outputs
    try:
        head = keras.Model(tensor, outputs, name=f"{model.name}_head")
        features = keras.Model(inputs, tensor, name=f"{model.name}_features")
    except ValueError as err:
        raise ValueError(
            f"The head of model {model.name!r} (from layer {boundary.name!r}) reads "
            f"more than the base's output, so it cannot run on cached features "
            f"({err}). Fix: pass cache_features=False."
        ) from err
    return FeatureSplit(features=features, head=head, boundary=boundary.name)


def dataset_batches(x: Any):
    """(inputs, labels or None, sample weights or None) batches of a dataset."""
    if isinstance(x, keras.utils.PyDataset):
        items = (x[i] for i in range(len(x)))
    else:
        items = x.as_numpy_iterator()
    for item in items:
        item = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        yield tuple(
            None if a is None else np.asarray(a) for a in (*item, None, None)[:3]
        )


def extract_features(
    features: keras.Model,
    x: Any,
    *,
    batch_size: int = 128,
    path: str | os.PathLike | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Runs the frozen feature extractor once over `x`, in inference mode.

    Args:
        features: The feature model (`split_at_head(model).features`).
        x: A NumPy array of inputs, or a finite `keras.utils.PyDataset` /
            `tf.data.Dataset` yielding `(x, y)` or `(x, y, sample_weight)`
            batches, read once in its own order.
        batch_size: Examples per inference batch for arrays. Defaults to 128
            (inference memory is small; BatchNorm in inference mode does not
            depend on the batch).
        path: File for an `np.memmap` that receives the features (for sets
            that do not fit in memory). Arrays only. Defaults to None (in
            memory).

    Returns:
        For an array, the feature array (a `np.memmap` when `path` is set).
        For a dataset, `(features, labels, sample_weights)` collected in one
        pass; `sample_weights` is None when the dataset has none.

    Raises:
        ValueError: For a non-positive `batch_size`, an empty dataset, or
            `path` with a dataset.

    Example:

    >>> split = split_at_head(add_head(keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3)], name="base"), 2))
    >>> extract_features(split.features, np.ones((5, 4), "float32")).shape
    (5, 3)
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            "Received an invalid value for `batch_size`, expected a positive "
            f"integer. Received: batch_size={batch_size!r}. Fix: e.g. 128."
        )
    if is_dataset(x):
        if path is not None:
            raise ValueError(
                "Received path= with a dataset: features of a dataset are kept in "
                f"memory. Received: path={path!r}. Fix: pass arrays, or path=None."
            )
        parts: list[tuple[np.ndarray, Any, Any]] = []
        for xb, yb, wb in dataset_batches(x):
            parts.append(
                (keras.ops.convert_to_numpy(features(xb, training=False)), yb, wb)
            )
        if not parts:
            raise ValueError("`x` is an empty dataset: no features to cache.")
        feats = np.concatenate([p[0] for p in parts])
        labels = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        weights = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        return feats, labels, weights
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if path is None and len(x) <= EAGER_EXTRACT_BATCHES * batch_size:
        return np.concatenate(
            [
                keras.ops.convert_to_numpy(
                    features(x[lo : lo + batch_size], training=False)
                )
                for lo in range(0, max(len(x), 1), batch_size)
            ]
        )
    if path is None:
        return np.asarray(features.predict(x, batch_size=batch_size, verbose=0))
    shape = (len(x), *features.output_shape[1:])
    dtype = keras.backend.standardize_dtype(features.outputs[0].dtype)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    chunk = batch_size * 32
    for lo in range(0, len(x), chunk):
        out[lo : lo + chunk] = features.predict(
            x[lo : lo + chunk], batch_size=batch_size, verbose=0
        )
    out.flush()
    return out


def feature_bytes(features: keras.Model, n: int) -> int:
    """Bytes that `n` cached feature vectors of `features` take."""
    dtype = keras.backend.standardize_dtype(features.outputs[0].dtype)
    size = math.prod(int(d) for d in features.output_shape[1:] if d is not None)
    return n * size * np.dtype(dtype if dtype != "bfloat16" else "float16").itemsize


def cache_problem(
    model: keras.Model,
    split: FeatureSplit,
    x: Any,
    validation_data: Any = None,
    *,
    datasets_ok: bool = False,
) -> str | None:
    """Why features must not be cached for `model`, or None when they may.

    Caching is valid when the features the head sees during phase-1 training
    equal the features computed once in inference mode:

    - the model computes everything inside its layers: no `preprocessor`
      applied to the data outside them (KerasHub tasks), no overridden
      `fit` / `train_step` / `predict_step`, and the head on the cached
      features gives the model's own outputs on a few examples;
    - nothing before the head trains (no trainable weights, no trainable
      BatchNormalization updating its statistics, e.g. `train_bn=True`);
    - no random layer is active before the head in training mode
      (augmentation such as `RandomFlip`, `Dropout`, `GaussianNoise`): checked
      on the top-level layers, and by running the feature model on a few
      examples in training mode and in inference mode (without changing any
      state) and comparing;
    - the data can be read once: arrays (or, when `datasets_ok`, a dataset the
      caller vouches has no random augmentation in its pipeline), and
      `validation_data` is None, a tuple of arrays, or (with `datasets_ok`)
      a dataset.

    Args:
        model: The full model, frozen for phase 1.
        split: `split_at_head(model, ...)`.
        x: The training inputs.
        validation_data: The validation data. Defaults to None.
        datasets_ok: Accept a `PyDataset` / `tf.data.Dataset` for `x` (when
            the user asked for caching explicitly). Defaults to False.

    Returns:
        None when caching is valid; otherwise one sentence saying why not.

    Example:

    >>> model = add_head(keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(3)], name="base"), 2)
    >>> split = split_at_head(model)
    >>> cache_problem(model, split, np.ones((4, 4), "float32")) is None
    True
    """
    outside = _outside_layers(model)
    if outside:
        return outside
    part = split.features
    bns = [
        layer.name
        for layer in flat_layers(part)
        if is_batchnorm(layer) and layer.trainable
    ]
    if bns:
        return (
            f"BatchNormalization layers before the head update their statistics "
            f"in training (e.g. {bns[0]}; train_bn=True)"
        )
    if part.trainable_weights:
        names = [layer.name for layer in flat_layers(part) if layer.trainable_weights]
        names = names[:3]
        return (
            f"layers before the head train (e.g. {', '.join(names)}), so their "
            "outputs change every step"
        )
    random = [layer.name for layer in part.layers if random_state(layer)]
    if random:
        return (
            f"random layers run before the head (e.g. augmentation {random[0]!r}), "
            "so every epoch sees other inputs"
        )
    if is_dataset(x):
        if not datasets_ok:
            return (
                "`x` is a dataset, which may shuffle or augment at random; pass "
                "cache_features=True if its pipeline has no random augmentation"
            )
        sample = next(dataset_batches(x))[0]
    elif isinstance(x, (list, tuple, dict)) or not hasattr(x, "__len__"):
        return "`x` is not a single array"
    else:
        sample = np.asarray(x[:8])
    if (
        validation_data is not None
        and not (datasets_ok and is_dataset(validation_data))
        and not (
            isinstance(validation_data, (tuple, list))
            and all(
                hasattr(a, "__len__") and not is_dataset(a) for a in validation_data
            )
        )
    ):
        return "`validation_data` is not a tuple of arrays"
    if not _head_reproduces_model(model, split, sample[:8]):
        return (
            "the head on the cached features does not give the model's own "
            "outputs (the model computes something outside the two halves)"
        )
    if _differs_in_training(part, sample[:8]):
        return (
            "the layers before the head give other outputs in training mode than "
            "in inference mode (random or batch-dependent layers)"
        )
    return None


def _differs_in_training(part: keras.Model, sample: np.ndarray) -> bool:
    """Runs `part` statelessly in both modes on `sample`; True if they differ."""
    trainable = [v.value for v in part.trainable_variables]
    non_trainable = [v.value for v in part.non_trainable_variables]
    outputs = []
    for training in (True, True, False):
        out, non_trainable = part.stateless_call(
            trainable, non_trainable, sample, training=training
        )
        outputs.append(keras.ops.convert_to_numpy(out).astype("float32"))
    return not all(np.array_equal(outputs[2], o) for o in outputs[:2])


def _outside_layers(model: keras.Model) -> str | None:
    """Why the model may transform its data outside its layers, else None."""
    if getattr(model, "preprocessor", None) is not None:
        return (
            f"model {model.name!r} has a `preprocessor` that fit applies to the "
            "data outside the model's layers (a KerasHub task); cached features "
            "would skip it"
        )
    for name in ("fit", "train_step", "predict_step", "test_step"):
        if getattr(type(model), name, None) is not getattr(keras.Model, name, None):
            return (
                f"model {model.name!r} overrides `{name}`, which may transform the "
                "data before its layers see it"
            )
    return None


def _head_reproduces_model(
    model: keras.Model, split: FeatureSplit, sample: np.ndarray
) -> bool:
    """Whether head(features(x)) equals model(x) on `sample`, in inference mode."""
    whole = keras.ops.convert_to_numpy(model(sample, training=False))
    features = split.features(sample, training=False)
    halves = keras.ops.convert_to_numpy(split.head(features, training=False))
    whole, halves = np.asarray(whole, "float64"), np.asarray(halves, "float64")
    if whole.shape != halves.shape:
        return False
    scale = max(1.0, float(np.max(np.abs(whole))) if whole.size else 1.0)
    return bool(np.max(np.abs(whole - halves), initial=0.0) <= OUTPUT_TOLERANCE * scale)
