"""The files of a class-per-folder image dataset: listed, checked, split, read.

`check_image_folder` (called by the recipes before anything is built) and
`load_image_folder` read the same files, listed here once:

- `folder_layout`: where the training, validation and test class folders are;
- `image_files`: the files of one class folder that are read;
- `check_image_folder`: one clear error for a folder that would train badly;
- `split_per_class`: a seeded test/validation hold-out, stratified per class;
- `read_images`: file paths and labels as a tf.data pipeline of images.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tlrecipes.lab.tf_pipelines import import_tensorflow

__all__ = [
    "IMAGE_SUFFIXES",
    "OTHER_IMAGE_SUFFIXES",
    "check_image_folder",
    "folder_layout",
    "image_files",
    "read_images",
    "split_per_class",
    "unreadable_images",
]

#: File suffixes read as images (those `keras.utils.image_dataset_from_directory`
#: reads), in any letter case.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

#: Suffixes of image formats that are not read: a class folder holding such files
#: beside readable ones is refused, since they would be left out silently.
OTHER_IMAGE_SUFFIXES = (
    ".avif", ".cr2", ".dng", ".heic", ".heif", ".ico", ".jfif", ".jp2", ".jxl",
    ".nef", ".pbm", ".pgm", ".pjpeg", ".pnm", ".ppm", ".psd", ".raw", ".svg",
    ".tga", ".tif", ".tiff", ".webp",
)  # fmt: skip


def folder_layout(root: Path) -> tuple[Path, Path | None, Path | None]:
    """`(train, validation, test)` class-folder roots of a dataset folder.

    `root/<class>/...`, or `root/train/<class>/...` with optional `root/test/`
    and `root/validation/` (or `root/val/`) beside it; None for a missing one.
    """
    root = Path(root)
    if not (root / "train").is_dir():
        return root, None, None
    names = ("validation", "val")
    val = next((root / n for n in names if (root / n).is_dir()), None)
    test = root / "test" if (root / "test").is_dir() else None
    return root / "train", val, test


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of `root`, in alphabetical order, hidden ones skipped."""
    return sorted(
        d for d in Path(root).iterdir() if d.is_dir() and not d.name.startswith(".")
    )


def image_files(folder: Path) -> list[Path]:
    """The image files of one class folder, in a fixed (sorted) order.

    Files anywhere under `folder` whose suffix is in `IMAGE_SUFFIXES` (any
    case), as Keras lists them (symbolic links to folders are not followed),
    except names starting with "." (hidden files, macOS `._*` copies).
    """
    files = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [
            Path(top) / name
            for name in sorted(names)
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")
        ]
    return files


def _other_files(folder: Path, suffixes: Sequence[str] | None = None) -> list[Path]:
    """Non-hidden files under `folder` that are not read (those in `suffixes`)."""
    return [
        f
        for f in sorted(folder.rglob("*"))
        if f.is_file()
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
        and f.suffix.lower() not in IMAGE_SUFFIXES
        and (suffixes is None or f.suffix.lower() in suffixes)
    ]


def _found(folders: list[Path]) -> str:
    """'cat: ['.webp'], dog: empty': the suffixes in class folders without images."""

    def suffixes(folder: Path) -> list[str]:
        return sorted({f.suffix.lower() or f.name for f in _other_files(folder)})

    return ", ".join(f"{d.name}: {suffixes(d) or 'empty'}" for d in folders)


