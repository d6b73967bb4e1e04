"""Source models: trained once on the source task, then reused like ImageNet weights.

Nobody retrains ImageNet weights before each experiment; the source model of
a transfer task should be just as ready. `train_source_model` trains a
`small_convnet` classifier once and caches it; `load_source_model` finds it
again, in the cache or among the models shipped inside the package
(`tlrecipes/lab/weights/`, checksum-verified), with no data and no training.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from tlrecipes.freezing import unfreeze
from tlrecipes.heads import add_head, find_base
from tlrecipes.lab.array_splits import load_source_data, source_identity
from tlrecipes.lab.backbones import small_convnet
from tlrecipes.lab.configs import SourceConfig, as_config
from tlrecipes.lab.evaluation import accuracy_of
from tlrecipes.lab.fingerprints import fingerprint, json_default, stable_hash
from tlrecipes.lab.model_copies import weights_copy
from tlrecipes.lab.record import library_versions
from tlrecipes.optimizers import make_optimizer
from tlrecipes.safe_loading import ChecksumError, safe_load_model, verify_checksum

__all__ = [
    "CACHE_ENV",
    "PACKAGED_WEIGHTS_DIR",
    "SourceModel",
    "default_cache_dir",
    "load_source_model",
    "source_key",
    "train_source_model",
]


#: Where `train_source_model` caches models unless told otherwise:
#: `$TLRECIPES_CACHE_DIR`, else `~/.cache/tlrecipes/sources`.
CACHE_ENV = "TLRECIPES_CACHE_DIR"
#: Source models shipped with the package, searched by `load_source_model`
#: after the cache.
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


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
        return weights_copy(self.base, name)


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


def source_key(config: SourceConfig, identity: dict, seed: int) -> str:
    """The cache key of a source model: a hash of its config, data and seed."""
    return stable_hash(
        {"config": config.to_dict(), "data": identity, "seed": int(seed)}
    )


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
    config = as_config(config, SourceConfig, "config")
    data, identity, name = source_identity(data)
    key = source_key(config, identity, seed)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = folder / f"{name}-{key}"
    if not retrain and _stored(stem):
        return _load_source(stem)

    splits = load_source_data(data)  # only now: a cache hit needs no data
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
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
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
            "fingerprint": fingerprint(splits.x_train, splits.y_train),
            "n_train": len(splits.x_train),
            "n_test": len(splits.x_test),
            "image_shape": list(splits.x_train.shape[1:]),
            "class_names": splits.class_names,
        },
        "metrics": {
            "train_accuracy": float(history.history["accuracy"][-1]),
            "test_accuracy": accuracy_of(model, splits.x_test, splits.y_test),
            "seconds": round(seconds, 2),
            "parameters": int(base.count_params()),
        },
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{name}-{key}.partial.keras"
    weights_copy(model).save(
        partial
    )  # an uncompiled copy: weights without optimizer state
    model_path, record_path = _files(stem)
    os.replace(partial, model_path)
    record_path.write_text(json.dumps(info, indent=2, default=json_default))
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
    the package (`tlrecipes/lab/weights/`). With a task name this needs no data
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
    config = as_config(config, SourceConfig, "config")
    _, identity, name = source_identity(data)
    key = source_key(config, identity, seed)
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
