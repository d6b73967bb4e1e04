"""IDX files: damaged files are refused with a message that names them, reads cached."""

import numpy as np
import pytest

from tests.data_helpers import make_hermetic, write_fake_mnist, write_idx
from tlrecipes.lab.idx_files import read_idx
from tlrecipes.lab.offline_data import load_fashion_mnist


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    make_hermetic(monkeypatch, tmp_path)


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


def test_read_idx_rereads_a_changed_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, [1, 2, 3])
    assert read_idx(path).tolist() == [1, 2, 3]
    write_idx(path, [4, 5, 6, 7])
    assert read_idx(path).tolist() == [4, 5, 6, 7]
