"""Hashes and fingerprints: what keys a cache and identifies a run's inputs.

Every cached source model and every stored run is keyed by a hash of
everything that decides its result (`stable_hash`); data and weights are
identified by a fingerprint of their arrays (`fingerprint`,
`weights_fingerprint`), an image folder by its files (`folder_key`, the
`run_key` a recipe gives `two_phase_fit` with a checkpoint). What produced
a record (commit, backend, device, library versions) is
`tlrecipes.lab.record`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

__all__ = [
    "fingerprint",
    "folder_key",
    "json_default",
    "stable_hash",
    "weights_fingerprint",
]


def fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of arrays' shapes, dtypes and bytes."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.data)
    return digest.hexdigest()


#: The files Keras's `image_dataset_from_directory` reads.
_IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def folder_key(
    directory: str | os.PathLike, settings: dict[str, Any] | None = None
) -> str:
    """A key that changes whenever an image folder's data would change.

    `two_phase_fit` cannot hash a `tf.data.Dataset` read from a folder, so a
    checkpointed run on one needs a `run_key` that names the data. This one
    hashes the relative path and every byte of each image file Keras reads
    (`.bmp`, `.gif`, `.jpeg`, `.jpg`, `.png`, in sorted order), and the
    settings that decide how they are loaded and split (image size, batch
    size, split seed, ...): one changed pixel, a renamed or moved file, or
    another split seed gives another key.

    Args:
        directory: The image folder (one subfolder per class).
        settings: JSON-able loading and split settings to include. Defaults
            to None (none).

    Returns:
        A hex SHA-256 prefix (16 digits).

    Raises:
        ValueError: If `directory` is not a directory.

    Example:

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "cat").mkdir()
    >>> _ = (root / "cat" / "0.png").write_bytes(b"not really a png")
    >>> key = folder_key(root, {"image_size": 32})
    >>> key == folder_key(root, {"image_size": 64}), len(key)
    (False, 16)
    """
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(
            "Received an invalid value for `directory`, expected an image "
            f"folder. Received: directory={str(directory)!r}, which is not a "
            "directory. Fix: pass the folder holding one subfolder per class."
        )
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True, default=json_default).encode())
    files = sorted(
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*")
        if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file()
    )
    for name, path in files:
        digest.update(f"\0{name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def json_default(value: Any) -> Any:
    """`json.dumps`'s `default`: numpy scalars and arrays, paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON-serialisable: {type(value).__name__}")


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short SHA-256 of `obj` as sorted-key JSON: the same on every machine."""
    text = json.dumps(obj, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def weights_fingerprint(model: keras.Model) -> str:
    """A fingerprint of a model's weights."""
    return fingerprint(*[np.asarray(w) for w in model.get_weights()])
