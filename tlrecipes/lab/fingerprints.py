"""Hashes and fingerprints: what keys a cache and identifies a run's inputs.

Every cached source model and every stored run is keyed by a hash of
everything that decides its result (`stable_hash`); data and weights are
identified by a fingerprint of their arrays (`fingerprint`,
`weights_fingerprint`). What produced a record (commit, backend, device,
library versions) is `tlrecipes.lab.record`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

__all__ = [
    "fingerprint",
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
