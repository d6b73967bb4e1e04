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
uses this in phase 1 whenever it is valid (see `cache_problem`).

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

__all__ = [
    "FeatureSplit",
    "split_at_head",
    "extract_features",
    "cache_problem",
    "MEMMAP_THRESHOLD_BYTES",
    "feature_bytes",
]

#: Feature arrays larger than this go to a temporary `np.memmap` file when
#: features are cached without a `cache_dir` (1 GiB).
MEMMAP_THRESHOLD_BYTES = 1 << 30

#: Per backend: a cached head that trains for at most this many steps in all
#: runs eagerly (`run_eagerly=True`), since compiling its train step costs
#: more than it saves. Measured on a 2-core CPU (fashion_a_to_b, 50 images,
#: median of 3): JAX compiled 0.95-1.02 s for 20-60 steps vs eager 0.27 s at
#: 20 and 0.74 s at 60, even near 90; TensorFlow compiled 0.37 s at 20 steps
#: vs eager 0.33 s, and eager loses from 40 steps on, so TensorFlow always
#: compiles. torch runs eagerly unless `jit_compile=True`.
EAGER_HEAD_STEPS = {"jax": 64}

#: Backends on which a cached head runs a whole epoch per call of its train
#: function (`steps_per_execution` = steps per epoch), when no callback
#: needs to see single batches. On TensorFlow a small head's step costs less
#: than Keras's Python work around it: measured on a 2-core CPU
#: (fashion_a_to_b, 10 epochs, medians of 3, identical weights), 14.0 s with
#: one step per call vs 7.7 s with one call per epoch at 1000 images per
#: class (157 steps per epoch), 2.14 s vs 2.00 s at 100 per class (16 steps).
#: JAX gained 5% and compiles one program per batch count; torch refuses
#: it. Below `EPOCH_PER_EXECUTION_MIN_STEPS` steps per epoch the loop costs
#: more to trace than it saves (50 images, 2 steps per epoch: 1.39 s vs 1.20 s).
EPOCH_PER_EXECUTION = ("tensorflow",)
EPOCH_PER_EXECUTION_MIN_STEPS = 16

#: The batch-level callback hooks; a callback that overrides one of these
#: keeps the cached head at one step per call.
BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
)

#: Arrays of at most this many inference batches go through the feature model
#: by direct calls instead of `predict`, which traces a predict function first.
EAGER_EXTRACT_BATCHES = 8


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


def _random_state(layer: keras.layers.Layer) -> bool:
    """True for a layer that draws random numbers (holds a SeedGenerator)."""
    seed_type = keras.random.SeedGenerator
    return any(isinstance(v, seed_type) for v in vars(layer).values())


def _top_level_index(model: keras.Model, head_start: int | str | None) -> int:
    """Index into `model.layers` of the first head layer."""
    from tlrecipes.heads import HEAD_PREFIX

    layers = model.layers
    if head_start is None:
        names = [
            i for i, layer in enumerate(layers) if layer.name.startswith(HEAD_PREFIX)
        ]
        if not names:
            raise ValueError(
                f"Cannot find the head of model {model.name!r}: no top-level layer "
                f"name starts with {HEAD_PREFIX!r}. Fix: build it with "
                "tlrecipes.add_head, or pass head_start=<first head layer>."
            )
        return names[0]
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
        target = flat[int(head_start)].name
        for i, layer in enumerate(layers):
            if layer.name == target:
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
        if layer.weights or _random_state(layer) or len(layer._inbound_nodes) != 1:
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


def _is_dataset(x: Any) -> bool:
    return isinstance(x, keras.utils.PyDataset) or (
        type(x).__module__.startswith("tensorflow") and hasattr(x, "take")
    )


def _batches(x: Any):
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
    if _is_dataset(x):
        if path is not None:
            raise ValueError(
                "Received path= with a dataset: features of a dataset are kept in "
                f"memory. Received: path={path!r}. Fix: pass arrays, or path=None."
            )
        parts: list[tuple[np.ndarray, Any, Any]] = []
        for xb, yb, wb in _batches(x):
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
    random = [layer.name for layer in part.layers if _random_state(layer)]
    if random:
        return (
            f"random layers run before the head (e.g. augmentation {random[0]!r}), "
            "so every epoch sees other inputs"
        )
    if _is_dataset(x):
        if not datasets_ok:
            return (
                "`x` is a dataset, which may shuffle or augment at random; pass "
                "cache_features=True if its pipeline has no random augmentation"
            )
        sample = next(_batches(x))[0]
    elif isinstance(x, (list, tuple, dict)) or not hasattr(x, "__len__"):
        return "`x` is not a single array"
    else:
        sample = np.asarray(x[:8])
    if (
        validation_data is not None
        and not (datasets_ok and _is_dataset(validation_data))
        and not (
            isinstance(validation_data, (tuple, list))
            and all(
                hasattr(a, "__len__") and not _is_dataset(a) for a in validation_data
            )
        )
    ):
        return "`validation_data` is not a tuple of arrays"
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


