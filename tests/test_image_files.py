"""lab.image_files: per-class splits, Keras' pixels, and folders refused by name."""

from pathlib import Path

import keras
import numpy as np
import pytest

from tlrecipes.lab.folders import load_image_folder
from tlrecipes.lab.image_files import (
    check_image_folder,
    image_files,
    read_images,
    split_per_class,
)


def write_pngs(folder: Path, n: int, start: int = 0, size=(8, 8)) -> list[Path]:
    """`n` PNGs whose constant pixel value (start, start+1, ...) names the file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{start + i}.png"
        keras.utils.save_img(path, np.full((*size, 3), start + i, "uint8"), scale=False)
        paths.append(path)
    return paths


def labels_of(ds) -> list[int]:
    return [int(y) for _, labels in ds for y in labels.numpy()]


def values_of(ds) -> list[int]:
    return [int(v) for images, _ in ds for v in images.numpy()[:, 0, 0, 0]]


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Fix:" in message
    return message


def test_a_class_of_two_images_trains_and_is_tested(tmp_path):
    # Before: the files of all classes were shuffled together and cut, so the 2
    # 'bee' images could both land in test (or validation) and never train.
    write_pngs(tmp_path / "ant", 20, start=0)
    write_pngs(tmp_path / "bee", 2, start=100)
    write_pngs(tmp_path / "cat", 3, start=200)
    for seed in range(6):
        data = load_image_folder(tmp_path, image_size=8, batch_size=4, seed=seed)
        counts = {
            role: np.bincount(labels_of(getattr(data, role)), minlength=3).tolist()
            for role in ("train", "validation", "test")
        }
        # ant: 4 test, 2 validation; bee: 1 test; cat: round(0.6) = 1 test.
        assert counts == {
            "train": [14, 1, 2],
            "validation": [2, 0, 0],
            "test": [4, 1, 1],
        }
        assert data.num_examples == {"train": 17, "validation": 2, "test": 6}


def test_split_per_class_follows_its_documented_rule():
    for n in range(1, 30):
        for test_split, validation_split in [(0.2, 0.1), (0.5, 0.4), (0.05, 0.0)]:
            train, val, test = split_per_class([0] * n, test_split, validation_split, 3)
            n_test = min(max(int(np.floor(n * test_split + 0.5)), n >= 2), n - 1)
            n_val = min(int(np.floor(n * validation_split + 0.5)), n - 1 - n_test)
            sizes = (len(test), len(val), len(train))
            assert sizes == (n_test, n_val, n - n_test - n_val)
            assert len(train) >= 1 and (n < 2 or len(test) >= 1)
            assert sorted([*train, *val, *test]) == list(range(n))  # a partition
    # test_split=0 (a test/ folder exists): nothing is held out as test.
    train, val, test = split_per_class([0, 0, 1, 1, 1], 0.0, 0.34, seed=0)
    assert len(test) == 0 and len(val) == 2 and len(train) == 3
    # Same seed, same split; another seed, another draw.
    labels = [0] * 10 + [1] * 10
    first = split_per_class(labels, 0.2, 0.1, seed=7)
    again = split_per_class(labels, 0.2, 0.1, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(
        set(split_per_class(labels, 0.2, 0.1, seed=s)[2]) != set(first[2])
        for s in range(8)
    )


@pytest.mark.parametrize("color_mode, channels", [("rgb", 3), ("grayscale", 1)])
def test_pixels_are_those_keras_reads(tmp_path, color_mode, channels):
    rng = np.random.default_rng(0)
    # RGB, grayscale and RGBA files of odd sizes, PNG and JPEG, in two classes.
    for c, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        for i, (h, w, ch) in enumerate([(7, 11, 3), (13, 5, 1), (9, 9, 4)]):
            pixels = rng.integers(0, 256, (h, w, ch)).astype("uint8")
            suffix = ".jpg" if (c + i) % 2 else ".png"
            if suffix == ".jpg" and ch == 4:
                pixels = pixels[..., :3]
            keras.utils.save_img(tmp_path / name / f"{i}{suffix}", pixels, scale=False)
    paths = [p for name in ["a", "b"] for p in image_files(tmp_path / name)]
    labels = [0, 0, 0, 1, 1, 1]
    ours = list(read_images(paths, labels, (10, 6), channels).as_numpy_iterator())
    theirs = keras.utils.image_dataset_from_directory(
        tmp_path,
        image_size=(10, 6),
        color_mode=color_mode,
        batch_size=None,
        shuffle=False,
        verbose=False,
    )
    assert [str(p) for p in paths] == theirs.file_paths  # the same files, in order
    for (image, label), (expected, expected_label) in zip(
        ours, theirs.as_numpy_iterator(), strict=True
    ):
        assert image.dtype == np.float32 and image.shape == (10, 6, channels)
        np.testing.assert_array_equal(image, expected)
        assert label == expected_label
    # load_image_folder gives the same pixels: every one of its images is one
    # of Keras' images.
    data = load_image_folder(
        tmp_path, image_size=(10, 6), color_mode=color_mode, test_split=0.4
    )
    keras_images = [expected for expected, _ in theirs.as_numpy_iterator()]
    for role in ("train", "test"):
        for images, _ in getattr(data, role):
            for image in images.numpy():
                assert any(np.array_equal(image, k) for k in keras_images)


def test_hidden_files_are_skipped(tmp_path):
    write_pngs(tmp_path / "a", 2)
    (tmp_path / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07")  # macOS copy
    assert [p.name for p in image_files(tmp_path / "a")] == ["0.png", "1.png"]


def test_check_image_folder_refuses_unread_formats_beside_images(tmp_path):
    root = tmp_path / "data"
    write_pngs(root / "cat", 3)
    write_pngs(root / "dog", 3)
    for name in ["x.webp", "y.WEBP", "z.tiff"]:
        (root / "dog" / name).write_bytes(b"RIFF0000WEBPVP8 ")
    (root / "dog" / "notes.txt").write_text("not an image: not counted")
    with pytest.raises(ValueError) as err:
        check_image_folder(root)
    message = one_line(err)
    assert f"{root / 'dog'}: 3 file(s) ['.tiff', '.webp']" in message
    assert "cat" not in message.split("where")[1].split("would")[0]
    assert "to PNG or JPEG" in message and "move them out" in message
    # A test/ folder's classes are checked too.
    split = tmp_path / "split"
    write_pngs(split / "train" / "cat", 2)
    write_pngs(split / "train" / "dog", 2)
    write_pngs(split / "test" / "cat", 1)
    (split / "test" / "cat" / "1.heic").write_bytes(b"....")
    with pytest.raises(ValueError, match=r"test/cat: 1 file\(s\) \['.heic'\]"):
        check_image_folder(split)
    (split / "test" / "cat" / "1.heic").unlink()
    assert check_image_folder(split) == ["cat", "dog"]
    # A class of only unread files is still refused as holding no images.
    only = tmp_path / "only"
    write_pngs(only / "cat", 2)
    (only / "dog").mkdir()
    (only / "dog" / "a.webp").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match=r"\['dog'\] in .* hold no images"):
        check_image_folder(only)


def test_check_image_folder_names_corrupt_images(tmp_path):
    root = tmp_path / "data"
    write_pngs(root / "cat", 3)
    good = write_pngs(root / "dog", 3, start=10)
    truncated = root / "dog" / "cut.png"
    truncated.write_bytes(good[0].read_bytes()[:40])
    fake = root / "cat" / "fake.jpg"
    fake.write_text("<html>404</html>")
    with pytest.raises(ValueError) as err:
        check_image_folder(root)
    message = one_line(err)
    assert "2 of 8 files are corrupt or not images" in message
    assert f"{str(fake)!r}: Unknown image file format" in message
    assert f"{str(truncated)!r}: " in message and "PNG" in message
    assert "{{" not in message and "[Op:" not in message
    # The check is what names the files: the loader itself fails without a name.
    data = load_image_folder(root, image_size=8)
    with pytest.raises(Exception, match="PNG|image file format") as raw:
        for role in ("train", "validation", "test"):
            list(getattr(data, role))
    assert "cut.png" not in str(raw.value) and "fake.jpg" not in str(raw.value)
    assert check_image_folder(root, verify=False) == ["cat", "dog"]
    truncated.unlink()
    fake.unlink()
    assert check_image_folder(root) == ["cat", "dog"]


def test_a_test_folder_without_a_class_is_refused(tmp_path):
    write_pngs(tmp_path / "train" / "cat", 2)
    write_pngs(tmp_path / "train" / "dog", 2)
    write_pngs(tmp_path / "test" / "cat", 1)
    with pytest.raises(ValueError) as err:
        load_image_folder(tmp_path, image_size=8)
    message = one_line(err)
    assert "test/ folder without the class folders ['dog']" in message
    write_pngs(tmp_path / "test" / "dog", 1, start=50)
    data = load_image_folder(tmp_path, image_size=8, validation_split=0)
    assert sorted(labels_of(data.test)) == [0, 1]
    assert sorted(values_of(data.test)) == [0, 50]
    write_pngs(tmp_path / "test" / "owl", 1, start=90)  # a class train/ lacks
    with pytest.raises(ValueError) as err:
        load_image_folder(tmp_path, image_size=8, validation_split=0)
    assert "class folders ['owl'] that" in one_line(err)
