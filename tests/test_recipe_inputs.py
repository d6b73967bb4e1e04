"""lab.recipe_inputs: what the recipes take in, checked with one-line errors."""

from pathlib import Path

import keras
import numpy as np
import pytest

import tlrecipes.lab
from tlrecipes import add_head
from tlrecipes.lab import (
    base_layer_name,
    build_base,
    check_image_folder,
    check_out_folder,
    copy_base_weights,
    cut_base,
    epochs_or_auto,
    exit_on_value_error,
    first_batches,
    load_image_folder,
    saved_base,
)

SHIPPED = Path(tlrecipes.lab.__file__).parent / "weights"


def touch_images(root: Path, classes: dict[str, list[str]]) -> Path:
    """Writes each file as a 2x2 PNG (TensorFlow reads .bmp/.gif/.jpg by content)."""
    for name, files in classes.items():
        (root / name).mkdir(parents=True)
        for file in files:
            (root / name / file).parent.mkdir(parents=True, exist_ok=True)
            keras.utils.save_img(
                root / name / file, np.zeros((2, 2, 3), "uint8"), file_format="png"
            )
    return root


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Fix:" in message
    return message


def test_check_image_folder_returns_the_classes_of_either_layout(tmp_path):
    flat = touch_images(
        tmp_path / "flat", {"b": ["1.JPG", "2.jpeg"], "a": ["x/2.png", "3.bmp"]}
    )
    assert check_image_folder(flat) == ["a", "b"]  # nested files, any case
    # With a test/ folder nothing is held out of train/: 1 image per class is OK.
    touch_images(tmp_path / "split" / "train", {"x": ["1.png"], "y": ["2.gif"]})
    (tmp_path / "split" / "test").mkdir()
    assert check_image_folder(tmp_path / "split") == ["x", "y"]
    pairs = {"a": ["1.png", "2.png"], "b": ["2.png", "3.png"]}
    hidden = touch_images(tmp_path / "hidden", pairs)
    (hidden / ".ipynb_checkpoints").mkdir()
    assert check_image_folder(str(hidden)) == ["a", "b"]


@pytest.mark.parametrize(
    "classes, expected",
    [
        ({"cat": ["notes.txt"], "dog": []}, "holds no images"),
        ({"cat": ["1.png"], "dog": ["readme.md"]}, "['dog']"),
        ({"cat": ["1.png", "2.png"]}, "1 class (cat)"),
        # A class of one image would be held out whole, or never tested.
        (
            {"cat": ["1.png", "2.png"], "dog": ["1.png"], "fox": ["1.png", "2.png"]},
            "class 'dog' has 1 image (minimum 2)",
        ),
        # Files keras does not read are named, never counted as 0 images.
        (
            {"cat": ["1.png", "2.png"], "dog": ["a.webp", "b.WEBP", "n.txt"]},
            "folders ['dog'] in",
        ),
        ({"cat": ["1.webp"], "dog": ["2.webp"]}, "cat: ['.webp'], dog: ['.webp']"),
    ],
)
def test_check_image_folder_rejects_bad_folders(tmp_path, classes, expected):
    root = touch_images(tmp_path / "data", classes)
    with pytest.raises(ValueError) as err:
        check_image_folder(root)
    assert expected in one_line(err) and "data_dir=" in str(err.value)


def test_check_image_folder_names_unread_suffixes_and_small_classes(tmp_path):
    root = touch_images(
        tmp_path / "webp", {"cat": ["1.png", "2.png"], "dog": ["a.webp", "n.txt"]}
    )
    with pytest.raises(ValueError) as err:
        check_image_folder(root)
    assert "(dog: ['.txt', '.webp'])" in one_line(err)
    assert "convert other formats (.webp, .tiff, ...) to PNG or JPEG" in str(err.value)
    # train/ without test/: the test images come from train/, so 2 per class.
    touch_images(tmp_path / "t" / "train", {"x": ["1.png"], "y": ["1.png", "2.png"]})
    with pytest.raises(ValueError) as err:
        check_image_folder(tmp_path / "t")
    message = one_line(err)
    assert "'x' has 1 image" in message and "minimum 2" in message
    assert "['x']" in message and "train/ and test/" in message


