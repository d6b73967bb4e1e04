"""IDX files, MNIST's format: read one, find and check the four of a dataset.

Fashion-MNIST and MNIST both come as four IDX files of unsigned bytes
(training and test images and labels), gzipped or not. `read_idx` checks the
header before it trusts the data and caches reads per process;
`find_idx_files` finds the four files in a folder and `read_idx_splits` reads
them and checks that they belong together.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import pathlib
import struct
import zlib

import numpy as np

__all__ = ["find_idx_files", "read_idx", "read_idx_splits"]


_SPLIT_FILES = {
    "train_images": "train-images",
    "train_labels": "train-labels",
    "test_images": "t10k-images",
    "test_labels": "t10k-labels",
}
_IDX_MAGIC = {1: 2049, 3: 2051}  # ndim -> magic number of an unsigned-byte IDX file


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
    >>> from tlrecipes.lab.idx_files import read_idx
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


def find_idx_files(directory: pathlib.Path) -> tuple[dict[str, pathlib.Path], str]:
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


def read_idx_splits(
    files: dict[str, pathlib.Path], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads and cross-checks the four files: `(x_train, y_train, x_test, y_test)`."""
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
