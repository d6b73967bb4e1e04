"""Hashes that identify a run's inputs: `folder_key` for image folders."""

import shutil

import pytest

from tlrecipes.lab.fingerprints import folder_key


@pytest.fixture
def folder(tmp_path):
    """Two classes of small files named like images, and a note that is not one."""
    root = tmp_path / "images"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            (root / name / f"{i}.png").write_bytes(bytes([i, len(name)]) * 50)
    (root / "README.txt").write_text("not an image")
    return root


def test_the_same_files_give_the_same_key_wherever_the_folder_is(folder, tmp_path):
    key = folder_key(folder, {"image_size": 32})
    assert len(key) == 16 and int(key, 16) >= 0
    copy = shutil.copytree(folder, tmp_path / "copy")
    assert folder_key(copy, {"image_size": 32}) == key


def test_one_changed_byte_a_moved_file_or_a_new_image_give_another_key(folder):
    key = folder_key(folder)
    image = folder / "dog" / "2.png"
    data = bytearray(image.read_bytes())
    data[-1] ^= 1
    image.write_bytes(bytes(data))
    changed = folder_key(folder)
    assert changed != key
    image.rename(folder / "cat" / "9.png")  # the same bytes, another class
    moved = folder_key(folder)
    assert moved not in (key, changed)
    (folder / "cat" / "10.JPG").write_bytes(b"x")
    assert folder_key(folder) not in (key, changed, moved)


def test_settings_count_and_files_keras_does_not_read_do_not(folder):
    key = folder_key(folder, {"seed": 0})
    assert folder_key(folder, {"seed": 1}) != key
    assert folder_key(folder) != key
    (folder / "README.txt").write_text("edited")
    (folder / "cat" / "notes.csv").write_text("a,b")
    assert folder_key(folder, {"seed": 0}) == key


def test_a_missing_folder_is_refused_naming_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"`directory`.*Received: directory=.*Fix"):
        folder_key(tmp_path / "missing")
