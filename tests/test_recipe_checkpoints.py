"""A recipe's checkpoint is resumed only on the images it was made from.

Two runs with the same `--checkpoint-dir` and a `--data-dir` that differs by
one pixel: the second refuses before training, with the one-line error a
recipe gives for bad input, and changes no file of the first run.
"""

import shutil

import keras
import numpy as np
import pytest

from tests.test_recipes import load_recipe, write_image_folder
from tlrecipes.lab import exit_on_value_error


def _files(directory):
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _exit_code_for_bad_input():
    """What a recipe exits with for a ValueError (SystemExit's rules)."""
    with pytest.raises(SystemExit) as info, exit_on_value_error():
        raise ValueError("bad input")
    code = info.value.code
    return code if isinstance(code, int) else 1


def test_another_data_dir_is_refused_and_changes_nothing(tmp_path, monkeypatch):
    first_images = write_image_folder(tmp_path / "first" / "pets")
    other_images = shutil.copytree(first_images, tmp_path / "other" / "pets")
    image = other_images / "dog" / "3.png"
    pixels = keras.utils.img_to_array(keras.utils.load_img(image)).astype("uint8")
    pixels[0, 0, 0] ^= 1  # one pixel of one image
    keras.utils.save_img(image, pixels)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    flags = (
        *("--backbone", "small_convnet", "--weights", "none", "--quick"),
        *("--seed", "3", "--checkpoint-dir", str(ckpt)),
    )
    main = load_recipe("two_phase_finetune").main
    first = main(["--data-dir", str(first_images), *flags, "--out", str(out / "a")])
    assert first["resumed_at_epoch"] is None and first["epochs"] == 2
    before = {"ckpt": _files(ckpt), "out": _files(out)}

    fits = []
    real_fit = keras.Model.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(kwargs.get("epochs"))
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", counting_fit)
    with pytest.raises(SystemExit) as info:
        main(["--data-dir", str(other_images), *flags, "--out", str(out / "b")])
    message = str(info.value)
    assert message.startswith("error: The checkpoint in") and "\n" not in message
    assert "data.run_key: checkpoint" in message
    assert "pass another checkpoint_dir" in message
    code = info.value.code
    assert (code if isinstance(code, int) else 1) == _exit_code_for_bad_input() != 0
    assert fits == []  # refused before any training
    assert {"ckpt": _files(ckpt), "out": _files(out)} == before
    assert not (out / "b").exists()


def test_the_run_key_depends_on_the_images_and_the_loading(tmp_path):
    images = write_image_folder(tmp_path / "pets", per_class=2)
    from tlrecipes.lab import folder_key

    loading = {"image_shape": (32, 32, 3), "batch_size": 8, "seed": 0, "quick": True}
    key = folder_key(images, loading)
    assert folder_key(images, {**loading, "seed": 1}) != key
    assert folder_key(images, {**loading, "image_shape": (64, 64, 3)}) != key
    np.testing.assert_equal(folder_key(images, dict(loading)), key)