def split_per_class(
    labels: Sequence[int],
    test_split: float,
    validation_split: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits indices into train, validation and test, per class, seeded.

    For a class of `n` files: `n_test = floor(n * test_split + 0.5)`, raised to 1
    when it is 0, `test_split > 0` and `n >= 2`, and cut to `n - 1`; then
    `n_val = floor(n * validation_split + 0.5)`, cut to `n - 1 - n_test`. So
    every class keeps at least one training file, and every class of 2 files or
    more has at least one test file. Which files are held out is drawn with
    `numpy.random.default_rng(seed)`, class by class in label order; each
    returned array is then put in a seeded random order.

    Args:
        labels: The class index of each file, files in a fixed order.
        test_split: Fraction of each class held out as test (0 for none).
        validation_split: Fraction of each class held out as validation.
        seed: The seed of the draw.

    Returns:
        A tuple `(train, validation, test)` of index arrays into `labels`.

    Example:

    >>> labels = np.array([0] * 10 + [1] * 2)
    >>> train, val, test = split_per_class(labels, 0.2, 0.1, seed=0)
    >>> np.bincount(labels[train]), np.bincount(labels[val]), np.bincount(labels[test])
    (array([7, 1]), array([1]), array([2, 1]))
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n = len(members)
        n_test = math.floor(n * test_split + 0.5)
        if test_split > 0 and n >= 2:
            n_test = max(n_test, 1)
        n_test = min(n_test, n - 1)
        n_val = min(math.floor(n * validation_split + 0.5), n - 1 - n_test)
        order = members[rng.permutation(n)]
        parts[2].append(order[:n_test])
        parts[1].append(order[n_test : n_test + n_val])
        parts[0].append(order[n_test + n_val :])
    return tuple(rng.permutation(np.concatenate([[], *p]).astype(int)) for p in parts)


def read_images(
    paths: Sequence[Path],
    labels: Sequence[int],
    image_size: tuple[int, int],
    channels: int,
):
    """A tf.data pipeline of `(image, label)` read from files, as Keras reads them.

    `tf.io.decode_image` with `channels` (first frame of a GIF), then
    `tf.image.resize` bilinear to `image_size`: the pixels
    `keras.utils.image_dataset_from_directory` gives. Images are float32 in
    [0, 255] of shape `(*image_size, channels)`; labels are int64.
    """
    tf = import_tensorflow()
    shape = (*image_size, channels)

    def load(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        image = tf.image.resize(image, image_size, method="bilinear")
        return tf.ensure_shape(tf.cast(image, tf.float32), shape), label

    ds = tf.data.Dataset.from_tensor_slices(
        (
            tf.constant([str(p) for p in paths], dtype=tf.string),
            tf.constant(np.asarray(labels, "int64").reshape(-1), dtype=tf.int64),
        )
    )
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def unreadable_images(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """The files TensorFlow cannot decode, with its reason, in `paths` order.

    Every file is read and decoded once (in parallel, with `tf.data`), as
    `read_images` will: 1,000 small PNGs (8x8 to 64x64) take 0.7 to 2.7 s on a
    busy 2-core CPU.

    Example:

    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "bad.png"
    >>> _ = bad.write_bytes(b"not a png")
    >>> unreadable_images([bad])[0][1]
    'Unknown image file format. One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required.'
    """
    tf = import_tensorflow()
    names = [str(p) for p in paths]
    if not names:
        return []

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return path, tf.shape(image)

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(names, dtype=tf.string))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    readable = {path.decode() for path, _ in ds.as_numpy_iterator()}
    bad = []
    for path in paths:
        if str(path) in readable:
            continue
        try:
            tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
            reason = "could not be decoded"
        except (tf.errors.OpError, ValueError) as err:
            message = getattr(err, "message", str(err))
            message = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", message, flags=re.S)
            reason = message.strip() or type(err).__name__
        bad.append((Path(path), reason))
    return bad


def check_image_folder(data_dir: str | os.PathLike, verify: bool = True) -> list[str]:
    """Checks that a folder holds one subfolder of readable images per class.

    The layout is the one `load_image_folder` reads: `data_dir/<class>/...`,
    or `data_dir/train/<class>/...` (then the classes are read from `train/`)
    with optional `test/` and `validation/` (or `val/`) beside it. Checking first
    gives one clear error before anything is built. Only `IMAGE_SUFFIXES` files
    are read; a class folder of other files (`.webp`, ...) is refused, naming
    their suffixes, and so is a class folder holding `OTHER_IMAGE_SUFFIXES`
    files beside readable ones (they would be left out silently). Without
    `test/`, each class needs 2 images or more: one to train on, one to hold
    out. With `verify`, every image file (in train, validation and test) is
    decoded once, so a corrupt file is named before training starts.

    Args:
        data_dir: The folder of class subfolders (or of `train/` and `test/`).
        verify: Decode every image file to find corrupt ones. Costs about
            1 to 3 ms per small image. Defaults to True.

    Returns:
        The class names (the subfolder names), in alphabetical order.

    Raises:
        ValueError: If the folder does not exist, holds no images, has a class
            subfolder without images (naming the suffixes it holds), a class
            subfolder with unread image formats beside images (naming the count
            and suffixes per class), fewer than 2 classes, without `test/` a
            class of fewer than 2 images, or a file that cannot be decoded
            (naming the files).

    Example:

    >>> import tempfile, keras
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ["dog", "cat"]:
    ...     (root / name).mkdir()
    ...     for i in range(2):
    ...         keras.utils.save_img(root / name / f"{i}.png", np.zeros((8, 8, 3)))
    >>> check_image_folder(root)
    ['cat', 'dog']
    """
    fix = "Fix: point it at a folder laid out as <data_dir>/<class name>/<images>."
    received = f"Received: data_dir={str(data_dir)!r}"
    if not Path(data_dir).is_dir():
        raise ValueError(
            "Received an invalid value for `data_dir`, expected a folder with one "
            f"subfolder of images per class. {received}, which does not exist. "
            f"{fix}"
        )
    root, val_dir, test_dir = folder_layout(Path(data_dir))
    folders = class_folders(root)
    files = {d.name: image_files(d) for d in folders}
    classes = list(files)
    empty = [d for d in folders if not files[d.name]]
    convert = "convert other formats (.webp, .tiff, ...) to PNG or JPEG"
    if not classes or len(empty) == len(classes):
        raise ValueError(
            "Received an invalid value for `data_dir`, expected one subfolder per "
            f"class with {'/'.join(IMAGE_SUFFIXES)} files in it. {received}, which "
            f"holds no images (found: {_found(empty) or 'no class folders'}). "
            f"{fix} Or {convert}."
        )
    if empty:
        raise ValueError(
            "Received an invalid value for `data_dir`, expected images in every "
            f"class subfolder. {received}, where the class folders "
            f"{[d.name for d in empty]} in {root} hold no images ({_found(empty)}). "
            f"Fix: add images to them, {convert}, or remove the folders."
        )
    all_folders = [
        d for top in (root, val_dir, test_dir) if top for d in class_folders(top)
    ]
    mixed = {d: _other_files(d, OTHER_IMAGE_SUFFIXES) for d in all_folders}
    if any(mixed.values()):
        found = "; ".join(
            f"{d}: {len(others)} file(s) {sorted({f.suffix.lower() for f in others})}"
            for d, others in mixed.items()
            if others
        )
        raise ValueError(
            "Received class folders with images in formats that are not read, "
            f"expected only {'/'.join(IMAGE_SUFFIXES)} images. {received}, where "
            f"{found} would be left out silently. Fix: {convert} (e.g. with "
            "Pillow: Image.open(f).convert('RGB').save(f.with_suffix('.png'))), "
            "or move them out of the class folders."
        )
    if len(classes) < 2:
        raise ValueError(
            "Received an invalid value for `data_dir`, expected at least 2 class "
            f"subfolders. {received}, which has 1 class ({classes[0]}). Fix: a "
            "classifier needs a subfolder per class; add the other classes."
        )
    few = [name for name in classes if len(files[name]) < 2]
    if few and test_dir is None:
        raise ValueError(
            "Received an invalid value for `data_dir`, expected at least 2 images "
            "per class: without a test/ folder each class needs one to train on "
            f"and one to hold out. {received}, where "
            + ", ".join(f"class {n!r} has {len(files[n])} image" for n in few)
            + f" (minimum 2). Fix: add images to {few}, remove them, or lay the "
            "images out as train/ and test/."
        )
    if verify:
        paths = [f for d in all_folders for f in image_files(d)]
        bad = unreadable_images(paths)
        if bad:
            shown = "; ".join(f"{str(p)!r}: {reason}" for p, reason in bad[:10])
            more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
            raise ValueError(
                "Received image files that cannot be decoded, expected readable "
                f"{'/'.join(IMAGE_SUFFIXES)} images. {received}, where "
                f"{len(bad)} of {len(paths)} files are corrupt or not images: "
                f"{shown}{more}. Fix: open and re-save them (truncated copies "
                "or downloads: copy them again), or move them out of the folder."
            )
    return classes
