"""Image folders: the tf.data contract, the layouts, held-out splits that never leak."""

import pathlib

import keras
import numpy as np
import pytest

from tests.data_helpers import make_hermetic
from tlrecipes.lab.folders import load_image_folder


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    make_hermetic(monkeypatch, tmp_path)


def make_folder(root: pathlib.Path, classes=("ant", "bee", "cat"), per_class=10):
    """PNGs of varied sizes whose constant pixel value identifies the file."""
    value = {}
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            v = 8 * (c * per_class + i)
            size = (10 + i, 12 + c)
            keras.utils.save_img(
                root / name / f"{i}.png", np.full((*size, 3), v, "uint8"), scale=False
            )
            value[v] = c
    return value


def values_and_labels(ds):
    out = []
    for images, labels in ds:
        images = images.numpy()
        assert np.all(images == images[:, :1, :1, :1])  # constant images stay constant
        out += list(
            zip(
                images[:, 0, 0, 0].astype(int).tolist(),
                labels.numpy().tolist(),
                strict=True,
            )
        )
    return out


def test_image_folder_follows_the_contract_and_never_leaks(tmp_path):
    value = make_folder(tmp_path / "pics")
    data = load_image_folder(
        tmp_path / "pics", image_size=(16, 20), batch_size=8, seed=1
    )
    assert data.class_names == ["ant", "bee", "cat"] and data.num_classes == 3
    assert data.image_shape == (16, 20, 3)
    assert data.num_examples == {"train": 21, "validation": 3, "test": 6}
    images, labels = next(iter(data.train))
    assert tuple(images.shape) == (8, 16, 20, 3) and images.dtype.name == "float32"
    assert labels.dtype.name == "int64"
    seen = {}
    for role in ("train", "validation", "test"):
        pairs = values_and_labels(getattr(data, role))
        assert all(value[v] == label for v, label in pairs)  # labels match folders
        seen[role] = {v for v, _ in pairs}
        assert len(seen[role]) == len(pairs) == data.num_examples[role]
    assert not seen["train"] & seen["test"]
    assert not seen["validation"] & seen["test"]
    assert not seen["train"] & seen["validation"]
    assert seen["train"] | seen["validation"] | seen["test"] == set(value)
    # The held-out splits are the same on every pass; the same seed, the same split.
    assert values_and_labels(data.test) == values_and_labels(data.test)
    again = load_image_folder(tmp_path / "pics", image_size=(16, 20), seed=1)
    assert {v for v, _ in values_and_labels(again.test)} == seen["test"]


def test_image_folder_with_train_and_test_subfolders(tmp_path):
    make_folder(tmp_path / "train", per_class=6)
    test_values = make_folder(tmp_path / "test", per_class=2)
    data = load_image_folder(
        tmp_path, image_size=12, validation_split=0, color_mode="grayscale"
    )
    assert data.validation is None and data.image_shape == (12, 12, 1)
    assert data.num_examples == {"train": 18, "test": 6}
    assert {v for v, _ in values_and_labels(data.test)} == set(test_values)
    assert f"{tmp_path}/test" in data.source


def test_image_folder_with_train_and_val_but_no_test_folder(tmp_path):
    train_values = make_folder(tmp_path / "train", per_class=10)
    val_values = make_folder(tmp_path / "val", per_class=1)
    data = load_image_folder(tmp_path, image_size=8, test_split=0.2, seed=2)
    assert data.class_names == ["ant", "bee", "cat"]
    assert data.num_examples == {"train": 24, "validation": 3, "test": 6}
    assert {v for v, _ in values_and_labels(data.validation)} == set(val_values)
    test = {v for v, _ in values_and_labels(data.test)}
    train = {v for v, _ in values_and_labels(data.train)}
    assert test <= set(train_values) and not test & train
    assert train | test == set(train_values)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    make_folder(tmp_path / "pics", per_class=2)
    with pytest.raises(ValueError, match="test_split"):
        load_image_folder(tmp_path / "pics", test_split=0)
    with pytest.raises(ValueError, match="leaves no training images"):
        load_image_folder(tmp_path / "pics", test_split=0.6, validation_split=0.5)