# --- phase 1 of two_phase_fit on cached features ------------------------------

_HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end")
_BATCH_HOOKS = (
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


class _OnFullModel(keras.callbacks.Callback):
    """Shows a user's callback the full model while the head model trains.

    A `ModelCheckpoint` must save the model the user passed, not the headless
    training model; `EarlyStopping` and `ReduceLROnPlateau` reach the shared
    optimizer and weights through it. A stop requested on the full model is
    passed on to the model that trains.
    """

    def __init__(self, callback: keras.callbacks.Callback, full: keras.Model) -> None:
        super().__init__()
        self.callback, self.full, self.trainer = callback, full, None
        for name in _HOOKS + _BATCH_HOOKS:
            inner = getattr(callback, name)
            if getattr(inner, "_is_default", False):
                setattr(self, name, inner)  # keeps Keras's fast path
            else:
                setattr(self, name, self._forward(inner, name == "on_train_begin"))

    def _forward(self, inner, begin: bool):
        def hook(*args, **kwargs):
            if begin:
                self.full.stop_training = False
            # On JAX the training model holds its variables outside them
            # during an epoch; Keras syncs them back when a callback reads
            # `self.model`, but our callbacks read the full model, so sync
            # the model that trains.
            sync = getattr(self.trainer, "jax_state_sync", None)
            if sync is not None:
                sync()
            inner(*args, **kwargs)
            if self.full.stop_training and self.trainer is not None:
                self.trainer.stop_training = True

        return hook

    def set_model(self, model: keras.Model) -> None:
        self.trainer = model
        self.callback.set_model(self.full)

    def set_params(self, params: dict) -> None:
        self.callback.set_params(params)


def _scope(model: keras.Model):
    """The model's tf.distribute scope (TensorFlow backend), else a no-op."""
    import contextlib

    strategy = getattr(model, "_distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


class CachedHeadPhase:
    """Phase 1 of `two_phase_fit` on cached features (used by training.py).

    Built before phase 1 (cheap: it only checks that caching is valid);
    `prepare` computes the features the first time phase 1 really trains, so
    a resumed run whose phase 1 is finished never runs the base.
    """

    def __init__(
        self, model, split, x, y, validation_data, fit_kwargs, seed, cache_dir
    ):
        self.model, self.split = model, split
        self.x, self.y, self.validation_data = x, y, validation_data
        self.fit_kwargs, self.seed, self.cache_dir = dict(fit_kwargs), seed, cache_dir
        self.used = False
        self._tmp = None

    def _path(self, name: str, n: int) -> str | None:
        if self.cache_dir is None and feature_bytes(self.split.features, n) < (
            MEMMAP_THRESHOLD_BYTES
        ):
            return None
        if self.cache_dir is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="tlrecipes-features-")
            folder = self._tmp.name
        else:
            folder = os.fspath(self.cache_dir)
            os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{name}.npy")

    def prepare(self, compiled: dict[str, Any], callbacks: list, epochs: int = 0):
        """Computes the features; returns `(head, inputs, callbacks)` for `fit`.

        `epochs` is how many epochs the head will train in this `fit`: a head
        with at most `EAGER_HEAD_STEPS[backend]` steps in all runs eagerly.
        """
        from tlrecipes.training import _fit_inputs

        features = self.split.features
        kwargs = dict(self.fit_kwargs)
        batch = int(kwargs.get("batch_size") or 32)
        infer = max(batch, 128)
        x, y = self.x, self.y
        if _is_dataset(x):
            x, y, weights = extract_features(features, x)
            first = next(_batches(self.x))[0]
            kwargs.setdefault("batch_size", len(first))
            if weights is not None:
                kwargs["sample_weight"] = weights
        else:
            x = extract_features(
                features, x, batch_size=infer, path=self._path("x", len(x))
            )
        validation = self.validation_data
        if _is_dataset(validation):
            xv, yv, wv = extract_features(features, validation)
            validation = (xv, yv) if wv is None else (xv, yv, wv)
        elif validation is not None:
            xv, *rest = validation
            path = self._path("validation_x", len(xv))
            validation = (
                extract_features(features, xv, batch_size=infer, path=path),
                *rest,
            )
        seed = self.seed
        if seed is None and isinstance(x, np.memmap):
            seed = int(np.random.randint(2**31 - 1))  # batches read rows, not all
        if seed is None and not kwargs.get("steps_per_epoch"):
            # The same steps as Keras would take; given explicitly, Keras keeps
            # its data iterator from one epoch to the next instead of building
            # two per epoch (most of an epoch's cost once the base is cached).
            n = math.floor(len(x) * (1.0 - float(kwargs.get("validation_split") or 0)))
            kwargs["steps_per_epoch"] = max(
                1, math.ceil(n / int(kwargs.get("batch_size") or 32))
            )
        inputs = _fit_inputs(x, y, validation, kwargs, seed)
        head = self.split.head
        steps = kwargs.get("steps_per_epoch") or math.ceil(
            len(x) / int(kwargs.get("batch_size") or 32)
        )
        if self._eager(compiled, int(epochs) * steps):
            compiled = {**compiled, "run_eagerly": True}
        elif self._epoch_per_execution(compiled, callbacks, inputs):
            # The same steps in the same order, one call per epoch: exact,
            # since an execution then ends where the epoch ends.
            compiled = {
                **compiled,
                "steps_per_execution": int(inputs(0)["steps_per_epoch"]),
            }
        with _scope(self.model):
            head.compile(optimizer=self.model.optimizer, **compiled)
        self.used = True
        return head, inputs, [_OnFullModel(c, self.model) for c in callbacks]

    def _eager(self, compiled: dict[str, Any], total_steps: int) -> bool:
        """Whether the head trains eagerly: few steps, nothing asking otherwise."""
        limit = EAGER_HEAD_STEPS.get(keras.backend.backend(), 0)
        if compiled.get("jit_compile") is True or compiled.get("run_eagerly"):
            return False  # the caller asked for XLA, or it is eager already
        if getattr(self.model, "_distribute_strategy", None) is not None:
            return False
        if keras.distribution.distribution() is not None:
            return False
        return 0 < total_steps <= limit

    def _epoch_per_execution(
        self, compiled: dict[str, Any], callbacks: list, inputs
    ) -> bool:
        """Whether one train-function call may run a whole epoch of the head."""
        if keras.backend.backend() not in EPOCH_PER_EXECUTION:
            return False
        if (compiled.get("steps_per_execution") or 1) != 1:
            return False  # the user chose it
        if getattr(self.model, "_distribute_strategy", None) is not None:
            return False  # not tested under tf.distribute: keep Keras's default
        steps = inputs(0).get("steps_per_epoch")
        if not steps or steps < EPOCH_PER_EXECUTION_MIN_STEPS:
            return False  # an epoch's length is not known, or too short
        return not any(
            not getattr(getattr(c, hook, None), "_is_default", False)
            for c in callbacks
            for hook in BATCH_HOOKS
        )

    def close(self) -> None:
        """Deletes temporary feature files."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def cached_head_phase(
    model: keras.Model,
    head_start: int | str | None,
    cache_features: bool | str,
    x: Any,
    y: Any,
    validation_data: Any,
    fit_kwargs: dict[str, Any],
    seed: int | None,
    cache_dir: str | os.PathLike | None,
) -> tuple[CachedHeadPhase | None, str | None]:
    """Decides whether phase 1 runs on cached features (model frozen for it).

    Returns `(phase, None)` when it does, `(None, reason)` when `"auto"`
    finds it invalid, `(None, "disabled")` for False.

    Raises:
        ValueError: For an invalid `cache_features`, or when
            `cache_features=True` and caching would change the training.
    """
    if cache_features is False:
        return None, "cache_features=False"
    if cache_features not in ("auto", True):
        raise ValueError(
            "Received an invalid value for `cache_features`, expected 'auto', True "
            f"or False. Received: cache_features={cache_features!r}. Fix: use "
            "'auto' (cache when valid), True (require it) or False (never)."
        )
    explicit = cache_features is True
    try:
        with _scope(model):
            split = split_at_head(model, head_start)
        problem = cache_problem(model, split, x, validation_data, datasets_ok=explicit)
    except ValueError as err:
        split, problem = None, str(err)
    if problem is None and fit_kwargs.get("validation_split") and _is_dataset(x):
        problem = "validation_split needs arrays"
    if problem is not None:
        if explicit:
            raise ValueError(
                "Received cache_features=True, but the base's features cannot be "
                f"cached for this run: {problem}. Caching would train the head on "
                "other inputs than the model sees. Fix: pass cache_features='auto' "
                "(caches only when valid) or False."
            )
        return None, problem
    return (
        CachedHeadPhase(
            model, split, x, y, validation_data, fit_kwargs, seed, cache_dir
        ),
        None,
    )
