"""Source models: trained once, cached, found again in the cache or the package."""

import json
import shutil

import keras
import numpy as np
import pytest

from tests.experiment_helpers import (
    TINY_SOURCE,
    TINY_TRAIN,
    same,
    tiny_source_base,
    tiny_splits,
)
from tlrecipes.heads import add_head
from tlrecipes.lab import sources
from tlrecipes.lab.array_splits import as_array_splits
from tlrecipes.lab.experiments import size_sweep
from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.sources import (
    SourceModel,
    load_source_model,
    source_key,
    train_source_model,
)
from tlrecipes.safe_loading import ChecksumError, sha256_file


def test_train_source_model_saves_and_reuses_cache(tmp_path, fits):
    data = tiny_splits()
    source = train_source_model(data, TINY_SOURCE, seed=0, cache_dir=tmp_path)
    assert not source.cached and len(fits) == 1
    assert source.path.suffix == ".keras" and source.path.exists()
    record = json.loads(source.path.with_suffix(".json").read_text())
    assert record["config"] == TINY_SOURCE.to_dict()
    assert record["seed"] == 0 and record["data"]["n_train"] == 36
    assert 0.0 <= record["metrics"]["test_accuracy"] <= 1.0
    assert record["versions"]["keras"] == keras.version()
    assert source.base.name == "convnet" and source.config == TINY_SOURCE

    again = train_source_model(data, TINY_SOURCE, seed=0, cache_dir=tmp_path)
    assert again.cached and len(fits) == 1  # loaded, not trained
    x = data[2][:4]
    np.testing.assert_allclose(
        again.model.predict(x, verbose=0), source.model.predict(x, verbose=0), atol=1e-6
    )
    rows = size_sweep(
        again, data, sizes=[2], seeds=[0], strategies=["fine_tune_all"],
        config=TINY_TRAIN, progress=False,
    )  # fmt: skip
    assert rows[0]["n_train"] == 6 and len(fits) == 2  # a SourceModel feeds experiments
    changed = {**TINY_SOURCE.to_dict(), "width": 2}
    train_source_model(data, changed, cache_dir=tmp_path)  # another config: trains
    identity = as_array_splits(data, "data").identity
    key = source_key(TINY_SOURCE, identity, seed=0)
    assert key == source.info["key"] != source_key(TINY_SOURCE, identity, 1)
    train_source_model(data, TINY_SOURCE, seed=0, cache_dir=tmp_path, retrain=True)
    assert len(fits) == 4


def test_load_source_model_searches_cache_then_package(tmp_path, monkeypatch, fits):
    data = tiny_splits()
    trained = train_source_model(data, TINY_SOURCE, cache_dir=tmp_path / "cache")
    packaged = tmp_path / "package_weights"
    packaged.mkdir()
    for suffix in (".keras", ".json"):
        shutil.copy(trained.path.with_suffix(suffix), packaged)
    monkeypatch.setattr(sources, "PACKAGED_WEIGHTS_DIR", packaged)
    # Shipped files are verified against checksums.json before loading.
    with pytest.raises(ChecksumError, match="no entry"):
        load_source_model(data, TINY_SOURCE, cache_dir=tmp_path / "empty")
    sums = {f.name: sha256_file(f) for f in packaged.iterdir()}
    (packaged / "checksums.json").write_text(json.dumps(sums))
    shipped = load_source_model(data, TINY_SOURCE, cache_dir=tmp_path / "empty")
    assert shipped.cached and shipped.info["key"] == trained.info["key"]
    assert load_source_model(trained.path).info == trained.info
    assert len(fits) == 1
    with pytest.raises(FileNotFoundError, match="seed=5.*Searched.*train_source_model"):
        load_source_model(data, TINY_SOURCE, seed=5, cache_dir=tmp_path / "empty")


def test_source_model_by_task_name_needs_no_data_when_cached(tmp_path, monkeypatch):
    from tlrecipes.lab import tasks
    from tlrecipes.lab.tasks import Task, register_task

    # Register into a copy of the registry, so other tests never see this task.
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))

    loads = []
    x_train, y_train, x_test, y_test = tiny_splits()

    def load_source():
        loads.append("source")
        return ImageSplits(
            x_train, y_train, x_test, y_test, ["a", "b", "c"], "synthetic"
        )

    register_task(
        Task(
            "test_synthetic_pair",
            "Synthetic brightness classes, for tests.",
            "similar",
            (8, 8, 1),
            ("a", "b", "c"),
            ("a", "b", "c"),
            load_target=load_source,
            load_source=load_source,
        ),
        overwrite=True,
    )
    trained = train_source_model("test_synthetic_pair", TINY_SOURCE, cache_dir=tmp_path)
    assert trained.path.name.startswith("test_synthetic_pair-") and loads == ["source"]
    assert trained.info["data"]["class_names"] == ["a", "b", "c"]
    loaded = load_source_model("test_synthetic_pair", TINY_SOURCE, cache_dir=tmp_path)
    again = train_source_model("test_synthetic_pair", TINY_SOURCE, cache_dir=tmp_path)
    assert loaded.cached and again.cached and loads == ["source"]  # no data read


def test_copy_base_is_independent():
    source = SourceModel(add_head(tiny_source_base(), 3), {})
    copy = source.copy_base()
    assert copy.name == "convnet" and same(
        copy.get_layer("block1_bn"), source.base.get_layer("block1_bn")
    )
    kernel = copy.get_layer("block1_conv").kernel
    kernel.assign(np.zeros(kernel.shape, "float32"))
    assert not same(copy.get_layer("block1_conv"), source.base.get_layer("block1_conv"))
