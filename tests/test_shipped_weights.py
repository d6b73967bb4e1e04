"""The source models shipped in tlrecipes/weights/ load offline, verified."""

import json
import shutil

import keras
import numpy as np
import pytest

from tlrecipes import experiments
from tlrecipes.safety import ChecksumError

TASKS = ("fashion_a_to_b", "fashion_to_mnist")


@pytest.mark.multibackend
@pytest.mark.parametrize("task", TASKS)
def test_shipped_source_loads_without_training(task, tmp_path, monkeypatch):
    monkeypatch.setenv("TLRECIPES_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(
        experiments, "train_source_model", lambda *a, **k: pytest.fail("retrained")
    )
    source = experiments.load_source_model(task)
    assert source.cached
    assert source.path.parent == experiments.PACKAGED_WEIGHTS_DIR
    assert source.metrics["test_accuracy"] > 0.85
    assert source.base.name == "convnet"
    x = np.zeros((2, 28, 28, 1), "float32")
    assert keras.ops.convert_to_numpy(source.model(x)).shape[0] == 2


def test_shipped_checksums_cover_every_file():
    folder = experiments.PACKAGED_WEIGHTS_DIR
    sums = json.loads((folder / "checksums.json").read_text())
    shipped = {p.name for p in folder.iterdir() if p.suffix in (".keras", ".json")}
    assert shipped - {"checksums.json"} == set(sums)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_tampered_shipped_weights_are_refused(damage, tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(experiments.PACKAGED_WEIGHTS_DIR, folder)
    model_file = next(folder.glob("fashion_a_to_b-*.keras"))
    data = bytearray(model_file.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    model_file.write_bytes(bytes(data))
    monkeypatch.setattr(experiments, "PACKAGED_WEIGHTS_DIR", folder)
    monkeypatch.setenv("TLRECIPES_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(ChecksumError, match=model_file.name):
        experiments.load_source_model("fashion_a_to_b")
