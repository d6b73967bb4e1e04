"""The checkpoint directory: which files are tlrecipes', and who writes them.

A `checkpoint_dir` holds only what tlrecipes wrote, so that tlrecipes never
deletes or overwrites anyone else's file:

- `.tlrecipes-checkpoint`: a marker written on first use; a directory
  without it must be empty (or an older tlrecipes checkpoint);
- `.tlrecipes-lock`: held while a run writes the directory;
- `state.json`, `ckpt-<6+ digits>.npz`, `best.keras` (`tlrecipes.checkpoint`);
- `tmp-<32 hex digits>-state.json`, `tmp-<32 hex digits>-ckpt-<digits>.npz`,
  `tmp-<32 hex digits>.keras`: temporary files of an atomic write, left only
  by a crash and deleted by the next write.

`check_directory` refuses any other file before training starts, and a
directory that is a file, cannot be created or cannot be written.
`DirectoryLock` makes a second run on the same directory refuse while the
first one runs: the lock file is created with `O_CREAT | O_EXCL` and holds
the owner's pid and host; a lock whose process is gone (same host) is taken
over with a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import uuid
import warnings
from pathlib import Path

__all__ = ["DirectoryLock", "check_directory", "is_own_file"]

MARKER = ".tlrecipes-checkpoint"
LOCK = ".tlrecipes-lock"
STATE = "state.json"
BEST = "best.keras"
ARRAYS = re.compile(r"ckpt-\d{6,}\.npz")
TEMP = re.compile(r"tmp-[0-9a-f]{32}(-state\.json|-ckpt-\d{6,}\.npz|\.keras)")
_FIX = "Fix: pass an empty or new directory as checkpoint_dir."


def is_own_file(name: str) -> bool:
    """Whether a file name is one tlrecipes writes in a checkpoint directory."""
    return (
        name in (MARKER, LOCK, STATE, BEST)
        or ARRAYS.fullmatch(name) is not None
        or TEMP.fullmatch(name) is not None
    )


def is_temp_file(name: str) -> bool:
    """Whether a file name is a temporary file of tlrecipes' atomic writes."""
    return TEMP.fullmatch(name) is not None


def _legacy_checkpoint(directory: Path) -> bool:
    """A checkpoint written before the marker existed (its state.json)."""
    try:
        state = json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and {"format", "fingerprint"} <= set(state)


def _probe_writable(directory: Path, received: str) -> None:
    probe = directory / f"tmp-{uuid.uuid4().hex}.keras"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as err:
        raise ValueError(
            "Received a `checkpoint_dir` that cannot be written, expected a "
            f"writable directory. Received: checkpoint_dir={received!r} ({err}). "
            "Fix: pass a directory you can write to, or change its permissions."
        ) from err
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):  # a running save may delete it
        os.unlink(probe)


def check_directory(directory: str | os.PathLike) -> Path:
    """Checks that a run can use `directory` as its checkpoint directory.

    Writes nothing but a probe file (deleted at once) in an existing
    directory; a missing directory is left to be created by the run.

    Args:
        directory: The `checkpoint_dir` of a `two_phase_fit` call.

    Returns:
        The directory as a `Path`.

    Raises:
        ValueError: When `directory` is a file, cannot be created (a parent is
            a file or not writable), cannot be written, or holds files that
            tlrecipes did not write (the message names a few of them).

    Example:

    >>> import tempfile
    >>> check_directory(tempfile.mkdtemp()).is_dir()
    True
    """
    path = Path(directory)
    received = str(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(
            "Received a `checkpoint_dir` that is not a directory, expected a "
            f"directory (existing or new). Received: checkpoint_dir={received!r}, "
            f"a file. {_FIX}"
        )
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise ValueError(
                "Received a `checkpoint_dir` that cannot be created, expected a "
                f"directory (existing or new). Received: checkpoint_dir="
                f"{received!r}, but {str(parent)!r} is a file. {_FIX}"
            )
        _probe_writable(parent, received)
        return path
    names = sorted(p.name for p in path.iterdir())
    foreign = [n for n in names if not is_own_file(n)]
    if not foreign and names and MARKER not in names:
        # Files named like tlrecipes' but no marker: only an older
        # tlrecipes checkpoint (with its state.json) is accepted.
        if not _legacy_checkpoint(path):
            foreign = [n for n in names if n != LOCK]
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise ValueError(
            "Received a `checkpoint_dir` holding files tlrecipes did not write, "
            "expected an empty or new directory, or one holding only a "
            f"tlrecipes checkpoint. Received: checkpoint_dir={received!r}, "
            f"holding {shown}{more}. tlrecipes never deletes or overwrites "
            f"files it did not write. {_FIX}"
        )
    _probe_writable(path, received)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell)
    return True


class DirectoryLock:
    """Holds a checkpoint directory for one run (a context manager).

    On entry, creates the directory if needed, creates `.tlrecipes-lock`
    exclusively (it holds pid, host and a token), checks the directory's
    files again (`check_directory`) and writes the marker. On exit, also
    after an exception, deletes the lock file if it is still its own.

    Args:
        directory: The checkpoint directory.

    Raises:
        ValueError: On entry, when another run holds the directory: its pid
            and host are named, with the fix.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK
        self.token = uuid.uuid4().hex
        self.held = False

    def _owner(self) -> dict:
        try:
            owner = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"pid": None, "host": None}
        return owner if isinstance(owner, dict) else {"pid": None, "host": None}

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": self.token,
            "since": time.time(),
        }
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def acquire(self) -> None:
        """Takes the lock, or raises ValueError naming the run that holds it."""
        check_directory(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                break
            owner = self._owner()
            if not owner:
                continue  # released meanwhile: try again
            pid, host = owner.get("pid"), owner.get("host")
            same_host = host == socket.gethostname()
            if isinstance(pid, int) and same_host and not _alive(pid):
                warnings.warn(
                    f"Taking over the lock of checkpoint_dir {str(self.directory)!r}"
                    f" left by process {pid} on {host!r}, which no longer runs.",
                    stacklevel=3,
                )
                self.path.unlink(missing_ok=True)
                continue
            raise ValueError(
                "Received a `checkpoint_dir` that another run is writing, "
                "expected a directory no other run uses. Received: checkpoint_dir="
                f"{str(self.directory)!r}, locked by process {pid} on host "
                f"{host!r} ({str(self.path)!r}). Fix: wait for that run to end, "
                "or pass another checkpoint_dir. If no such run is alive (e.g. "
                "it ran on another machine and was killed), delete the lock file."
            )
        else:
            raise ValueError(
                f"Could not lock checkpoint_dir {str(self.directory)!r}: its lock "
                "file kept changing. Fix: make sure one run uses the directory."
            )
        self.held = True
        try:
            check_directory(self.directory)  # again, now that no one else writes
            marker = self.directory / MARKER
            if not marker.exists():
                marker.write_text("Written by tlrecipes: a two_phase_fit checkpoint.\n")
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Deletes the lock file if this lock still owns it."""
        if self.held and self._owner().get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
