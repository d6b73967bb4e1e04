"""Shared by the data tests: Debian's Fashion-MNIST, fake IDX files, a sealed world."""

import gzip
import hashlib
import pathlib
import struct

import numpy as np
import pytest

from tlrecipes.lab import offline_data
from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.offline_data import DATA_DIR_ENV, OFFLINE_ENV, load_fashion_mnist

DEBIAN = pathlib.Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed "
    "(sudo apt-get install dataset-fashion-mnist)",
)


def make_hermetic(monkeypatch, tmp_path) -> None:
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(
        offline_data,
        "_keras_cache_dirs",
        lambda: [tmp_path / "keras_home" / "datasets"],
    )


def debian_fashion() -> ImageSplits:
    if not (DEBIAN / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return load_fashion_mnist(DEBIAN, download=False)


def row_hashes(x: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]


def write_idx(path: pathlib.Path, array: np.ndarray, magic: int | None = None) -> None:
    array = np.asarray(array, "uint8")
    magic = magic if magic is not None else 0x0800 + array.ndim
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_fake_mnist(directory: pathlib.Path, n_train=20, n_test=10, ext=".gz"):
    """Writes a tiny, valid set of the four IDX files; returns the arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype="uint8")
        labels = np.arange(n) % 10
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        arrays[prefix] = (images, labels)
    return arrays
