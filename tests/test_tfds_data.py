"""tensorflow-datasets under mock_data: shapes, documented splits, clear errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.data_helpers import make_hermetic
from tlrecipes.lab.offline_data import OFFLINE_ENV
from tlrecipes.lab.tfds_data import load_tfds, load_tfds_arrays


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    make_hermetic(monkeypatch, tmp_path)


@pytest.mark.parametrize(
    "name, image_size, shape, num_classes",
    [
        ("mnist", None, (28, 28, 1), 10),
        ("cifar10", None, (32, 32, 3), 10),
        ("tf_flowers", (40, 48), (40, 48, 3), 5),
        ("eurosat/rgb", 32, (32, 32, 3), 10),
    ],
)
def test_load_tfds_under_mock_data(name, image_size, shape, num_classes):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=10):
        data = load_tfds(name, image_size, batch_size=4)
        batches = list(data.train)
        test_batches = list(data.test)
    assert data.image_shape == shape and data.num_classes == num_classes
    assert len(data.class_names) == num_classes
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    images, labels = batches[0]
    assert tuple(images.shape) == (4, *shape) and images.dtype.name == "float32"
    assert labels.dtype.name == "int64"
    assert float(images.numpy().max()) <= 255.0
    assert all(0 <= int(v) < num_classes for _, lab in test_batches for v in lab)
    assert name in data.source


def test_load_tfds_uses_the_documented_splits():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=4):
        flowers = load_tfds("tf_flowers", 16)
        digits = load_tfds("mnist", channels=3)
        custom = load_tfds("cifar10", splits={"train": "test", "test": "train"})
    assert "'test': 'train[80%:]'" in flowers.source
    assert "'train': 'train'" in digits.source and digits.image_shape == (28, 28, 3)
    assert tuple(next(iter(digits.train))[0].shape) == (4, 28, 28, 3)
    assert "'train': 'test'" in custom.source


def test_load_tfds_errors_are_clear():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(ValueError, match="vary in size.*image_size=\\(160, 160\\)"):
            load_tfds("tf_flowers")
        with pytest.raises(ValueError, match="`splits`"):
            load_tfds("mnist", splits={"train": "train"})
        with pytest.raises(ValueError, match="`channels`"):
            load_tfds("mnist", channels=2)
        with pytest.raises(ValueError, match="`image_size`"):
            load_tfds("mnist", image_size=(0, 4))


def test_load_tfds_offline_without_a_prepared_copy_says_how_to_fix(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="no prepared copy of 'mnist'") as info:
        load_tfds("mnist", data_dir=str(tmp_path))
    assert str(tmp_path) in str(info.value) and "go online" in str(info.value)
    assert f"${OFFLINE_ENV} is set" in str(info.value)


def test_load_tfds_arrays_gives_imagesplits():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        everything = load_tfds_arrays("cifar100")
        data = load_tfds_arrays("cifar100", classes=[3, 1])
        flowers = load_tfds_arrays("tf_flowers", 20)
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (32, 32, 3)
    assert everything.x_train.shape == (12, 32, 32, 3) and everything.num_classes == 100
    assert data.class_names == [everything.class_names[3], everything.class_names[1]]
    keep = np.isin(everything.y_train, [3, 1])
    np.testing.assert_array_equal(data.x_train, everything.x_train[keep])
    assert set(np.unique(data.y_train)) <= {0, 1}
    assert flowers.x_train.shape == (12, 20, 20, 3) and flowers.num_classes == 5


def test_module_imports_without_tensorflow_on_jax():
    pytest.importorskip("jax", reason="the jax backend is not installed")
    code = (
        "import sys, tlrecipes.lab.imagesplits, tlrecipes.lab.idx_files, "
        "tlrecipes.lab.offline_data, tlrecipes.lab.tfds_data, "
        "tlrecipes.lab.folders, tlrecipes.lab.sampling, "
        "tlrecipes.lab.backbone_input, tlrecipes.lab.tasks; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'tensorflow_datasets' not in sys.modules"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
