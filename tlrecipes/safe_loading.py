"""Loading files safely: checksums first, and never code stored in a file.

A `.keras` file holding a `Lambda` layer carries Python bytecode; Keras
refuses it unless `safe_mode=False`. `safe_load_model` keeps `safe_mode` on,
explains the refusal, and can check the file's SHA-256 first, so a truncated
download or a tampered file is caught before Keras reads it
(`verify_checksum`). The project itself never unpickles a file: its
checkpoints are read with `np.load(..., allow_pickle=False)`.
"""

from __future__ import annotations

import hashlib
import os
import string
import zipfile
from pathlib import Path

import keras

__all__ = [
    "ChecksumError",
    "check_keras_archive",
    "safe_load_model",
    "sha256_file",
    "verify_checksum",
]


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
            "tlrecipes.safe_loading.sha256_file(path) on a trusted copy."
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
    tlrecipes.safe_loading.ChecksumError: Checksum mismatch for ...
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


def check_keras_archive(path: str | os.PathLike) -> None:
    """Raises a clear `ValueError` unless `path` is a whole `.keras` archive.

    A `.keras` file is a zip archive. One cut short (an interrupted save, copy or
    download) has no zip directory at its end, and Keras then reports "File not
    found" for a file that exists; a file corrupted inside fails its CRC check.
    Every member is read once to check its CRC (about 1 ms per MB).

    Args:
        path: The `.keras` file.

    Raises:
        ValueError: If the file is not a zip archive, a member fails its CRC
            check, or `config.json` is missing. The message names the path,
            its size and the fix.
        FileNotFoundError: If `path` does not exist.

    Example:

    >>> import keras, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.keras"
    >>> keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    >>> check_keras_archive(path)
    >>> _ = path.write_bytes(path.read_bytes()[:100])
    >>> check_keras_archive(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Cannot load ...: it is not a valid .keras archive (...truncated...
    """
    path = Path(path)
    size = path.stat().st_size  # FileNotFoundError for a missing file
    problem = None
    if not zipfile.is_zipfile(path):
        problem = "it is not a zip archive, as a .keras file is"
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
                names = archive.namelist()
            if broken is not None:
                problem = f"its member {broken!r} fails its CRC check"
            elif "config.json" not in names:
                problem = f"it holds no config.json (it holds {names[:5]})"
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            problem = f"its zip data cannot be read ({err})"
    if problem:
        raise ValueError(
            f"Cannot load {str(path)!r} ({size:,} bytes): it is not a valid "
            f".keras archive (truncated or corrupt): {problem}. This happens "
            "when a save, copy or download was interrupted. Fix: save the model "
            "again (model.save(path)), or copy or download the file again; if a "
            "checksum was published with it, pass it as expected_sha256."
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
        ValueError: If a `.keras` file is not a valid archive (truncated or
            corrupt, see `check_keras_archive`), holds code (a `Lambda` layer)
            or cannot be deserialised safely.
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
    # `import tlrecipes` is lazy: register tlrecipes' own layers and schedules
    # (RepeatChannels, ImagePreprocessing, OneCycle) with Keras before it
    # looks them up.
    import tlrecipes.heads  # noqa: F401
    import tlrecipes.image_preprocessing  # noqa: F401
    import tlrecipes.schedules  # noqa: F401

    if expected_sha256 is not None:
        verify_checksum(path, expected_sha256)
    if path.suffix.lower() == ".keras":
        check_keras_archive(path)
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
