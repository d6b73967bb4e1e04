"""Class splits, balanced nested samples and validation carved from training only."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.data_helpers import debian_fashion, make_hermetic, needs_debian, row_hashes
from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.sampling import (
    random_class_split,
    sample_indices_per_class,
    sample_per_class,
    select_classes,
    split_by_class,
    train_val_indices,
    train_val_split,
)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    make_hermetic(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def fashion() -> ImageSplits:
    return debian_fashion()


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