def test_check_out_folder_refuses_earlier_outputs_unless_overwrite(tmp_path):
    files = ["model.keras", "metrics.json", "learning_curve.png"]
    assert check_out_folder(tmp_path / "new" / "run", files) == []
    assert not (tmp_path / "new").exists()  # nothing is created
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert check_out_folder(out, files) == []  # other files do not count
    (out / "metrics.json").write_text("old")
    (out / "model.keras").write_text("old")
    with pytest.raises(ValueError) as err:
        check_out_folder(out, files)
    message = one_line(err)
    assert f"out={str(out)!r}" in message
    assert "already holds ['model.keras', 'metrics.json']" in message
    assert "a new --out, or --overwrite" in message
    replaced = check_out_folder(out, files, overwrite=True)
    assert replaced == [out / "model.keras", out / "metrics.json"]
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "model.keras",
        "notes.txt",
    ]  # nothing deleted
    assert (out / "metrics.json").read_text() == "old"
    with pytest.raises(ValueError) as err:
        check_out_folder(out / "notes.txt", files, overwrite=True)
    assert "which is a file" in one_line(err)


def test_check_image_folder_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ValueError) as err:
        check_image_folder(tmp_path / "missing")
    assert "does not exist" in one_line(err)


def test_build_base_scales_images_for_each_backbone():
    base, preprocessing = build_base("small_convnet", None, image_size=32)
    assert base.name == "small_convnet" and base.input_shape == (None, 32, 32, 3)
    images = np.full((1, 2, 2, 3), 255.0, "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(preprocessing(images)), 1.0)
    # ImageNet backbones (tlrecipes.application) scale their inputs inside.
    base, preprocessing = build_base("MobileNet_V2", "none", image_size=32)
    assert preprocessing is None and base.output_shape == (None, 1, 1, 1280)
    assert base.get_layer("preprocessing").mode == "tf"  # [0, 255] -> [-1, 1]
    base, preprocessing = build_base("efficientnet_lite0", "none", image_size=32)
    assert preprocessing is None and base.output_shape == (None, 1, 1, 1280)
    assert base.get_layer("preprocessing").mode == "lite"
    model = add_head(base, 2, preprocessing=preprocessing)  # None: nothing added
    assert [layer.name for layer in model.layers[:2]] == ["image", base.name]


def test_build_base_takes_the_channels_of_a_shipped_grayscale_source():
    shipped = sorted(SHIPPED.glob("fashion_to_mnist-*.keras"))
    assert shipped, f"no shipped source model in {SHIPPED}"
    base, preprocessing = build_base("small_convnet", shipped[0], image_size=32)
    assert base.input_shape == (None, 32, 32, 1)
    source = saved_base(shipped[0])
    np.testing.assert_array_equal(
        base.get_layer("block1_conv").get_weights()[0],
        source.get_layer("block1_conv").get_weights()[0],
    )
    model = add_head(base, 3, preprocessing=preprocessing)
    assert model.input_shape == (None, 32, 32, 1)


def test_build_base_rejects_bad_names_and_weights(tmp_path):
    with pytest.raises(ValueError, match="mobilenetv2.*small_convnet"):
        build_base("mobilenetv9", "none", 32)
    with pytest.raises(ValueError, match="no ImageNet weights") as err:
        build_base("small_convnet", "imagenet", 32)
    one_line(err)
    with pytest.raises(ValueError, match="is not imagenet, none") as err:
        build_base("small_convnet", tmp_path / "nope.keras", 32)
    one_line(err)


@pytest.fixture
def saved_model(tmp_path) -> tuple[keras.Model, Path]:
    base, _ = build_base("small_convnet", "none", image_size=32)
    for layer in base.layers:  # weights that fresh layers cannot have by chance
        layer.set_weights([w + 0.5 for w in layer.get_weights()])
    path = tmp_path / "model.keras"
    add_head(base, 3).save(path)
    return base, path


def test_build_base_and_copy_base_weights_reuse_a_saved_base(saved_model):
    source, path = saved_model
    base, _ = build_base("small_convnet", path, image_size=32)
    for a, b in zip(source.get_weights(), base.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    fresh, _ = build_base("small_convnet", "none", image_size=32)
    assert copy_base_weights(fresh, path) == 6
    np.testing.assert_array_equal(
        fresh.get_layer("block3_bn").get_weights()[2],
        source.get_layer("block3_bn").get_weights()[2],
    )


def test_copy_base_weights_rejects_another_backbone(saved_model):
    _, path = saved_model
    other, _ = build_base("mobilenetv2", "none", image_size=32)
    with pytest.raises(ValueError, match="lacks") as err:
        copy_base_weights(other, path)
    one_line(err)
    wider = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, name="block1_conv")]
    )
    with pytest.raises(ValueError, match="block1_conv"):
        copy_base_weights(wider, path)


