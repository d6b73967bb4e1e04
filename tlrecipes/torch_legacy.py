"""Reading a PyTorch state dict saved in the legacy format, with NumPy only.

`torch.save` wrote files before PyTorch 1.6 as a run of pickles followed by
the raw tensor bytes (the "legacy" format, not a zip archive). Unpickling such
a file with `pickle.load` or `torch.load(..., weights_only=False)` runs any
code the file names: a `.pth` is a program, not data. `load_legacy_state_dict`
reads it without executing anything from the file and without torch:

1. A restricted `pickle.Unpickler` (`RestrictedUnpickler`) resolves only the
   handful of globals a state dict needs (`collections.OrderedDict`,
   `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter` and
   the `torch.<Type>Storage` classes), each to a NumPy stand-in defined here.
   Any other global, `os.system` included, raises `pickle.UnpicklingError`
   naming it.
2. The storages named in the pickle are then read as raw little-endian bytes
   (`int64` element count, then the data), the layout PyTorch's legacy
   `torch.save` writes, and each tensor becomes a NumPy view of its storage
   with the pickled offset, shape and strides.

So TensorFlow and JAX users can convert PyTorch weights without installing
torch, and nobody runs the file's code.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct

import numpy as np

__all__ = ["LEGACY_MAGIC", "RestrictedUnpickler", "load_legacy_state_dict"]

#: First pickled value of every legacy-format file written by `torch.save`.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

# torch storage class -> little-endian NumPy dtype of its elements.
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    """Stand-in for a `torch.<Type>Storage` class: only carries the dtype."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage:
    """A storage named by the pickle; its bytes are read after the pickle."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _StorageView:
    """A slice of another storage (old `torch.save` files store views)."""

    def __init__(self, base: _Storage, offset: int, size: int) -> None:
        self.base = base
        self.offset = offset
        self.size = size
        self.dtype = base.dtype


class _LazyTensor:
    """A tensor whose storage bytes are not read yet."""

    def __init__(self, storage, offset: int, shape: tuple, stride: tuple) -> None:
        self.storage = storage
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.stride = tuple(int(s) for s in stride)

    def materialize(self) -> np.ndarray:
        storage, offset = self.storage, self.offset
        if isinstance(storage, _StorageView):
            storage, offset = storage.base, offset + storage.offset
        data = storage.data
        if data is None:
            raise pickle.UnpicklingError(
                "A tensor refers to a storage whose bytes are not in the file: "
                "it is truncated or not a legacy torch.save file."
            )
        if not self.shape:
            return np.array(data[offset])
        extent = offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
        if offset < 0 or extent >= len(data) and min(self.shape) > 0:
            raise pickle.UnpicklingError(
                f"A tensor of shape {self.shape} at offset {offset} with strides "
                f"{self.stride} reaches past its storage of {len(data)} elements."
            )
        view = np.lib.stride_tricks.as_strided(
            data[offset:],
            shape=self.shape,
            strides=[s * data.itemsize for s in self.stride],
        )
        return np.array(view)  # a contiguous copy, independent of the file buffer


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


#: (module, name) -> the stand-in the restricted unpickler returns for it.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a torch state dict needs.

    `find_class` maps `collections.OrderedDict`, the two torch tensor rebuild
    functions and the `torch.<Type>Storage` classes to harmless stand-ins;
    every other global is refused, so a file cannot make the reader call
    `os.system`, `builtins.eval` or anything else. Persistent ids (how torch
    pickles storages) become placeholder storages whose bytes
    `load_legacy_state_dict` reads afterwards.

    Args:
        file: A binary file object positioned at the start of the pickle.

    Example:

    >>> import io, pickle
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps({"a": [1, 2]}))).load()
    {'a': [1, 2]}
    >>> RestrictedUnpickler(io.BytesIO(b"cos\\nsystem\\n.")).load()
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: Refused to load the global 'os.system' ...
    """

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            allowed = sorted(f"{m}.{n}" for m, n in _ALLOWED)
            raise pickle.UnpicklingError(
                f"Refused to load the global '{module}.{name}' from the file: a "
                "PyTorch state dict only needs tensors, storages and "
                f"dictionaries ({', '.join(allowed)}). The file would run code "
                "when unpickled, so it is not loaded. Fix: use a weights file "
                "from a trusted source that holds a plain state dict."
            ) from None

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or not saved_id:
            raise pickle.UnpicklingError(
                f"Unexpected persistent id {saved_id!r}: expected a torch "
                "('storage', ...) record."
            )
        kind = saved_id[0]
        if isinstance(kind, bytes):
            kind = kind.decode("ascii")
        if kind != "storage" or len(saved_id) != 6:
            raise pickle.UnpicklingError(
                f"Refused the persistent record {kind!r}: only tensor storages "
                "are read (a 'module' record would carry source code)."
            )
        storage_type, key, _location, numel, view = saved_id[1:]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(
                f"Unexpected storage type {storage_type!r} in the file."
            )
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, int(numel))
        storage = self.storages[key]
        if view is not None:
            view_key, offset, size = view
            if str(view_key) not in self.storages:
                self.storages[str(view_key)] = _StorageView(storage, offset, size)
            return self.storages[str(view_key)]
        return storage


