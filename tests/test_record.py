"""tlrecipes.lab.record: commit, dirty tree, device and versions."""

import os
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import keras
import pytest

import tlrecipes
from tlrecipes.lab.record import (
    BACKEND_LIBRARIES,
    OUTPUT_DIRS,
    DirtyTreeError,
    GitState,
    device_description,
    git_state,
    header_line,
    library_versions,
    provenance,
)

PACKAGE_DIR = Path(tlrecipes.__file__).resolve().parent
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="no git")


def git(where, *args):
    return subprocess.run(
        ["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def checkout_root():
    """The git checkout holding the imported package (skips for a wheel)."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    try:
        return Path(git(PACKAGE_DIR, "rev-parse", "--show-toplevel"))
    except subprocess.CalledProcessError:
        pytest.skip("tlrecipes is not imported from a git checkout")


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A directory git does not see as part of any checkout."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    where = tmp_path / "site-packages" / "tlrecipes"
    where.mkdir(parents=True)
    return where


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A fresh checkout with a committed package, output folders and a .venv."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "project"
    (root / "tlrecipes").mkdir(parents=True)
    (root / "tlrecipes" / "__init__.py").write_text('__version__ = "9.9"\n')
    (root / ".gitignore").write_text(".venv/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_commit_is_the_checkouts_head(checkout_root):
    record = provenance()
    assert record["commit"] == git(checkout_root, "rev-parse", "HEAD")
    assert isinstance(record["dirty"], bool)
    suffix = "+dirty" if record["dirty"] else ""
    assert record["describe"] == record["commit"][:7] + suffix


def test_an_untracked_file_makes_the_tree_dirty(checkout_root):
    stray = checkout_root / f"stray-{uuid.uuid4().hex}.py"
    stray.write_text("x = 1\n")
    try:
        state = git_state()
        assert state.dirty is True and stray.name in state.changed
        record = provenance()
        assert record["dirty"] is True and record["describe"].endswith("+dirty")
        with pytest.raises(DirtyTreeError) as err:
            provenance(allow_dirty=False)
    finally:
        stray.unlink()
    message = str(err.value)
    assert "`allow_dirty=False`" in message and stray.name in message
    assert message.endswith(
        "Fix: commit your changes, or pass allow_dirty=True to record the run as dirty."
    )


@needs_git
def test_outputs_do_not_dirty_a_tree_and_code_does(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert git_state(repo / "tlrecipes") == GitState(str(repo), head, False, ())
    for folder in OUTPUT_DIRS:
        (repo / folder).mkdir(parents=True, exist_ok=True)
        (repo / folder / "result.json").write_text("{}")
    assert git_state(repo).dirty is False
    (repo / "tlrecipes" / "__init__.py").write_text('__version__ = "10"\n')
    state = git_state(repo)
    assert (state.commit, state.dirty) == (head, True)
    assert state.changed == ("tlrecipes/__init__.py",)
    (repo / "tlrecipes_extra.py").write_text("")
    assert git_state(repo, ignore=[*OUTPUT_DIRS, "tlrecipes"]).changed == (
        "tlrecipes_extra.py",
    )
    (repo / "tlrecipes_extra.py").unlink()
    git(repo, "mv", "tlrecipes/__init__.py", "tlrecipes/moved.py")
    assert git_state(repo).changed == ("tlrecipes/moved.py",)  # a rename: one path


@needs_git
def test_a_checkout_without_commits_has_no_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("")
    git(tmp_path, "add", "a.py")
    state = git_state(tmp_path)
    assert (state.commit, state.dirty) == (None, True)


def test_outside_a_checkout_commit_is_none(outside, monkeypatch):
    assert git_state(outside) == GitState(None, None, None, ())
    monkeypatch.setattr(tlrecipes, "__file__", str(outside / "__init__.py"))
    record = provenance(allow_dirty=False)
    assert (record["commit"], record["dirty"], record["changed"]) == (None, None, [])
    assert record["describe"] == record["tlrecipes"] == tlrecipes.__version__
    assert header_line(record).startswith(f"tlrecipes {tlrecipes.__version__} · ")


@needs_git
def test_a_package_untracked_inside_a_checkout_is_outside(repo, monkeypatch):
    installed = repo / ".venv" / "site-packages" / "tlrecipes"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    assert git_state(installed).commit is None
    monkeypatch.setattr(tlrecipes, "__file__", str(installed / "__init__.py"))
    assert provenance()["commit"] is None


def test_device_description_names_the_device_here():
    description = device_description()
    backend = keras.backend.backend()
    library = BACKEND_LIBRARIES[backend][0]
    assert description.endswith(f" ({backend} {library_versions()[library]})")
    if not description.startswith("CPU: "):  # an accelerator: "1 NVIDIA H200 (...)"
        assert description.split()[0].isdigit()
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert f", {cores or os.cpu_count()} cores (" in description
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            models = [
                line.split(":", 1)[1].strip() for line in f if "model name" in line
            ]
        if models:
            assert description.startswith(f"CPU: {models[0]}, ")


def test_versions_include_the_active_backend():
    versions = provenance()["versions"]
    assert {"python", "keras", "numpy", "scipy"} <= set(versions)
    assert versions["keras"] == keras.version()
    for library in BACKEND_LIBRARIES[keras.backend.backend()]:
        assert versions[library] == sys.modules[library].__version__
    others = {lib for b, libs in BACKEND_LIBRARIES.items() for lib in libs} - set(
        BACKEND_LIBRARIES[keras.backend.backend()]
    )
    assert not others & set(versions)


def test_describing_the_device_imports_no_other_backend():
    before = {m for m in ("tensorflow", "jax", "torch") if m in sys.modules}
    provenance()
    after = {m for m in ("tensorflow", "jax", "torch") if m in sys.modules}
    assert after == before


def test_record_fields_settings_and_date():
    settings = {"seeds": (0, 1, 2), "epochs": 3, "out": Path("runs/x")}
    record = provenance(settings)
    assert set(record) == {
        "commit",
        "dirty",
        "describe",
        "changed",
        "tlrecipes",
        "backend",
        "device",
        "versions",
        "platform",
        "date",
        "settings",
    }
    assert record["settings"] == {"seeds": [0, 1, 2], "epochs": 3, "out": "runs/x"}
    settings["epochs"] = 99
    assert record["settings"]["epochs"] == 3  # a copy, not a reference
    date = datetime.fromisoformat(record["date"])
    assert date.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - date) < timedelta(minutes=5)
    assert provenance()["settings"] is None
    with pytest.raises(ValueError, match="`settings`.*Received: settings=\\[1, 2\\]"):
        provenance([1, 2])


def test_header_line():
    record = provenance()
    line = header_line(record, duration=283.4)
    version = library_versions()[BACKEND_LIBRARIES[keras.backend.backend()][0]]
    parts = line.split(" · ")
    assert parts[1] == f"{keras.backend.backend()} {version}"
    assert parts[2] == record["device"].removesuffix(f" ({parts[1]})")
    assert parts[3] == record["date"][:10] and parts[4] == "4 min 43 s"
    if record["commit"]:
        assert parts[0] == f"commit {record['describe']}"
    assert header_line(record, duration=42).endswith(" · 42 s")
    assert header_line(record, duration=3 * 3600 + 125).endswith(" · 3 h 02 min")
    assert header_line(record).count(" · ") == 3
    with pytest.raises(ValueError, match="`duration`.*duration=-1"):
        header_line(record, duration=-1)
    with pytest.raises(ValueError, match="`record`.*without \\['describe'"):
        header_line({"commit": None})
