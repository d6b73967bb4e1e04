"""Refusing what would go wrong quietly: bad training data and untrusted files.

Two kinds of mistakes cost learners the most because nothing fails loudly:

1. **Data that trains without complaint but teaches nothing**: labels 1..10
   for a 10-class head, a folder glob that found one class only, grayscale
   arrays fed to an RGB backbone, a NaN that turns every weight into NaN.
   `check_images` and `check_labels` turn each of these into an error that
   names the argument, what was expected, what was received and the fix.
   `two_phase_fit` runs them on its inputs before any weight moves.
2. **Files that run code when loaded.** A `.keras` file holding a `Lambda`
   layer carries Python bytecode; Keras refuses it unless `safe_mode=False`.
   `safe_load_model` keeps `safe_mode` on, explains the refusal, and can check
   the file's SHA-256 first, so a truncated download or a tampered file is
   caught before Keras reads it (`verify_checksum`). The project itself never
   unpickles a file: its checkpoints are read with
   `np.load(..., allow_pickle=False)`.
"""

from __future__ import annotations

import hashlib
import os
import string
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

__all__ = [
    "ChecksumError",
    "check_images",
    "check_labels",
    "safe_load_model",
    "sha256_file",
    "verify_checksum",
]

#: Label encodings `check_labels` knows, by the loss that consumes them.
LABEL_KINDS = ("sparse", "one_hot", "binary")


class ChecksumError(ValueError):
    """A file's SHA-256 is not the one expected: it is truncated or modified."""


def sha256_file(path: str | os.PathLike) -> str:
    """Returns the SHA-256 of a file as 64 lowercase hex digits.

    The file is read in 1 MiB chunks, so large weight files do not need to fit
    in memory.

    Args:
        path: The file to hash.

    Returns:
        The hex digest, e.g. `"e3b0c442...b855"` for an empty file.

    Raises:
        FileNotFoundError: If `path` does not exist.

    Example:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty.bin"
    >>> _ = path.write_bytes(b"")
    >>> sha256_file(path)[:12]
    'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _normalise_sha256(expected: object) -> str:
    text = str(expected).strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if len(text) != 64 or not set(text) <= set(string.hexdigits.lower()):
        raise ValueError(
            "Received an invalid value for `expected`, expected a SHA-256 digest "
            f"(64 hex digits, optionally prefixed 'sha256:'). Received: "
            f"expected={expected!r}. Fix: compute it with "
            "tlrecipes.safety.sha256_file(path) on a trusted copy."
        )
    return text


def verify_checksum(path: str | os.PathLike, expected: str) -> None:
    """Raises `ChecksumError` unless the file's SHA-256 equals `expected`.

    Call it before loading any file that came from elsewhere (shipped weights,
    a download): a truncated download, a corrupted disk or a tampered file all
    change the digest.

    Args:
        path: The file to check.
        expected: Its expected SHA-256, 64 hex digits (case-insensitive; a
            `"sha256:"` prefix is accepted).

    Raises:
        ChecksumError: If the digest differs (the message gives both digests
            and the file size). A subclass of `ValueError`.
        FileNotFoundError: If the file does not exist.
        ValueError: If `expected` is not a SHA-256 digest.

    Example:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.bin"
    >>> _ = path.write_bytes(b"weights")
    >>> verify_checksum(path, sha256_file(path))
    >>> _ = path.write_bytes(b"weightz")
    >>> verify_checksum(path, "0" * 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tlrecipes.safety.ChecksumError: Checksum mismatch for ...
    """
    expected = _normalise_sha256(expected)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Cannot verify {str(path)!r}: no such file. Fix: check the path, or "
            "reinstall/re-download the file."
        )
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"Checksum mismatch for {str(path)!r} ({path.stat().st_size:,} bytes): "
            f"expected sha256={expected}, received sha256={actual}. The file is "
            "truncated, corrupted or was modified after it was published, so it "
            "is not loaded. Fix: delete it and download or reinstall it again; "
            "if you changed it on purpose, publish the new checksum with it."
        )


def safe_load_model(
    path: str | os.PathLike,
    expected_sha256: str | None = None,
    *,
    compile: bool = True,
) -> keras.Model:
    """Loads a saved Keras model without running code stored in the file.

    `keras.saving.load_model` with `safe_mode=True` (the default that this
    function never turns off): a file containing a `Lambda` layer, whose
    function is stored as Python bytecode, is refused with an error that names
    the risk and the fix. Custom layers registered with
    `keras.saving.register_keras_serializable` (such as tlrecipes'
    `RepeatChannels`) load normally: their code comes from your installed
    packages, not from the file.

    Args:
        path: A `.keras` file (or a legacy `.h5` model file).
        expected_sha256: If given, the file's SHA-256 is checked first and a
            mismatch raises `ChecksumError` before Keras reads the file.
            Defaults to None (no check).
        compile: Passed to `load_model`. Defaults to True.

    Returns:
        The loaded model.

    Raises:
        ChecksumError: If `expected_sha256` is given and does not match.
        ValueError: If the file holds code (a `Lambda` layer) or cannot be
            deserialised safely.
        FileNotFoundError: If `path` does not exist.

    Example:

    >>> import keras, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.keras"
    >>> keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    >>> safe_load_model(path, sha256_file(path)).output_shape
    (None, 1)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}. Fix: check the path.")
    if expected_sha256 is not None:
        verify_checksum(path, expected_sha256)
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except ValueError as err:
        if "safe_mode" not in str(err) and "Lambda" not in str(err):
            raise
        raise ValueError(
            f"Refused to load {str(path)!r}: the file contains code (a `Lambda` "
            "layer or another Python function stored as bytecode). Loading it "
            "would run that code on your machine, which is how a shared model "
            "file can carry malware. Fix: if the file is not yours, do not load "
            "it. If you wrote it, rebuild the model with a custom layer "
            "registered with @keras.saving.register_keras_serializable (instead "
            "of keras.layers.Lambda) and save it again; only for a file you "
            "created yourself, keras.saving.load_model(path, safe_mode=False) "
            f"loads it anyway. Keras said: {err}"
        ) from err