def _plain_load(f: io.BufferedIOBase) -> object:
    """Loads one pickle of plain data (numbers, strings, lists, dicts)."""
    return RestrictedUnpickler(f).load()


def _read_storage(f: io.BufferedIOBase, storage: _Storage, key: str) -> None:
    header = f.read(8)
    if len(header) != 8:
        raise pickle.UnpicklingError(
            f"The file ends before the bytes of storage {key!r}: it is truncated."
        )
    (numel,) = struct.unpack("<q", header)
    if numel != storage.numel:
        raise pickle.UnpicklingError(
            f"Storage {key!r} has {numel} elements in the file but {storage.numel} "
            "in its pickled record: the file is corrupted."
        )
    nbytes = numel * storage.dtype.itemsize
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise pickle.UnpicklingError(
            f"The file ends inside storage {key!r} ({len(raw)} of {nbytes} "
            "bytes): it is truncated."
        )
    storage.data = np.frombuffer(raw, dtype=storage.dtype)


def _materialize(obj: object) -> object:
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        out = type(obj)((k, _materialize(v)) for k, v in obj.items())
        if hasattr(obj, "__dict__"):
            out.__dict__.update(obj.__dict__)  # e.g. the state dict's _metadata
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def load_legacy_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a legacy-format PyTorch `.pth` state dict into NumPy arrays.

    The file is read with `RestrictedUnpickler`, so nothing in it is executed,
    and torch does not need to be installed. Only the pre-1.6 (non-zip)
    format is read; check the file's SHA-256 before calling this
    (`tlrecipes.safety.verify_checksum`) when it came from elsewhere.

    Args:
        path: The `.pth` file.

    Returns:
        A `collections.OrderedDict` from parameter name (e.g.
        `"_conv_stem.weight"`) to a NumPy array of the tensor's dtype and
        shape, in the file's order.

    Raises:
        pickle.UnpicklingError: If the file is not a legacy torch.save file
            (a zip-format file is named as such), names a global other than
            those a state dict needs, or is truncated.
        FileNotFoundError: If `path` does not exist.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "not_torch.pth"
    >>> _ = path.write_bytes(b"PK\\x03\\x04 a zip file")
    >>> load_legacy_state_dict(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: ... is a zip-format torch.save file ...
    """
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise pickle.UnpicklingError(
                f"{os.fspath(path)!r} is a zip-format torch.save file (PyTorch "
                ">= 1.6); this reader handles the legacy format only. Fix: load "
                "it with torch.load(path, weights_only=True)."
            )
        f.seek(0)
        try:
            magic = _plain_load(f)
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise pickle.UnpicklingError(
                f"{os.fspath(path)!r} is not a legacy torch.save file: {err}"
            ) from None
        if magic != LEGACY_MAGIC:
            raise pickle.UnpicklingError(
                f"{os.fspath(path)!r} is not a legacy torch.save file (its first "
                f"value is {magic!r}, expected the magic number {LEGACY_MAGIC:#x})."
            )
        version = _plain_load(f)
        if version != _PROTOCOL_VERSION:
            raise pickle.UnpicklingError(
                f"Unsupported torch.save protocol version {version!r} (expected "
                f"{_PROTOCOL_VERSION})."
            )
        sys_info = _plain_load(f)
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise pickle.UnpicklingError(
                "The file was saved on a big-endian machine; only little-endian "
                "files are read."
            )
        unpickler = RestrictedUnpickler(f)
        result = unpickler.load()
        keys = _plain_load(f)
        if not isinstance(keys, list):
            raise pickle.UnpicklingError(
                f"Expected the list of storage keys after the pickle, got {keys!r}."
            )
        for key in keys:
            storage = unpickler.storages.get(str(key))
            if not isinstance(storage, _Storage):
                raise pickle.UnpicklingError(
                    f"The file lists storage {key!r} that no tensor refers to."
                )
            _read_storage(f, storage, str(key))
    return _materialize(result)
