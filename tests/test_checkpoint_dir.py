"""checkpoint_dir holds only tlrecipes' files, has one writer, is checked first."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import assert_identical, tiny_data, tiny_model
from tlrecipes.checkpoint import TrainingCheckpoint
from tlrecipes.checkpoint_dir import (
    LOCK,
    MARKER,
    DirectoryLock,
    check_directory,
    is_own_file,
)
from tlrecipes.training import two_phase_fit

ROOT = Path(__file__).resolve().parents[1]
RUN = {"head_epochs": 1, "fine_tune_epochs": 1, "batch_size": 16, "verbose": 0}


def _model():
    keras.utils.set_random_seed(0)
    return tiny_model()


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.variables]


def _fit(model, directory, **kwargs):
    x, y = tiny_data()
    settings = {**RUN, "seed": 3, **kwargs}
    return two_phase_fit(
        model, x, y, validation_data=(x[:12], y[:12]), checkpoint_dir=directory,
        **settings,
    )  # fmt: skip


def _files(directory):
    return {p.name: p.read_bytes() for p in Path(directory).iterdir()}


def _assert_refused_and_untouched(directory, match, **kwargs):
    """The call raises ValueError(match); no weight and no file changed."""
    model = _model()
    before = _weights(model)
    files = _files(directory) if Path(directory).is_dir() else None
    with pytest.raises(ValueError, match=match) as info:
        _fit(model, directory, **kwargs)
    assert_identical(before, _weights(model))
    assert getattr(model, "optimizer", None) is None  # never compiled
    if files is not None:
        assert _files(directory) == files
    return str(info.value)


# --- 1. only tlrecipes' files -------------------------------------------------


@pytest.mark.multibackend
def test_foreign_files_are_refused_before_training_and_kept(tmp_path):
    (tmp_path / "tmp-notes.txt").write_text("my notes")
    (tmp_path / "ckpt-old.npz").write_bytes(b"not ours")
    message = _assert_refused_and_untouched(tmp_path, "files tlrecipes did not write")
    assert "'ckpt-old.npz', 'tmp-notes.txt'" in message
    assert "Fix: pass an empty or new directory" in message
    assert sorted(os.listdir(tmp_path)) == ["ckpt-old.npz", "tmp-notes.txt"]


@pytest.mark.multibackend
def test_a_file_named_like_ours_in_an_unmarked_directory_is_refused(tmp_path):
    (tmp_path / "ckpt-000001.npz").write_bytes(b"someone else's arrays")
    message = _assert_refused_and_untouched(tmp_path, "did not write")
    assert "'ckpt-000001.npz'" in message


def test_the_message_lists_a_few_foreign_files_and_counts_the_rest(tmp_path):
    for i in range(8):
        (tmp_path / f"image_{i}.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"'image_4.png' and 3 more\."):
        check_directory(tmp_path)


@pytest.mark.multibackend
def test_a_run_leaves_only_its_own_files_and_resumes(tmp_path):
    directory = tmp_path / "new" / "run"
    model = _model()
    _fit(model, directory, keep_best="val_loss")
    names = sorted(os.listdir(directory))
    assert names == [MARKER, "best.keras", "ckpt-000005.npz", "state.json"]
    assert all(is_own_file(n) for n in names)  # and no lock left behind
    again = _model()
    hist = _fit(again, directory, keep_best="val_loss")
    assert hist.resumed_at_epoch == 2
    assert_identical(_weights(model), _weights(again))
    # A foreign file added later makes the directory refused, and it is kept.
    (directory / "notes.txt").write_text("mine")
    _assert_refused_and_untouched(directory, r"holding 'notes.txt'")


@pytest.mark.multibackend
def test_a_checkpoint_from_before_the_marker_still_resumes(tmp_path):
    model = _model()
    _fit(model, tmp_path)
    (tmp_path / MARKER).unlink()
    again = _model()
    assert _fit(again, tmp_path).resumed_at_epoch == 2
    assert (tmp_path / MARKER).exists()
    assert_identical(_weights(model), _weights(again))


@pytest.mark.multibackend
def test_saving_deletes_only_its_own_older_files(tmp_path):
    model = tiny_model()
    saver = TrainingCheckpoint(tmp_path, {"a": 1})
    saver.save({"epoch": 1}, model, None, "first")
    stale_temp = tmp_path / f"tmp-{'0' * 32}-state.json"  # left by a crash
    stale_temp.write_text("{}")
    foreign = {
        "ckpt-old.npz": b"a",
        "tmp-notes.txt": b"b",
        "ckpt-1.npz": b"c",
        "tmp-1234-state.json": b"d",
    }
    for name, data in foreign.items():
        (tmp_path / name).write_bytes(data)
    saver.save({"epoch": 2}, model, None, "second")
    assert sorted(os.listdir(tmp_path)) == sorted(
        [*foreign, "ckpt-000002.npz", "state.json"]
    )
    for name, data in foreign.items():
        assert (tmp_path / name).read_bytes() == data


# --- 2. one writer at a time ----------------------------------------------------


def _lock_file(directory, pid, host=None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("")
    owner = {"pid": pid, "host": host or socket.gethostname(), "token": "x"}
    (directory / LOCK).write_text(json.dumps(owner))


@pytest.mark.multibackend
def test_a_directory_locked_by_a_live_run_is_refused(tmp_path):
    _lock_file(tmp_path, os.getpid())
    message = _assert_refused_and_untouched(tmp_path, "another run is writing")
    assert f"locked by process {os.getpid()}" in message
    assert "Fix: wait for that run to end" in message
    _lock_file(tmp_path, 1, host="elsewhere.example")  # can't tell: refuse
    _assert_refused_and_untouched(tmp_path, "on host 'elsewhere.example'")


@pytest.mark.multibackend
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_file(tmp_path, dead.pid)
    model = _model()
    with pytest.warns(UserWarning, match=f"left by process {dead.pid}"):
        hist = _fit(model, tmp_path)
    assert hist.phase_epochs == {"head": 1, "fine_tune": 1}
    assert not (tmp_path / LOCK).exists()


class Interrupt(Exception):
    pass


class RaiseAtEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        assert (Path(self.directory) / LOCK).exists()  # held while training
        raise Interrupt


@pytest.mark.multibackend
def test_the_lock_is_released_on_an_exception(tmp_path):
    callback = RaiseAtEpoch()
    callback.directory = tmp_path
    with pytest.raises(Interrupt):
        _fit(_model(), tmp_path, callbacks=[callback])
    assert not (tmp_path / LOCK).exists()
    assert _fit(_model(), tmp_path).phase_epochs["fine_tune"] == 1


HOLDER = """
import sys, time
from tlrecipes.checkpoint_dir import DirectoryLock
with DirectoryLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_process_is_refused_while_the_first_holds_the_directory(tmp_path):
    directory = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), "60"],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        message = _assert_refused_and_untouched(directory, "another run is writing")
        assert f"locked by process {holder.pid}" in message
        with pytest.raises(ValueError, match="another run"):
            DirectoryLock(directory).acquire()
    finally:
        holder.kill()
        holder.wait()
    # Killed: its lock is stale now, and is taken over.
    with pytest.warns(UserWarning, match="no longer runs"):
        with DirectoryLock(directory) as lock:
            assert json.loads((directory / LOCK).read_text())["pid"] == os.getpid()
            assert lock.held
    assert not (directory / LOCK).exists()


