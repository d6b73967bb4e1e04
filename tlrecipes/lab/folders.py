"""Your own images, one subfolder per class, as tf.data pipelines."""

from __future__ import annotations

import contextlib
import io
import math
import os
import pathlib
from collections.abc import Sequence

import keras

from tlrecipes.lab.checks import check_image_size, positive_int
from tlrecipes.lab.imagesplits import StreamingSplits
from tlrecipes.lab.tf_pipelines import (
    AUTO_CACHE_BYTES,
    finish_pipeline,
    import_tensorflow,
)

__all__ = ["load_image_folder"]


def load_image_folder(
    directory: str | os.PathLike,
    image_size: int | Sequence[int] = (160, 160),
    batch_size: int = 32,
    *,
    validation_split: float = 0.1,
    test_split: float = 0.2,
    seed: int = 0,
    color_mode: str = "rgb",
    cache: bool | None = None,
) -> StreamingSplits:
    """Loads your own images, one subfolder per class, as tf.data pipelines.

    The standard layout `directory/<class>/<image>` (or
    `directory/train/<class>/...` with optional `directory/test/` and
    `directory/validation/` or `directory/val/` beside it) is read with
    `keras.utils.image_dataset_from_directory`, and returned with the same
    contract as `load_tfds`: float32 images in [0, 255] resized to
    `image_size`, int64 labels, batched, cached when small, prefetched.
    Without a `test/` folder, a seeded `test_split` fraction of the files is
    held out as test; without a validation folder, a `validation_split`
    fraction is held out as validation. Both come from the training folder
    only, never from `test/`. Class names are the subfolder
    names in alphabetical order, identical across splits.

    Args:
        directory: The folder of class subfolders (or of train/test folders).
        image_size: `(height, width)` every image is resized to, or one int.
            Defaults to `(160, 160)`.
        batch_size: Images per batch. Defaults to 32.
        validation_split: Fraction of the (non-test) files used for
            validation; 0 for none. Defaults to 0.1.
        test_split: Fraction of all files held out as test when there is no
            `test/` folder. Defaults to 0.2.
        seed: Seed of the file split and the training shuffle. Defaults to 0.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`. Defaults to `"rgb"`.
        cache: Cache decoded images in memory: True, False, or None to cache
            when the estimate is under 2 GiB. Defaults to None.

    Returns:
        `StreamingSplits` with `train`, `test`, `validation` (None if
        `validation_split=0` and there is no validation folder), class names and
        image shape.

    Raises:
        ImportError: If TensorFlow is not installed.
        ValueError: If the directory does not exist, the fractions are out of
            range, or a split would hold no images.

    Example:

    >>> import os, tempfile
    >>> import numpy as np, keras
    >>> from tlrecipes.lab.folders import load_image_folder
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.makedirs(os.path.join(root, name))
    ...     for i in range(10):
    ...         keras.utils.save_img(os.path.join(root, name, f"{i}.png"),
    ...                              np.full((8, 8, 3), 20 * i, "uint8"))
    >>> pets = load_image_folder(root, image_size=(32, 32), batch_size=4)
    >>> pets.class_names, pets.image_shape, pets.num_examples
    (['cat', 'dog'], (32, 32, 3), {'train': 14, 'validation': 2, 'test': 4})
    """
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise ValueError(
            f"Received an invalid value for `directory`, expected a folder of "
            f"class subfolders. Received: directory={str(directory)!r}, which "
            "does not exist. Fix: point it at your images, laid out as "
            "directory/<class name>/<image files>."
        )
    size = check_image_size(image_size)
    batch_size = positive_int(batch_size, "batch_size", "e.g. batch_size=32.")
    for value, arg in (
        (validation_split, "validation_split"),
        (test_split, "test_split"),
    ):
        if not 0 <= value < 1:
            raise ValueError(
                f"Received an invalid value for `{arg}`, expected a fraction in "
                f"[0, 1). Received: {arg}={value!r}. Fix: e.g. {arg}=0.2."
            )
    tf = import_tensorflow()
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}.get(color_mode)
    if channels is None:
        raise ValueError(
            "Received an invalid value for `color_mode`, expected 'rgb', "
            f"'grayscale' or 'rgba'. Received: color_mode={color_mode!r}."
        )

    def read(folder: pathlib.Path, **kwargs):
        # Keras prints "Using N files for ..." even with verbose=False; the
        # counts we report (with validation and test told apart) are in
        # `source` and `num_examples`.
        with contextlib.redirect_stdout(io.StringIO()):
            return keras.utils.image_dataset_from_directory(
                folder,
                image_size=size,
                batch_size=None,
                color_mode=color_mode,
                seed=seed,
                verbose=False,
                **kwargs,
            )

    # Layout: root/<class>/..., or root/train/<class>/... with optional
    # root/test/ and root/validation/ (or root/val/) beside it.
    train_root = root / "train" if (root / "train").is_dir() else root
    split_layout = train_root != root
    test_dir = root / "test" if split_layout and (root / "test").is_dir() else None
    val_dir = None
    if split_layout:
        val_dir = next(
            (root / n for n in ("validation", "val") if (root / n).is_dir()), None
        )
    val_fraction = 0.0 if val_dir is not None else validation_split
    test_fraction = 0.0 if test_dir is not None else test_split
    if test_dir is None and not test_split:
        raise ValueError(
            f"{root} has no test/ folder, so test images must be held out, "
            "expected test_split > 0. Received: test_split=0. Fix: pass e.g. "
            "test_split=0.2, or lay the images out as train/ and test/."
        )
    held_fraction = val_fraction + test_fraction
    if held_fraction >= 1:
        raise ValueError(
            "Received test_split + validation_split >= 1, which leaves no "
            f"training images. Received: test_split={test_split}, "
            f"validation_split={validation_split}. Fix: e.g. 0.2 and 0.1."
        )
    if held_fraction:
        train, held = read(train_root, validation_split=held_fraction, subset="both")
        n_held = len(held.file_paths)
    else:
        train, held, n_held = read(train_root), None, 0
    class_names = list(train.class_names)
    counts = {"train": len(train.file_paths)}
    # `held` is unshuffled, in a seeded random file order: take / skip split it
    # into validation and test the same way on every pass.
    n_val = int(round(n_held * val_fraction / held_fraction)) if held_fraction else 0
    if val_dir is not None:
        validation = read(val_dir, shuffle=False, class_names=class_names)
        counts["validation"] = len(validation.file_paths)
    elif n_val:
        validation = held.take(n_val)
        counts["validation"] = n_val
    else:
        validation = None
    if test_dir is not None:
        test = read(test_dir, shuffle=False, class_names=class_names)
        counts["test"] = len(test.file_paths)
    else:
        test = held.skip(n_val)
        counts["test"] = n_held - n_val
    if counts["test"] < 1:
        raise ValueError(
            f"{train_root} holds too few images ({sum(counts.values())}) to hold "
            f"out a test split with test_split={test_split}. Fix: add images or "
            "raise test_split."
        )
    used = [train_root, val_dir, test_dir]
    layout = ", ".join(str(folder) for folder in used if folder is not None)

    image_shape = (*size, channels)
    if cache is None:
        cache = sum(counts.values()) * math.prod(image_shape) * 4 <= AUTO_CACHE_BYTES

    def cast(image, label):
        return tf.ensure_shape(tf.cast(image, tf.float32), image_shape), tf.cast(
            label, tf.int64
        )

    pipelines = {}
    for role, ds in (("train", train), ("validation", validation), ("test", test)):
        if ds is None:
            continue
        ds = ds.map(cast, num_parallel_calls=tf.data.AUTOTUNE)
        pipelines[role] = finish_pipeline(
            ds,
            training=role == "train",
            batch_size=batch_size,
            cache=cache,
            seed=seed,
            shuffle_buffer=max(1, min(counts[role], 10_000)),
        )
    total = sum(counts.values())
    source = (
        f"image folder {layout}: {total:,} images in {len(class_names)} classes "
        f"({', '.join(f'{role} {n:,}' for role, n in counts.items())}; seed {seed})"
    )
    return StreamingSplits(
        train=pipelines["train"],
        test=pipelines["test"],
        validation=pipelines.get("validation"),
        class_names=class_names,
        image_shape=image_shape,
        source=source,
        num_examples=counts,
    )