def _shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def check_images(
    x: np.ndarray, input_shape: Sequence[int | None], *, name: str = "x"
) -> None:
    """Checks an input array against a model's input shape before training.

    For images (channels last) it recognises the usual slips and says how to
    fix each: a missing channel axis, channels-first arrays, grayscale data
    for an RGB model, RGBA data, the wrong image size. Any other array input
    (tabular features) gets the same shape, emptiness and NaN checks.

    Args:
        x: The inputs, examples along the first axis.
        input_shape: One example's expected shape without the batch axis, as
            in `model.input_shape[1:]`; None matches any size.
        name: The argument name used in error messages. Defaults to `"x"`.

    Raises:
        ValueError: For an empty array, a non-numeric dtype, a shape that does
            not match `input_shape`, or NaN/Inf values.

    Example:

    >>> import numpy as np
    >>> check_images(np.zeros((4, 8, 8, 3), "float32"), (8, 8, 3))
    >>> check_images(np.zeros((4, 8, 8), "float32"), (8, 8, 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `x` has no channel axis: ... Fix: add one with x[..., None].
    """
    x = np.asarray(x)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"`{name}` is empty (0 examples). Fix: check the data loading step "
            "(a wrong folder or a filter that removed everything); training "
            "needs at least one batch."
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(
            f"`{name}` must hold numbers. Received: {name}.dtype={x.dtype}. Fix: "
            "load images as arrays of pixels (e.g. keras.utils.load_img + "
            "img_to_array), not file names or objects."
        )
    got, want = tuple(x.shape[1:]), tuple(input_shape)
    if len(got) != len(want):
        if len(got) + 1 == len(want) and want[-1] == 1:
            raise ValueError(
                f"`{name}` has no channel axis: each example has shape "
                f"{_shape(got)} but the model expects {_shape(want)}. Fix: add "
                f"one with {name}[..., None]."
            )
        raise ValueError(
            f"`{name}` has examples of shape {_shape(got)} but the model expects "
            f"{_shape(want)} (rank {len(want)}). Fix: reshape the data, or build "
            "the model for this input shape."
        )
    if len(want) == 3 and want[-1] is not None and got[-1] != want[-1]:
        channels, expected = got[-1], want[-1]
        if got[0] == expected and channels not in (1, 3, 4):
            fix = (
                "the array looks channels-first; move the channel axis last "
                f"with np.moveaxis({name}, 1, -1)."
            )
        elif channels == 1 and expected == 3:
            fix = (
                "build the model with add_head(base, ..., input_shape=(h, w, 1)), "
                "which repeats the gray channel into RGB inside the model (a "
                f"RepeatChannels layer), or convert: np.repeat({name}, 3, axis=-1)."
            )
        elif channels == 4 and expected == 3:
            fix = f"drop the alpha channel: {name}[..., :3]."
        elif channels == 3 and expected == 1:
            fix = (
                "convert to grayscale, e.g. "
                f"{name}.mean(axis=-1, keepdims=True), or use an RGB model."
            )
        else:
            fix = "convert the images, or build the model for this many channels."
        raise ValueError(
            f"`{name}` has {channels} channel(s) per image but the model expects "
            f"{expected}: example shape {_shape(got)}, expected {_shape(want)}. "
            f"Fix: {fix}"
        )
    for axis, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is not None and g != w:
            raise ValueError(
                f"`{name}` has examples of shape {_shape(got)} but the model "
                f"expects {_shape(want)} (axis {axis + 1} differs). Fix: resize "
                "the images (e.g. keras.layers.Resizing in add_head's "
                "preprocessing) or build the model with add_head(..., "
                "input_shape=...) on a base that accepts this size."
            )
    if np.issubdtype(x.dtype, np.floating):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(
                f"`{name}` contains NaN or Inf values ({bad} entries). Fix: clean "
                "or impute them before training; a single NaN turns every "
                "weight into NaN."
            )