def test_the_holder_releases_on_exit_and_another_lock_can_follow(tmp_path):
    with DirectoryLock(tmp_path):
        with pytest.raises(ValueError, match="another run"):
            DirectoryLock(tmp_path).acquire()
    start = time.time()
    with DirectoryLock(tmp_path):
        pass
    assert time.time() - start < 5
    assert sorted(os.listdir(tmp_path)) == [MARKER]


# --- 3. a file, or a directory that cannot be written --------------------------


@pytest.mark.multibackend
def test_a_file_as_checkpoint_dir_is_refused_before_training(tmp_path):
    path = tmp_path / "ckpt"
    path.write_text("a file")
    _assert_refused_and_untouched(path, "that is not a directory")
    assert path.read_text() == "a file"
    _assert_refused_and_untouched(path / "sub", "cannot be created.*is a file")


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root writes read-only dirs"
)
def test_a_read_only_checkpoint_dir_is_refused_before_training(tmp_path):
    tmp_path.chmod(0o500)
    try:
        _assert_refused_and_untouched(tmp_path, "cannot be written")
        _assert_refused_and_untouched(tmp_path / "new", "cannot be written")
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.multibackend
def test_an_unwritable_checkpoint_dir_is_refused_before_training(
    tmp_path, monkeypatch
):
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT and Path(path).parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    message = _assert_refused_and_untouched(tmp_path, "cannot be written")
    assert "Permission denied" in message
    assert os.listdir(tmp_path) == []


# --- 4. other arguments are checked before any training step --------------------


@pytest.mark.multibackend
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"keep_best": "val_acc"}, "not a metric this run logs"),
        ({"unfreeze_from": "block2_cnov"}, r"No layer named 'block2_cnov'"),
        ({"unfreeze_from": 99}, "Layer index out of range"),
    ],
)
def test_typos_are_refused_before_any_weight_moves_or_file_is_written(
    tmp_path, kwargs, match
):
    directory = tmp_path / "run"
    _assert_refused_and_untouched(directory, match, **kwargs)
    assert not directory.exists()
