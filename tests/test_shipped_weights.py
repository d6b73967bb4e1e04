"""The source models shipped in tlrecipes/lab/weights/ load offline, verified."""

import json
import shutil

import keras
import numpy as np
import pytest

from tlrecipes.lab import sources
from tlrecipes.safe_loading import ChecksumError

TASKS = ("fashion_a_to_b", "fashion_to_mnist")


@pytest.mark.multibackend
@pytest.mark.parametrize("task", TASKS)
def test_shipped_source_loads_without_training(task, tmp_path, monkeypatch):
    monkeypatch.setenv("TLRECIPES_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(
        sources, "train_source_model", lambda *a, **k: pytest.fail("retrained")
    )
    source = sources.load_source_model(task)
    assert source.cached
    assert source.path.parent == sources.PACKAGED_WEIGHTS_DIR
    assert source.metrics["test_accuracy"] > 0.85
    assert source.base.name == "convnet"
    x = np.zeros((2, 28, 28, 1), "float32")
    assert keras.ops.convert_to_numpy(source.model(x)).shape[0] == 2


def test_shipped_checksums_cover_every_file():
    folder = sources.PACKAGED_WEIGHTS_DIR
    sums = json.loads((folder / "checksums.json").read_text())
    shipped = {p.name for p in folder.iterdir() if p.suffix in (".keras", ".json")}
    assert shipped - {"checksums.json"} == set(sums)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_tampered_shipped_weights_are_refused(damage, tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(sources.PACKAGED_WEIGHTS_DIR, folder)
    model_file = next(folder.glob("fashion_a_to_b-*.keras"))
    data = bytearray(model_file.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    model_file.write_bytes(bytes(data))
    monkeypatch.setattr(sources, "PACKAGED_WEIGHTS_DIR", folder)
    monkeypatch.setenv("TLRECIPES_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(ChecksumError, match=model_file.name):
        sources.load_source_model("fashion_a_to_b")


INSTALLED_CHECK = """
import json, os, sys
import tlrecipes
from tlrecipes.lab import sources

def retrained(*args, **kwargs):
    raise SystemExit("retrained: the shipped weights did not load")

sources.train_source_model = retrained
out = {"module": tlrecipes.__file__, "weights": str(sources.PACKAGED_WEIGHTS_DIR)}
for task in sys.argv[1:]:
    source = sources.load_source_model(task)
    out[task] = source.metrics["test_accuracy"]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_weights_ship_in_the_wheel_and_load_from_a_clean_install(tmp_path):
    """Build the wheel, install it alone into an empty folder, load offline.

    The package comes from the wheel (not this checkout): the weights must be
    package data, found and checksum-verified without the repository, with an
    empty model cache and downloads switched off, and nothing retrains.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, root],
        check=True,
        cwd=tmp_path,
    )
    wheel = next(wheels.glob("tlrecipes-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", site, wheel],
        check=True,
        cwd=tmp_path,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "TLRECIPES_CACHE_DIR": str(tmp_path / "empty-cache"),
        "TLRECIPES_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK, *TASKS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["module"]).is_relative_to(site)
    assert Path(out["weights"]).is_relative_to(site)
    for task in TASKS:
        assert out[task] > 0.85
