"""Provenance: the commit, backend, device, versions and settings behind a result.

A measurement a reader can rerun needs more than its numbers: the exact code
(a commit, and whether the tree had uncommitted changes), the Keras backend,
the device, the library versions and the protocol's settings. `provenance()`
gathers them into one JSON-ready dict that every result, report and notebook
stores; `header_line()` prints the one line a notebook or report starts with;
`device_description()` names the device.

**The commit** is read from the git checkout that holds the imported
`tlrecipes` package (`git -C <package dir>`), not from the current directory,
so a script run from elsewhere still records the code it imported. An
installed wheel has no checkout: `commit` is None and `describe` is the
package version. A package directory that sits inside some checkout without
being tracked by it (a wheel installed into a `.venv` inside a project) is
treated as an installed wheel too, never given that project's commit.

**The dirty-tree rule.** The tree is dirty when `git status` lists any path,
tracked-and-changed or untracked-and-not-ignored, outside `OUTPUT_DIRS`
(`runs/`, `reports/`, `benchmarks/results/`). Untracked files count because a
new module can change what runs; output folders do not, because results
written by this or an earlier run change no code. `provenance()` records a
dirty tree (`dirty: True`, `describe` ending in `+dirty`, the paths in
`changed`) by default; `allow_dirty=False` refuses it (`DirtyTreeError`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "BACKEND_LIBRARIES",
    "MAX_CHANGED",
    "OUTPUT_DIRS",
    "DirtyTreeError",
    "GitState",
    "device_description",
    "git_state",
    "header_line",
    "library_versions",
    "provenance",
]

#: Folders (relative to the checkout's root) whose changes do not make a tree dirty.
OUTPUT_DIRS = ("runs/", "reports/", "benchmarks/results/")
#: The backend libraries recorded for each Keras backend.
BACKEND_LIBRARIES = {
    "tensorflow": ("tensorflow",),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
}
#: Changed paths kept in a record (the count is always exact).
MAX_CHANGED = 50


class DirtyTreeError(RuntimeError):
    """The checkout has uncommitted changes and the caller asked for a clean one."""


@dataclass(frozen=True)
class GitState:
    """Where a directory stands in git.

    Attributes:
        root: The checkout's top directory, or None outside a checkout.
        commit: The full SHA of `HEAD`, or None (no checkout, or no commit).
        dirty: Whether paths outside the ignored folders changed; None outside
            a checkout.
        changed: Those paths, relative to `root`, in `git status` order.
    """

    root: str | None
    commit: str | None
    dirty: bool | None
    changed: tuple[str, ...] = ()


def git_state(
    path: str | os.PathLike | None = None, *, ignore: Iterable[str] = OUTPUT_DIRS
) -> GitState:
    """The commit of the checkout holding `path`, and whether it is dirty.

    Git runs with `-C path`; a `path` that git does not track (an installed
    package inside an unrelated checkout) counts as outside any checkout.
    Untracked, non-ignored files make the tree dirty unless they lie under
    `ignore`. A missing `git` executable also gives the outside state.

    Args:
        path: A directory. Defaults to None: the imported `tlrecipes` package.
        ignore: Folders, relative to the checkout's root and ending in "/",
            whose changes do not count. Defaults to `OUTPUT_DIRS`.

    Returns:
        A `GitState`; `GitState(None, None, None)` outside a checkout.

    Example:

    >>> import tempfile
    >>> from tlrecipes.lab.record import git_state
    >>> git_state(tempfile.mkdtemp())
    GitState(root=None, commit=None, dirty=None, changed=())
    """
    where = Path(path) if path is not None else _package_dir()
    outside = GitState(root=None, commit=None, dirty=None)
    root = _git(where, "rev-parse", "--show-toplevel") if where.is_dir() else None
    if root is None or _git(where, "ls-files", "--error-unmatch", "--", ".") is None:
        return outside
    root = root.strip()
    commit = _git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    commit = commit.strip() if commit else None
    if status is None:
        return GitState(root=root, commit=commit, dirty=None)
    paths, tokens = [], iter(status.split("\0"))
    for entry in tokens:
        if len(entry) > 3:
            paths.append(entry[3:])
            if "R" in entry[:2] or "C" in entry[:2]:
                next(tokens, None)  # the rename's or copy's source path
    skip = tuple(folder.rstrip("/") + "/" for folder in ignore)
    changed = tuple(p for p in paths if not p.startswith(skip) and p + "/" not in skip)
    return GitState(root=root, commit=commit, dirty=bool(changed), changed=changed)


def device_description() -> str:
    """One line naming the device the active Keras backend computes on.

    Only the active backend is asked (jax: `jax.devices()`; torch:
    `torch.cuda`; tensorflow: `tf.config.list_physical_devices`), so no other
    backend is imported. On a CPU the line names the CPU model (from
    `/proc/cpuinfo` where there is one) and the cores this process may use.
    If the backend fails to list its devices, the line says so; `min_seeds`
    then counts it as an accelerator, the stricter minimum.

    Returns:
        E.g. `"1 NVIDIA H200 (jax 0.10.2)"` or
        `"CPU: AMD EPYC 7B13, 2 cores (tensorflow 2.21.0)"`.

    Example:

    >>> import keras
    >>> from tlrecipes.lab.record import device_description
    >>> keras.backend.backend() in device_description()
    True
    """
    import keras

    backend = keras.backend.backend()
    try:
        accelerators = Counter(_accelerators(backend))
    except Exception as err:  # noqa: BLE001 - a description must not crash a run
        accelerators = Counter({f"unknown device ({type(err).__name__})": 1})
    if accelerators:
        device = ", ".join(f"{n} {name}" for name, n in accelerators.items())
    else:
        device = f"CPU: {_cpu_model()}, {_cores()} cores"
    library = BACKEND_LIBRARIES.get(backend, ())
    version = library_versions().get(library[0], "") if library else ""
    return f"{device} ({backend} {version})".replace(" )", ")")


def library_versions() -> dict[str, str]:
    """Versions of Python, Keras, numpy, scipy and the active backend's libraries.

    A library already imported reports its `__version__` (what runs); others
    are read from the installed metadata, without importing them, so
    `tensorflow-datasets` is recorded under jax without importing TensorFlow.

    Returns:
        `{"python": ..., "keras": ..., "numpy": ..., "scipy": ..., <backend
        libraries>, "tensorflow-datasets": ...}`; a library that is not
        installed is left out.

    Example:

    >>> from tlrecipes.lab.record import library_versions
    >>> sorted(library_versions())[:3]
    ['keras', 'numpy', 'python']
    """
    import keras

    names = ["keras", "numpy", "scipy"]
    names += BACKEND_LIBRARIES.get(keras.backend.backend(), ())
    names.append("tensorflow-datasets")
    versions = {"python": platform.python_version()}
    for name in names:
        module = sys.modules.get(name.replace("-", "_"))
        version = getattr(module, "__version__", None)
        if not isinstance(version, str):
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        versions[name] = version
    return versions


def provenance(
    settings: Mapping[str, Any] | None = None, *, allow_dirty: bool = True
) -> dict[str, Any]:
    """Everything a reader needs to rerun a result, as one JSON-ready dict.

    Call it once at the start of a run and store it with the results.

    Args:
        settings: The protocol's settings (seeds, epochs, sizes, ...), stored
            as a JSON-ready copy: tuples become lists, keys strings, other
            objects their `str`. Defaults to None.
        allow_dirty: Record a dirty tree (`dirty: True`, `describe` ending in
            `+dirty`) instead of refusing it. Defaults to True.

    Returns:
        `{"commit", "dirty", "describe", "changed", "tlrecipes", "backend",
        "device", "versions", "platform", "date", "settings"}`: `commit` is
        the full SHA or None outside a checkout, `describe` the short SHA (or
        the package version), `changed` the paths that make the tree dirty
        (at most `MAX_CHANGED`), `date` an ISO 8601 UTC timestamp.

    Raises:
        DirtyTreeError: If `allow_dirty=False` and the tree is dirty (or
            `git status` fails, so it may be).
        ValueError: If `settings` is not a mapping.

    Example:

    >>> import keras
    >>> from tlrecipes.lab.record import provenance
    >>> record = provenance({"seeds": (0, 1, 2), "epochs": 3})
    >>> record["settings"], record["backend"] == keras.backend.backend()
    ({'seeds': [0, 1, 2], 'epochs': 3}, True)
    """
    if settings is not None and not isinstance(settings, Mapping):
        raise ValueError(
            "Received an invalid value for `settings`, expected a mapping of the "
            f"protocol's settings or None. Received: settings={settings!r}. Fix: "
            "pass e.g. {'seeds': [0, 1, 2], 'epochs': 5}."
        )
    state = git_state()
    if not allow_dirty and state.root is not None and state.dirty is not False:
        shown = ", ".join(state.changed[:10]) + (
            ", ..." if len(state.changed) > 10 else ""
        )
        found = f"{len(state.changed)} changed path(s) in {state.root}: {shown}"
        if state.dirty is None:
            found = f"`git status` failed in {state.root}, so the tree may be dirty"
        raise DirtyTreeError(
            "Received a dirty git tree with `allow_dirty=False`, expected no "
            f"uncommitted change outside {', '.join(OUTPUT_DIRS)}. Received: "
            f"{found}. Fix: commit your changes, or pass allow_dirty=True to "
            "record the run as dirty."
        )
    import keras

    version = str(getattr(importlib.import_module("tlrecipes"), "__version__", "?"))
    describe = version
    if state.commit:
        describe = state.commit[:7] + ("+dirty" if state.dirty else "")
    return {
        "commit": state.commit,
        "dirty": state.dirty,
        "describe": describe,
        "changed": list(state.changed[:MAX_CHANGED]),
        "tlrecipes": version,
        "backend": keras.backend.backend(),
        "device": device_description(),
        "versions": library_versions(),
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": None
        if settings is None
        else json.loads(json.dumps(settings, default=str)),
    }


def header_line(
    record: Mapping[str, Any] | None = None, *, duration: float | None = None
) -> str:
    """The one line a notebook or report prints about how its numbers were made.

    Args:
        record: A `provenance()` record. Defaults to None: a fresh one.
        duration: Seconds the run took, appended as e.g. "4 min 43 s".
            Defaults to None: no duration.

    Returns:
        E.g. `"commit abc1234 · tensorflow 2.21.0 · CPU: AMD EPYC, 2 cores ·
        2026-12-03"`; outside a checkout it starts `"tlrecipes 0.1.0"`.

    Raises:
        ValueError: If `record` lacks a `provenance()` key or `duration` is
            negative.

    Example:

    >>> from tlrecipes.lab.record import header_line
    >>> record = {
    ...     "commit": "abc1234" + "0" * 33, "describe": "abc1234",
    ...     "backend": "tensorflow", "versions": {"tensorflow": "2.21.0"},
    ...     "device": "CPU: EPYC, 2 cores (tensorflow 2.21.0)",
    ...     "date": "2026-12-03T10:00:00+00:00",
    ... }
    >>> header_line(record, duration=283)
    'commit abc1234 · tensorflow 2.21.0 · CPU: EPYC, 2 cores · 2026-12-03 · 4 min 43 s'
    """
    record = provenance() if record is None else record
    needed = ("commit", "describe", "backend", "versions", "device", "date")
    missing = [k for k in needed if k not in record]
    if missing:
        raise ValueError(
            "Received an invalid value for `record`, expected a provenance() "
            f"record. Received: a record without {missing}. Fix: pass what "
            "provenance() returned, or None."
        )
    if duration is not None and not duration >= 0:
        raise ValueError(
            "Received an invalid value for `duration`, expected seconds >= 0. "
            f"Received: duration={duration!r}. Fix: pass time.perf_counter() "
            "minus the start time, or None."
        )
    backend = record["backend"]
    library = BACKEND_LIBRARIES.get(backend, (backend,))[0]
    engine = f"{backend} {record['versions'].get(library, '')}".strip()
    device = str(record["device"]).removesuffix(f" ({engine})")
    code = f"commit {record['describe']}" if record["commit"] else None
    parts = [code or f"tlrecipes {record['describe']}", engine, device]
    parts.append(str(record["date"])[:10])
    if duration is not None:
        parts.append(_duration(float(duration)))
    return " · ".join(parts)


# --------------------------------------------------------------------------
# Helpers


def _package_dir() -> Path:
    return Path(importlib.import_module("tlrecipes").__file__).resolve().parent


def _git(where: str | os.PathLike, *args: str) -> str | None:
    """`git -C where args...`'s output, or None if git fails or is missing."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        done = subprocess.run(
            ["git", "-C", str(where), *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _accelerators(backend: str) -> list[str]:
    """Names of the active backend's non-CPU devices, one per device."""
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            ]
        mps = getattr(torch.backends, "mps", None)
        return ["Apple MPS"] if mps is not None and mps.is_available() else []
    if backend == "tensorflow":
        import tensorflow as tf

        names = []
        for kind in ("GPU", "TPU"):
            for device in tf.config.list_physical_devices(kind):
                details = tf.config.experimental.get_device_details(device)
                names.append(details.get("device_name") or f"{kind} {device.name}")
        return names
    return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
