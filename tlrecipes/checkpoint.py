"""Crash-safe training checkpoints: a state file and the arrays it points to.

`two_phase_fit(..., checkpoint_dir=...)` keeps one checkpoint per directory,
rewritten after every epoch and at the end of each phase:

- `ckpt-<n>.npz`: the model's variables (weights, BatchNorm statistics,
  dropout seed state) and the optimizer's variables (step count, learning
  rate, slots), written with `np.savez` and read back with
  `np.load(allow_pickle=False)`: nothing in the directory is ever unpickled.
- `state.json`: where training stands (phase, epochs done, trainable flags,
  learning rate, the merged history, the best metric so far), the name and
  SHA-256 of the `.npz` it belongs to, and a fingerprint of the call's
  settings, so a checkpoint is never resumed for another job: the settings,
  a hash of every byte of the data arrays (streamed data by the `run_key`
  the caller gives, `data_identity`) and a hash of the starting weights of
  the layers before the head (`base_weights_digest`).
- `best.keras` (with `keep_best`): the best model so far by a metric.

The directory holds nothing else but a marker and a lock file
(`tlrecipes.checkpoint_dir`); files are deleted only by their exact names
(older `ckpt-<digits>.npz`, `tmp-<32 hex digits>-...` temporaries).

**Why a kill at any instant leaves a consistent pair.** Each write goes to a
temporary file in the same directory, is flushed and fsynced, and is then
renamed over its final name with `os.replace`, which is atomic. The arrays
are written first under a new name, then `state.json` is replaced to point
to them, and only then are older arrays deleted. Until the state is replaced
it still points to the previous arrays, which still exist; afterwards it
points to the new ones. A reader therefore sees either the old pair or the
new one, never a mix or a half-written file (the stored SHA-256 is checked
on load besides).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tlrecipes.checkpoint_dir import ARRAYS, BEST, STATE, is_temp_file
from tlrecipes.freezing import flat_layers
from tlrecipes.safe_loading import ChecksumError, sha256_file

__all__ = [
    "TrainingCheckpoint",
    "base_weights_digest",
    "data_identity",
    "describe",
    "fingerprint",
]

FORMAT = 1

#: Test-only: `"<step>@<label>"` makes the process SIGKILL itself at that step
#: of the write labelled `<label>` (e.g. `"arrays-temp@epoch-3"`), so the
#: tests can interrupt a real write at a chosen instant. Steps: `arrays-temp`
#: (temporary .npz written), `arrays` (.npz renamed, state not yet),
#: `state-temp` (temporary state written), `state` (state replaced, older
#: arrays not yet deleted). Unset in normal use.
CRASH_ENV = "TLRECIPES_TEST_CRASH_AT"


def _crash_point(step: str, label: str) -> None:
    if os.environ.get(CRASH_ENV) == f"{step}@{label}":
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, write, step: str, label: str) -> None:
    """Writes a file through a temporary file in the same directory."""
    tmp = path.with_name(f"tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _crash_point(f"{step}-temp", label)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    _crash_point(step, label)


def _to_json(value: Any) -> Any:
    """Settings as plain JSON: arrays and datasets by a short description."""
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in sorted(value.items(), key=str)}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return _to_json(value.item())
    if isinstance(value, np.ndarray):
        return _describe_array(value)
    if _array_like(value):  # tf, jax and torch tensors: hashed like arrays
        return _describe_array(np.asarray(value))
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return {
            "schedule": type(value).__name__,
            "config": _to_json(value.get_config()),
        }
    if isinstance(value, keras.optimizers.Optimizer):
        config = {k: v for k, v in value.get_config().items() if k != "name"}
        return {"optimizer": type(value).__name__, "config": _to_json(config)}
    if hasattr(value, "get_config"):  # losses, metrics
        return {"type": type(value).__name__, "config": _to_json(value.get_config())}
    length = None
    try:
        length = len(value)
    except (TypeError, ValueError):
        pass
    return {"type": type(value).__name__, "len": length}


def _array_like(value: Any) -> bool:
    return hasattr(value, "__array__") and hasattr(value, "shape")


def _describe_array(x: np.ndarray) -> dict:
    """Shape, dtype and a SHA-256 of every byte (the first 16 hex digits)."""
    digest = hashlib.sha256()
    if x.dtype.hasobject:  # strings etc.: bytes would be pointers
        digest.update(repr(x.tolist()).encode())
    else:
        digest.update(np.ascontiguousarray(x).tobytes())
    return {
        "shape": list(x.shape),
        "dtype": str(x.dtype),
        "sha256": digest.hexdigest()[:16],
    }


def _streamed(value: Any) -> bool:
    """Whether `value` is data tlrecipes cannot hash (a dataset, a generator)."""
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return False
    if isinstance(value, (list, tuple)):
        return any(_streamed(v) for v in value)
    if isinstance(value, dict):
        return any(_streamed(v) for v in value.values())
    return not (isinstance(value, np.ndarray) or _array_like(value))


def data_identity(data: dict[str, Any], run_key: str | None) -> dict[str, Any]:
    """What identifies a run's data: arrays by their bytes, streams by `run_key`.

    Arrays (also inside tuples and dicts) are hashed in full, so one changed
    label or pixel makes other data. A `keras.utils.PyDataset`, a
    `tf.data.Dataset` or a generator cannot be hashed without reading it,
    so a checkpointed run on such data needs a `run_key` the caller derives
    from the data (e.g. a hash of the files it reads).

    Args:
        data: The call's data by argument name (`x`, `y`, `validation_data`).
        run_key: A non-empty string naming the data, or None.

    Returns:
        `{"run_key": run_key, **data}`, ready for `describe`.

    Raises:
        ValueError: If `run_key` is not None nor a non-empty string, or if
            some data is streamed and `run_key` is None.

    Example:

    >>> data_identity({"x": np.zeros(3), "y": None}, None)["run_key"] is None
    True
    """
    if run_key is not None and (not isinstance(run_key, str) or not run_key):
        raise ValueError(
            "Received an invalid value for `run_key`, expected a non-empty "
            f"string that names the data. Received: run_key={run_key!r}. Fix: "
            "e.g. run_key=tlrecipes.lab.folder_key(data_dir), or a hash of the "
            "files your dataset reads."
        )
    streamed = [
        f"{name}: {type(value).__name__}"
        for name, value in data.items()
        if _streamed(value)
    ]
    if streamed and run_key is None:
        raise ValueError(
            "Received streamed data with a checkpoint_dir but no `run_key` ("
            + ", ".join(streamed)
            + "). tlrecipes hashes NumPy arrays to make sure a checkpoint is "
            "resumed only with the same data, but cannot hash a PyDataset, a "
            "tf.data.Dataset or a generator: a run on other data would get "
            "this checkpoint back. Expected a `run_key`, a string that changes "
            "whenever the data change. Received: run_key=None. Fix: pass "
            "run_key=... (e.g. tlrecipes.lab.folder_key(data_dir) for an image "
            "folder, or a hash of the files your dataset reads), or pass NumPy "
            "arrays."
        )
    return {"run_key": run_key, **data}


def base_weights_digest(model: keras.Model, head_start: int) -> str:
    """A SHA-256 (16 hex digits) of the weights of the layers before the head.

    A checkpoint records it when its run starts, so that it resumes only on
    a model rebuilt from the same base. The head's own weights are left
    out: a model rebuilt after a crash may draw a new head, whose weights
    the checkpoint replaces anyway.

    Args:
        model: The model, before training moves its weights.
        head_start: Index into `flat_layers(model)` of the first head layer.

    Returns:
        The digest as 16 hex digits.

    Example:

    >>> base = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> len(base_weights_digest(base, 1))
    16
    """
    digest = hashlib.sha256()
    for layer in flat_layers(model)[:head_start]:
        for weight in layer.weights:
            array = np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value))
            digest.update(f"{weight.path}{array.shape}{array.dtype}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def describe(value: Any) -> Any:
    """Returns `value` as JSON-able settings; arrays by shape, dtype and hash."""
    return _to_json(value)


def fingerprint(settings: dict) -> str:
    """A SHA-256 of the settings' JSON: equal settings give equal fingerprints."""
    text = json.dumps(_to_json(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _differences(a, b, f"{prefix}{i}.")
        return out
    if old != new:
        return [f"{prefix[:-1]}: checkpoint {old!r}, now {new!r}"]
    return []


def arrays_of(variables: list) -> list[np.ndarray]:
    """Copies variables to NumPy arrays (works on every backend)."""
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def _layout(variables: list) -> list[list]:
    return [[v.path, list(v.shape), str(v.dtype)] for v in variables]


def assign(variables: list, arrays: list[np.ndarray], what: str) -> None:
    """Assigns arrays to variables after checking count and shapes match.

    Raises:
        ValueError: Naming `what`, the first variable that does not match and
            the fix, when the checkpoint was made for another model.
    """
    if len(variables) != len(arrays):
        raise ValueError(
            f"The checkpoint holds {len(arrays)} {what} variables but the model "
            f"has {len(variables)}. It was made for another model or optimizer. "
            "Fix: resume with the same model, or delete the checkpoint "
            "directory to start over."
        )
    for variable, array in zip(variables, arrays, strict=True):
        if tuple(variable.shape) != tuple(array.shape):
            raise ValueError(
                f"Checkpoint {what} variable for {variable.path!r} has shape "
                f"{tuple(array.shape)}, the model's has {tuple(variable.shape)}. "
                "Fix: resume with the same model, or delete the checkpoint "
                "directory to start over."
            )
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array.astype(variable.dtype))


class TrainingCheckpoint:
    """One resumable training run in a directory (see the module docstring).

    Args:
        directory: Where the files live; created if missing.
        settings: The call's settings (JSON-able after `describe`). A
            checkpoint written with other settings is refused on `load`.
    """

    def __init__(self, directory: str | os.PathLike, settings: dict) -> None:
        self.directory = Path(directory)
        self.settings = _to_json(settings)
        self.fingerprint = fingerprint(settings)
        self._written = 0

    @property
    def best_path(self) -> Path:
        return self.directory / BEST

    def load(self) -> tuple[dict, list[np.ndarray], list[np.ndarray]] | None:
        """Returns `(state, model_arrays, optimizer_arrays)`, or None if empty.

        Raises:
            ValueError: If the checkpoint was made with other settings (the
                message lists them) or its files are damaged.
        """
        path = self.directory / STATE
        if not path.exists():
            return None
        fix = f"Fix: delete {str(self.directory)!r} to start over."
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"Cannot read {str(path)!r}: {err}. {fix}") from err
        if state.get("format") != FORMAT:
            raise ValueError(
                f"{str(path)!r} has checkpoint format {state.get('format')!r}, "
                f"this version of tlrecipes writes format {FORMAT}. {fix}"
            )
        if state["fingerprint"] != self.fingerprint:
            raise ValueError(self._mismatch(state.get("settings")))
        arrays = self.directory / state["arrays"]
        try:
            if sha256_file(arrays) != state["arrays_sha256"]:
                raise ChecksumError(f"{str(arrays)!r} does not match its SHA-256")
            with np.load(arrays, allow_pickle=False) as data:
                model = [data[f"model_{i}"] for i in range(state["num_model"])]
                optim = [data[f"optimizer_{i}"] for i in range(state["num_optimizer"])]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(
                f"The checkpoint in {str(self.directory)!r} is damaged ({err}). "
                f"It was modified outside tlrecipes. {fix}"
            ) from err
        self._written = int(state["written"])
        return state, model, optim

    def _mismatch(self, saved: Any) -> str:
        """Why the checkpoint belongs to another run, and the fix."""
        changed = _differences(saved, self.settings)
        base = any(c.startswith("base_weights:") for c in changed)
        others = [c for c in changed if not c.startswith("base_weights:")]
        text = (
            f"The checkpoint in {str(self.directory)!r} was made by a "
            "two_phase_fit call with other settings, data or starting base "
            "weights, so resuming it would mix two runs."
        )
        if others:
            more = f" and {len(others) - 8} more" if len(others) > 8 else ""
            text += " Differences: " + "; ".join(others[:8]) + more + "."
        if base:
            text += (
                " The base weights (the layers before the head) differ from "
                "those the checkpointed run started from. Fix: rebuild the base "
                "as it was at the start (the same source weights, the same "
                "seed) and call again to resume, or pass another checkpoint_dir "
                "(or delete this one) to start over."
            )
        else:
            text += (
                " Fix: call again with the original settings and data to "
                "resume, or delete the directory (or pass another "
                "checkpoint_dir) to start over."
            )
        return text

    def save(self, state: dict, model: keras.Model, optimizer: Any, label: str) -> None:
        """Writes the arrays, then points `state.json` to them (atomically).

        Args:
            state: JSON-able progress; `format`, `fingerprint`, `settings`,
                `arrays` and the variable layouts are added here.
            model: Its `variables` are saved (weights, statistics, seeds).
            optimizer: Its `variables` are saved; None saves none.
            label: Names this write for the test-only crash hook.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._written += 1
        model_vars = list(model.variables)
        optim_vars = list(optimizer.variables) if optimizer is not None else []
        arrays = {f"model_{i}": a for i, a in enumerate(arrays_of(model_vars))}
        arrays |= {f"optimizer_{i}": a for i, a in enumerate(arrays_of(optim_vars))}
        name = f"ckpt-{self._written:06d}.npz"
        _write_atomic(
            self.directory / name, lambda f: np.savez(f, **arrays), "arrays", label
        )
        full = {
            **state,
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "written": self._written,
            "arrays": name,
            "arrays_sha256": sha256_file(self.directory / name),
            "num_model": len(model_vars),
            "num_optimizer": len(optim_vars),
            "model_variables": _layout(model_vars),
            "optimizer_variables": _layout(optim_vars),
        }
        text = json.dumps(full, indent=1).encode()
        _write_atomic(self.directory / STATE, lambda f: f.write(text), "state", label)
        for old in self.directory.iterdir():
            if old.name != name and ARRAYS.fullmatch(old.name):
                old.unlink(missing_ok=True)
            elif is_temp_file(old.name):
                old.unlink(missing_ok=True)

    def save_best(self, model: keras.Model) -> Path:
        """Saves `model` to `best.keras` through a temporary file (atomic)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"tmp-{uuid.uuid4().hex}.keras"
        try:
            model.save(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.best_path)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        return self.best_path
