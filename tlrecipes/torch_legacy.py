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
   naming it. The stand-ins are read-only (a pickle's BUILD opcode cannot
   modify them) and check what they are given: offsets, shapes and strides
   are non-negative integers, and a tensor never has more elements than its
   storage, so a crafted file cannot make the reader allocate more memory than
   the file's size. Whatever else a malformed pickle raises is reported as
   `pickle.UnpicklingError`.
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
import math
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


class _Sealed:
    """Stand-ins are read-only: a pickle's BUILD opcode cannot retarget them."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise pickle.UnpicklingError(
            f"Refused to set attribute {name!r} of a {type(self).__name__}: a "
            "state dict never does that, so the file is not a plain state dict."
        )

    def _init(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)


class _StorageType(_Sealed):
    """Stand-in for a `torch.<Type>Storage` class: only carries the dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str) -> None:
        self._init(name=name, dtype=np.dtype(_STORAGE_DTYPES[name]))

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage(_Sealed):
    """A storage named by the pickle; its bytes are read after the pickle."""

    __slots__ = ("dtype", "numel", "data")

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self._init(dtype=dtype, numel=numel, data=None)


class _StorageView(_Sealed):
    """A slice of another storage (old `torch.save` files store views)."""

    __slots__ = ("base", "offset", "size", "dtype")

    def __init__(self, base: _Storage, offset: int, size: int) -> None:
        if not 0 <= offset <= offset + size <= base.numel:
            raise pickle.UnpicklingError(
                f"A storage view [{offset}, {offset + size}) lies outside its "
                f"storage of {base.numel} elements: the file is corrupted."
            )
        self._init(base=base, offset=offset, size=size, dtype=base.dtype)


def _non_negative_ints(values: object, what: str) -> tuple[int, ...]:
    if not isinstance(values, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise pickle.UnpicklingError(
            f"Expected non-negative integers for the {what}, got {values!r}: "
            "the file is corrupted or crafted."
        )
    return values


class _LazyTensor(_Sealed):
    """A tensor whose storage bytes are not read yet."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride) -> None:
        if not isinstance(storage, _Storage | _StorageView):
            raise pickle.UnpicklingError(
                f"A tensor refers to {storage!r} instead of a storage."
            )
        (offset,) = _non_negative_ints((offset,), "tensor's storage offset")
        shape = _non_negative_ints(tuple(shape), "tensor's shape")
        stride = _non_negative_ints(tuple(stride), "tensor's strides")
        if len(shape) != len(stride):
            raise pickle.UnpicklingError(
                f"A tensor has shape {shape} but strides {stride}."
            )
        self._init(storage=storage, offset=offset, shape=shape, stride=stride)

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
        extent = offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
        if 0 not in self.shape and extent >= len(data):
            raise pickle.UnpicklingError(
                f"A tensor of shape {self.shape} at offset {offset} with strides "
                f"{self.stride} reaches past its storage of {len(data)} elements."
            )
        if math.prod(self.shape) > len(data):
            # Only overlapping strides (0, say) fit more elements than the
            # storage holds; copying them out could exhaust memory.
            raise pickle.UnpicklingError(
                f"A tensor of shape {self.shape} has more elements than its "
                f"storage of {len(data)}: its strides {self.stride} overlap, "
                "which a saved state dict never has."
            )
        view = np.lib.stride_tricks.as_strided(
            data[offset:],
            shape=self.shape,
            strides=[s * data.itemsize for s in self.stride],
            writeable=False,
        )
        return np.array(view)  # a contiguous copy, independent of the file buffer


class _Rebuild(_Sealed):
    """A read-only stand-in for one of torch's tensor rebuild functions."""

    __slots__ = ("function",)

    def __init__(self, function) -> None:
        self._init(function=function)

    def __call__(self, *args):
        return self.function(*args)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


#: (module, name) -> the stand-in the restricted unpickler returns for it.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Rebuild(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _Rebuild(_rebuild_parameter),
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
        (numel,) = _non_negative_ints((numel,), "storage size")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        storage = self.storages[key]
        if view is not None:
            if not isinstance(view, tuple) or len(view) != 3:
                raise pickle.UnpicklingError(
                    f"Unexpected storage view record {view!r} in the file."
                )
            view_key, offset, size = view
            offset, size = _non_negative_ints((offset, size), "storage view")
            if not isinstance(storage, _Storage):
                raise pickle.UnpicklingError(
                    f"A storage view refers to {key!r}, itself a view."
                )
            if str(view_key) not in self.storages:
                self.storages[str(view_key)] = _StorageView(storage, offset, size)
            return self.storages[str(view_key)]
        return storage


def _plain_load(f: io.BufferedIOBase) -> object:
    """Loads one pickle of plain data (numbers, strings, lists, dicts)."""
    return RestrictedUnpickler(f).load()


def _read_storage(f: io.BufferedIOBase, storage: _Storage, key: str, size: int) -> None:
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
    if nbytes > size - f.tell():
        raise pickle.UnpicklingError(
            f"Storage {key!r} needs {nbytes} bytes but the file has "
            f"{size - f.tell()} left: it is truncated."
        )
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise pickle.UnpicklingError(
            f"The file ends inside storage {key!r} ({len(raw)} of {nbytes} "
            "bytes): it is truncated."
        )
    object.__setattr__(storage, "data", np.frombuffer(raw, dtype=storage.dtype))


def _materialize(obj: object) -> object:
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        out = type(obj)((k, _materialize(v)) for k, v in obj.items())
        metadata = getattr(obj, "__dict__", {}).get("_metadata")
        if metadata is not None:  # torch's per-module versions; plain data
            out._metadata = _materialize(metadata)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def load_legacy_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a legacy-format PyTorch `.pth` state dict into NumPy arrays.

    The file is read with `RestrictedUnpickler`, so nothing in it is executed,
    and torch does not need to be installed. Only the pre-1.6 (non-zip)
    format is read; check the file's SHA-256 before calling this
    (`tlrecipes.safe_loading.verify_checksum`) when it came from elsewhere.

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
        size = os.fstat(f.fileno()).st_size
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
        try:
            return _load_state_dict(f, size)
        except _MALFORMED as err:
            # A crafted pickle can make the stand-ins raise anything.
            raise pickle.UnpicklingError(
                f"{os.fspath(path)!r} is not a plain state dict: "
                f"{type(err).__name__}: {err}"
            ) from err


#: What a malformed or crafted pickle raises besides `pickle.UnpicklingError`.
_MALFORMED = (
    AttributeError,
    EOFError,
    IndexError,
    KeyError,
    RecursionError,
    TypeError,
    ValueError,
    struct.error,
)


def _load_state_dict(f: io.BufferedIOBase, size: int) -> dict[str, np.ndarray]:
    """After the magic number: the header, the state dict, the storages."""
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
        _read_storage(f, storage, str(key), size)
    return _materialize(result)