def check_labels(
    y: np.ndarray,
    num_outputs: int,
    kind: str = "sparse",
    *,
    min_classes: int = 2,
    name: str = "y",
) -> None:
    """Checks classification labels against the model's output layer.

    Labels that do not fit the head do not always fail: with sparse labels
    1..10 for 10 classes, JAX computes a wrong loss for label 10 and trains
    on silently, while TensorFlow and PyTorch stop with a low-level error that
    does not mention the labels. A single class trains to 100% accuracy and
    learns nothing. This refuses both, with the fix.

    Args:
        y: The labels, one per example.
        num_outputs: Units of the output layer (`model.output_shape[-1]`).
        kind: How labels are encoded, named after the loss: `"sparse"`
            (integer class ids for sparse categorical crossentropy),
            `"one_hot"` (rows of length `num_outputs`) or `"binary"` (0/1 for a
            single sigmoid unit). Defaults to `"sparse"`.
        min_classes: Fewest distinct classes accepted. Defaults to 2; use 1
            for a validation set or a single batch.
        name: The argument name used in error messages. Defaults to `"y"`.

    Raises:
        ValueError: For non-numeric or NaN labels, labels outside
            [0, num_outputs), non-integer sparse labels, one-hot rows of the
            wrong width, and fewer than `min_classes` classes.

    Example:

    >>> import numpy as np
    >>> check_labels(np.array([0, 1, 2, 1]), 3)
    >>> check_labels(np.array([1, 2, 3]), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Labels must be integers in [0, 2] ... Fix: relabel to 0..k-1 ...
    """
    if kind not in LABEL_KINDS:
        raise ValueError(
            f"Received an invalid value for `kind`, expected one of {LABEL_KINDS}. "
            f"Received: kind={kind!r}."
        )
    y = np.asarray(y)
    if y.ndim == 0 or len(y) == 0:
        raise ValueError(
            f"`{name}` is empty (0 labels). Fix: pass one label per example."
        )
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        sample = list(np.unique(y.ravel()[:1000])[:3])
        raise ValueError(
            f"Labels must be numbers. Received: {name}.dtype={y.dtype}, values "
            f"such as {sample}. Fix: map class names to 0..k-1, e.g. "
            f"names, {name} = np.unique({name}, return_inverse=True)."
        )
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise ValueError(
            f"`{name}` contains NaN or Inf labels. Fix: drop or relabel those examples."
        )
    if kind == "one_hot":
        if y.ndim != 2 or y.shape[-1] != num_outputs:
            raise ValueError(
                f"One-hot labels must have shape (n, {num_outputs}) for a model "
                f"with {num_outputs} outputs. Received: {name}.shape={y.shape}. "
                "Fix: encode with keras.utils.to_categorical(y, num_classes), or "
                "pass integer labels with a sparse loss."
            )
        if y.min() < 0 or y.max() > 1:
            raise ValueError(
                f"One-hot labels must lie in [0, 1]. Received values in "
                f"[{y.min()}, {y.max()}]. Fix: encode with "
                "keras.utils.to_categorical."
            )
        classes = np.unique(y.argmax(axis=-1))
    else:
        if y.ndim == 2 and y.shape[-1] == 1:
            y = y[:, 0]
        if y.ndim == 2 and kind == "sparse":
            raise ValueError(
                f"`{name}` looks one-hot with {y.shape[-1]} columns, but the model "
                f"has {num_outputs} outputs: one-hot labels must have shape "
                f"(n, {num_outputs}). Received: {name}.shape={y.shape}. Fix: "
                f"encode with keras.utils.to_categorical(labels, {num_outputs}), "
                "or build the head with the right num_classes."
            )
        if y.ndim != 1:
            raise ValueError(
                f"`{name}` must hold one label per example, shape (n,). Received: "
                f"{name}.shape={y.shape}. Fix: for one-hot labels use a "
                "categorical loss; otherwise flatten the labels."
            )
        lo, hi = y.min(), y.max()
        if kind == "binary":
            if lo < 0 or hi > 1:
                raise ValueError(
                    "A model with one sigmoid output expects labels 0 or 1. "
                    f"Received labels in [{lo}, {hi}]. Fix: relabel to 0/1, or "
                    f"build the head with num_classes={int(hi) + 1} for "
                    "multi-class labels."
                )
            classes = np.unique(y > 0.5)
        else:
            if lo < 0 or hi >= num_outputs or not np.array_equal(y, np.round(y)):
                raise ValueError(
                    f"Labels must be integers in [0, {num_outputs - 1}] for a "
                    f"model with {num_outputs} outputs. Received labels in "
                    f"[{lo}, {hi}]"
                    + ("" if np.array_equal(y, np.round(y)) else ", not all integers")
                    + ". Fix: relabel to 0..k-1 (e.g. y - 1 for labels 1..k), or "
                    "build the head with the right num_classes."
                )
            classes = np.unique(y)
    if len(classes) < min_classes:
        raise ValueError(
            f"`{name}` holds only {len(classes)} class(es) (label "
            f"{classes.tolist()}) but training a classifier needs at least "
            f"{min_classes}. A model fed one class learns to always answer it. "
            "Fix: check the data loading step (one folder found, a filter that "
            "kept one class, labels all set to the same value)."
        )
