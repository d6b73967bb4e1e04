"""Your own images, one subfolder per class, as tf.data pipelines."""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence

from tlrecipes.lab.checks import check_image_size, positive_int
from tlrecipes.lab.image_files import (
    IMAGE_SUFFIXES,
    class_folders,
    folder_layout,
    image_files,
    read_images,
    split_per_class,
)
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
    `directory/validation/` or `directory/val/` beside it) is returned with the
    same contract as `load_tfds`: float32 images in [0, 255] resized to
    `image_size`, int64 labels, batched, cached when small, prefetched. The
    pixels are those `keras.utils.image_dataset_from_directory` gives (the
    same decoding, channel conversion and bilinear resize); the files read are
    the `IMAGE_SUFFIXES` files under each class folder, hidden ones skipped.
    Class names are the subfolder names in alphabetical order, identical
    across splits.

    Without a `test/` folder, test images are held out of each class
    separately (stratified), and so are validation images without a
    validation folder; both come from the training folder only, never from
    `test/`. For a class of `n` images: `n_test = floor(n * test_split + 0.5)`,
    at least 1 when `n >= 2`, at most `n - 1`; then
    `n_val = floor(n * validation_split + 0.5)`, at most `n - 1 - n_test`. So
    every class keeps at least one training image, and every class of 2 images
    or more is tested. The same `seed` gives the same split
    (`split_per_class`). A class of one image (refused by `check_image_folder`)
    is only trained on. A corrupt image stops iteration with TensorFlow's
    error; `check_image_folder` names such files first.

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
            range, a split would hold no images, or a `test/` or validation
            folder lacks a class folder of the training folder.

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
    import_tensorflow()  # ImportError without TensorFlow
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}.get(color_mode)
    if channels is None:
        raise ValueError(
            "Received an invalid value for `color_mode`, expected 'rgb', "
            f"'grayscale' or 'rgba'. Received: color_mode={color_mode!r}."
        )

    # Layout: root/<class>/..., or root/train/<class>/... with optional
    # root/test/ and root/validation/ (or root/val/) beside it.
    train_root, val_dir, test_dir = folder_layout(root)
    val_fraction = 0.0 if val_dir is not None else validation_split
    test_fraction = 0.0 if test_dir is not None else test_split
    if test_dir is None and not test_split:
        raise ValueError(
            f"{root} has no test/ folder, so test images must be held out, "
            "expected test_split > 0. Received: test_split=0. Fix: pass e.g. "
            "test_split=0.2, or lay the images out as train/ and test/."
        )
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            "Received test_split + validation_split >= 1, which leaves no "
            f"training images. Received: test_split={test_split}, "
            f"validation_split={validation_split}. Fix: e.g. 0.2 and 0.1."
        )

    def listed(top: pathlib.Path) -> tuple[list, list]:
        paths, labels = [], []
        missing = [name for name in class_names if not (top / name).is_dir()]
        if missing:
            raise ValueError(
                f"Received a {top.name}/ folder without the class folders "
                f"{missing} that {train_root} has, expected the same classes. "
                f"Received: directory={str(directory)!r}. Fix: add "
                f"{top}/<class> folders for {missing}, or remove those classes."
            )
        extra = [d.name for d in class_folders(top) if d.name not in class_names]
        if extra and top != train_root:
            raise ValueError(
                f"Received a {top.name}/ folder with class folders {extra} that "
                f"{train_root} lacks, expected the same classes: their images "
                f"would be left out. Received: directory={str(directory)!r}. "
                f"Fix: add {train_root}/<class> folders for {extra}, or move "
                f"those folders out of {top}."
            )
        for label, name in enumerate(class_names):
            files = image_files(top / name)
            paths += files
            labels += [label] * len(files)
        return paths, labels

    class_names = [d.name for d in class_folders(train_root)]
    paths, labels = listed(train_root)
    if not paths:
        raise ValueError(
            f"Received a folder without images, expected class subfolders of "
            f"{'/'.join(IMAGE_SUFFIXES)} files. Received: directory="
            f"{str(directory)!r}. Fix: lay the images out as "
            "directory/<class name>/<image files>."
        )
    train, held_val, held_test = split_per_class(
        labels, test_fraction, val_fraction, seed
    )
    splits = {"train": ([paths[i] for i in train], [labels[i] for i in train])}
    splits["validation"] = (
        listed(val_dir)
        if val_dir is not None
        else ([paths[i] for i in held_val], [labels[i] for i in held_val])
    )
    splits["test"] = (
        listed(test_dir)
        if test_dir is not None
        else ([paths[i] for i in held_test], [labels[i] for i in held_test])
    )
    if not splits["validation"][0]:
        del splits["validation"]
    counts = {role: len(files) for role, (files, _) in splits.items()}
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

    pipelines = {}
    for role, (files, file_labels) in splits.items():
        pipelines[role] = finish_pipeline(
            read_images(files, file_labels, size, channels),
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