def test_saved_base_returns_the_nested_base_or_says_why_not(saved_model, tmp_path):
    source, path = saved_model
    base = saved_base(path)
    assert base.name == "small_convnet"
    np.testing.assert_array_equal(base.get_weights()[0], source.get_weights()[0])
    flat = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="flat")
    flat.save(tmp_path / "flat.keras")
    with pytest.raises(ValueError, match="nests no single base") as err:
        saved_base(tmp_path / "flat.keras")
    one_line(err)
    with pytest.raises(ValueError, match="does not exist"):
        saved_base(tmp_path / "missing.keras")


def test_base_layer_name_takes_names_and_indices():
    base, _ = build_base("small_convnet", "none", image_size=32)
    names = [layer.name for layer in base.layers]
    assert base_layer_name(base, 5) == base_layer_name(base, "5") == names[5]
    assert base_layer_name(base, "-1") == names[-1]
    assert base_layer_name(base, "block2_bn") == "block2_bn"
    with pytest.raises(ValueError, match=f"0 to {len(names) - 1}"):
        base_layer_name(base, len(names))
    with pytest.raises(ValueError, match="block2_conv") as err:
        base_layer_name(base, "block2_con")
    one_line(err)


def test_cut_base_shares_weights_and_checks_its_arguments():
    base, _ = build_base("small_convnet", "none", image_size=32)
    assert cut_base(base) is base
    cut = cut_base(base, after_block=1)
    assert cut.output_shape == (None, 16, 16, 32)
    assert cut.get_layer("block1_conv") is base.get_layer("block1_conv")
    assert cut_base(base, at_layer="5").output_shape == (None, 16, 16, 64)
    with pytest.raises(ValueError, match="at most one"):
        cut_base(base, after_block=1, at_layer="block1_pool")
    with pytest.raises(ValueError, match="after_block=9") as err:
        cut_base(base, after_block=9)
    assert "\n" not in str(err.value)
    mobilenet, _ = build_base("mobilenetv2", "none", image_size=32)
    with pytest.raises(ValueError, match="at_layer"):
        cut_base(mobilenet, after_block=2)


def test_first_batches_cuts_every_split(tmp_path):
    root = tmp_path / "pets"
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(10):
            image = np.full((8, 8, 3), 40 * c + i, "uint8")
            keras.utils.save_img(root / name / f"{i}.png", image)
    data = load_image_folder(root, image_size=8, batch_size=2)
    assert first_batches(data, None) == (data.train, data.validation, data.test)
    train, validation, test = first_batches(data, 1)
    assert [len(list(ds)) for ds in (train, validation, test)] == [1, 1, 1]
    assert len(list(data.train)) == 7  # 14 images, batches of 2: the data is kept
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="batches"):
            first_batches(data, bad)


def test_epochs_or_auto():
    assert epochs_or_auto("auto") == epochs_or_auto(" AUTO ") == "auto"
    assert epochs_or_auto("12") == epochs_or_auto(12) == 12
    for bad in ("0", "-1", "1.5", "ten", True, None):
        with pytest.raises(ValueError, match="'auto' or a positive integer"):
            epochs_or_auto(bad)


def test_exit_on_value_error_turns_only_value_errors_into_one_line_exits():
    with pytest.raises(SystemExit) as err:
        with exit_on_value_error():
            raise ValueError("bad value.\n  Fix: another one.")
    assert str(err.value) == "error: bad value. Fix: another one."
    with pytest.raises(KeyError):  # a bug keeps its traceback
        with exit_on_value_error():
            raise KeyError("x")
    with exit_on_value_error():
        pass  # nothing raised: nothing happens
