"""Any tensorflow-datasets image classification set, streamed or in memory.

`load_tfds` gives tf_flowers, cats_vs_dogs, cifar10, cifar100, svhn_cropped,
eurosat, oxford_iiit_pet, ... as tf.data pipelines (`StreamingSplits`), and
`load_tfds_arrays` reads the small ones into memory as `ImageSplits`. Both
need internet the first time (tfds downloads and prepares the data into
~/tensorflow_datasets), then work offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tlrecipes.lab.checks import check_image_size, positive_int
from tlrecipes.lab.imagesplits import ImageSplits, StreamingSplits
from tlrecipes.lab.offline_data import download_allowed
from tlrecipes.lab.sampling import select_classes
from tlrecipes.lab.tf_pipelines import (
    AUTO_CACHE_BYTES,
    finish_pipeline,
    import_tensorflow,
)

__all__ = ["load_tfds", "load_tfds_arrays"]


_AUTO_TEST_FRACTION = 0.2

# tensorflow-datasets sets whose official splits are not simply train/test.
# Sets with no test split at all use the last 20% of "train" as test: tfds reads
# a split in a fixed order, so this slice is the same on every machine.
_TFDS_SPLITS = {
    "beans": {"train": "train", "validation": "validation", "test": "test"},
    "caltech101": {"train": "train", "test": "test"},
    "cats_vs_dogs": {"train": "train[:80%]", "test": "train[80%:]"},
    "deep_weeds": {"train": "train[:80%]", "test": "train[80%:]"},
    "eurosat": {"train": "train[:80%]", "test": "train[80%:]"},
    "food101": {"train": "train", "test": "validation"},
    "imagenette": {"train": "train", "test": "validation"},
    "oxford_flowers102": {"train": "train", "validation": "validation", "test": "test"},
    "rock_paper_scissors": {"train": "train", "test": "test"},
    "tf_flowers": {"train": "train[:80%]", "test": "train[80%:]"},
}


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "load_tfds needs tensorflow-datasets, which is not installed. "
            "Fix: pip install 'tlrecipes[tensorflow]'."
        ) from error
    return tfds


def _tfds_split_map(name: str, splits, info) -> dict[str, str]:
    if splits is not None:
        splits = dict(splits)
        unknown = set(splits) - {"train", "validation", "test"}
        if unknown or not {"train", "test"} <= set(splits):
            raise ValueError(
                "Received an invalid value for `splits`, expected a mapping with "
                "keys 'train' and 'test' (and optionally 'validation') to tfds "
                f"split names. Received: splits={splits!r}. Fix: e.g. splits="
                "{'train': 'train[:80%]', 'test': 'train[80%:]'}."
            )
        return splits
    base = name.split("/")[0].split(":")[0]
    if base in _TFDS_SPLITS:
        return dict(_TFDS_SPLITS[base])
    known = set(info.splits.keys()) if info is not None and info.splits else set()
    if not known or {"train", "test"} <= known:
        mapping = {"train": "train", "test": "test"}
        if "validation" in known:
            mapping["validation"] = "validation"
        return mapping
    if "train" in known and "validation" in known:
        return {"train": "train", "test": "validation"}
    cut = int(round(100 * (1 - _AUTO_TEST_FRACTION)))
    return {"train": f"train[:{cut}%]", "test": f"train[{cut}%:]"}


def load_tfds(
    name: str,
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 32,
    *,
    channels: int | None = None,
    splits: dict[str, str] | None = None,
    shuffle: bool = True,
    seed: int | None = 0,
    cache: bool | None = None,
    data_dir: str | None = None,
    download: bool | None = None,
) -> StreamingSplits:
    """Loads a tensorflow-datasets image classification set as tf.data pipelines.

    One call gives train / test (and validation where the dataset has one) as
    efficient input pipelines: tfds decodes, then each image is resized
    (bilinear) and cast to float32 in parallel, the result cached in memory
    when it fits (estimated under 2 GiB), the training split reshuffled each
    epoch, batched and prefetched with AUTOTUNE. Pixel values stay in [0, 255]
    like `keras.utils.image_dataset_from_directory`: rescale in the model or
    with `to_backbone_input`'s preprocessing. The first call downloads and
    prepares the data into ~/tensorflow_datasets (internet needed); later calls
    read it offline. Datasets without an official test split (tf_flowers,
    eurosat, cats_vs_dogs, deep_weeds) use the last 20% of "train" as test,
    a slice tfds reads in the same order on every machine.

    Args:
        name: A tfds name, e.g. `"tf_flowers"`, `"cifar10"`, `"eurosat/rgb"`.
        image_size: `(height, width)` or one int for a square. Defaults to None:
            keep the native size (required for sets whose images vary in size,
            such as tf_flowers).
        batch_size: Images per batch. Defaults to 32.
        channels: 3 to turn grayscale into RGB, 1 for the reverse. Defaults to
            None (keep the dataset's channels).
        splits: Which tfds split plays which role, e.g. `{"train":
            "train[:80%]", "test": "train[80%:]"}`. Defaults to None: the
            official train / test (/ validation) splits as described above.
        shuffle: Whether to reshuffle the training split every epoch. Defaults
            to True.
        seed: Seed of the training shuffle. Defaults to 0.
        cache: Cache the decoded, resized images in memory: True, False, or
            None to cache when the estimate is under 2 GiB. Defaults to None.
        data_dir: Where tfds stores datasets. Defaults to None
            (`$TFDS_DATA_DIR` or ~/tensorflow_datasets).
        download: Whether tfds may download. Defaults to None: download unless
            the `TLRECIPES_OFFLINE` environment variable is set.

    Returns:
        `StreamingSplits` with `train`, `test`, optional `validation`,
        `class_names`, `image_shape` and `num_classes`.

    Raises:
        ImportError: If TensorFlow or tensorflow-datasets is not installed.
        FileNotFoundError: If the dataset is not prepared locally and cannot be
            downloaded; the message says where tfds looked and the fixes.
        ValueError: For an invalid `image_size`, `batch_size`, `channels` or
            `splits`, a dataset that is not `(image, label)` classification, or
            images of varying size with `image_size=None`.

    Example:

    >>> import tensorflow_datasets as tfds
    >>> from tlrecipes.lab.tfds_data import load_tfds
    >>> with tfds.testing.mock_data(num_examples=8):
    ...     flowers = load_tfds("tf_flowers", image_size=(64, 64), batch_size=4)
    ...     images, labels = next(iter(flowers.train))
    >>> tuple(images.shape), images.dtype.name, flowers.num_classes
    ((4, 64, 64, 3), 'float32', 5)
    """
    size = check_image_size(image_size)
    batch_size = positive_int(batch_size, "batch_size", "e.g. batch_size=32.")
    if channels not in (None, 1, 3):
        raise ValueError(
            "Received an invalid value for `channels`, expected None, 1 or 3. "
            f"Received: channels={channels!r}. Fix: channels=3 for pretrained "
            "ImageNet backbones."
        )
    tf = import_tensorflow()
    tfds = _import_tfds()
    allowed, why = download_allowed(download)
    why = why.replace("skipped", "off")
    builder = tfds.builder(name, data_dir=data_dir)
    info = builder.info  # from code until prepared: enough to choose the splits
    if not {"image", "label"} <= set(info.features.keys()):
        raise ValueError(
            f"Received name={name!r}, expected a tfds image classification dataset "
            "with 'image' and 'label' features. Received features: "
            f"{list(info.features.keys())}. Fix: pick a dataset from "
            "https://www.tensorflow.org/datasets/catalog/overview#image_classification."
        )
    split_map = _tfds_split_map(name, splits, info)
    roles = list(split_map)
    try:
        # The info tfds returns after preparing holds the real class names
        # (cifar100's come from its download) and split sizes.
        loaded, info = tfds.load(
            name,
            split=[split_map[role] for role in roles],
            as_supervised=True,
            shuffle_files=False,
            with_info=True,
            data_dir=data_dir,
            download=allowed,
        )
    except Exception as error:  # noqa: BLE001 - re-raised with the fixes, chained
        if builder.is_prepared():
            raise
        raise FileNotFoundError(
            f"tensorflow-datasets has no prepared copy of {name!r} in "
            f"{builder.data_dir}, and "
            + ("downloading it failed" if allowed else f"downloading is {why}")
            + f" ({type(error).__name__}: {str(error)[:300]}). Fixes: go online "
            f"once (tfds downloads and prepares it, then works offline); copy a "
            f"prepared ~/tensorflow_datasets/{name.split(':')[0]} from another "
            "machine and point `data_dir` or $TFDS_DATA_DIR at its parent; or "
            "use the offline loaders load_fashion_mnist / load_mnist."
        ) from error
    class_names = list(info.features["label"].names)
    native = tuple(info.features["image"].shape)
    if size is None and (None in native[:2]):
        raise ValueError(
            f"The images of {name!r} vary in size (shape {native}), so they need "
            "resizing to be batched. Received: image_size=None. Fix: pass e.g. "
            "image_size=(160, 160)."
        )
    height, width = size if size is not None else native[:2]
    out_channels = channels or native[2]
    image_shape = (int(height), int(width), int(out_channels))

    def convert(image, label):
        image = tf.cast(image, tf.float32)
        if size is not None:
            image = tf.image.resize(image, size)
        if out_channels != native[2]:
            image = (
                tf.image.grayscale_to_rgb(image)
                if out_channels == 3
                else tf.image.rgb_to_grayscale(image)
            )
        return tf.ensure_shape(image, image_shape), tf.cast(label, tf.int64)

    num_examples = {}
    for role in roles:
        try:
            num_examples[role] = int(info.splits[split_map[role]].num_examples)
        except (KeyError, ValueError, TypeError):
            pass  # unknown until prepared (e.g. under tfds.testing.mock_data)
    if cache is None:
        known = len(num_examples) == len(roles)
        nbytes = sum(num_examples.values()) * math.prod(image_shape) * 4
        cache = known and nbytes <= AUTO_CACHE_BYTES
    pipelines = {}
    for role, ds in zip(roles, loaded, strict=True):
        ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
        pipelines[role] = finish_pipeline(
            ds,
            training=shuffle and role == "train",
            batch_size=batch_size,
            cache=cache,
            seed=seed,
            shuffle_buffer=min(num_examples.get(role, 10_000), 10_000),
        )
    counts = ", ".join(f"{role} {n:,}" for role, n in num_examples.items())
    source = f"tensorflow-datasets {name!r} (splits {split_map}" + (
        f"; {counts})" if counts else ")"
    )
    return StreamingSplits(
        train=pipelines["train"],
        test=pipelines["test"],
        validation=pipelines.get("validation"),
        class_names=class_names,
        image_shape=image_shape,
        source=source,
        num_examples=num_examples,
    )


def load_tfds_arrays(
    name: str,
    image_size: int | Sequence[int] | None = None,
    *,
    channels: int | None = None,
    splits: dict[str, str] | None = None,
    classes: Sequence[int | str] | None = None,
    data_dir: str | None = None,
    download: bool | None = None,
) -> ImageSplits:
    """Loads a tensorflow-datasets image set into memory as `ImageSplits`.

    The in-memory twin of `load_tfds`, for sets small enough to hold as uint8
    (cifar10/100: 60,000 x 32x32x3 = 184 MB; tf_flowers at 160 px: 280 MB;
    eurosat: 27,000 x 64x64x3 = 330 MB), so that `sample_per_class`,
    `split_by_class` and the `Task` registry work on them exactly as on
    Fashion-MNIST. Images are read in the dataset's fixed order, resized if
    asked, and rounded back to uint8.

    Args:
        name: A tfds name, e.g. `"cifar100"`.
        image_size: `(height, width)` or one int. Defaults to None (native
            size; required for sets whose images vary in size).
        channels: 3 or 1 to convert, as in `load_tfds`. Defaults to None.
        splits: As in `load_tfds`. Defaults to None (official splits).
        classes: Keep only these classes (labels or names), relabelled 0..k-1
            in the order given. Defaults to None (all classes).
        data_dir: Where tfds stores datasets. Defaults to None.
        download: Whether tfds may download. Defaults to None: download unless
            `TLRECIPES_OFFLINE` is set.

    Returns:
        `ImageSplits` with uint8 NHWC images and int64 labels.

    Raises:
        ImportError: If TensorFlow or tensorflow-datasets is not installed.
        ValueError: As `load_tfds` and `split_by_class`.

    Example:

    >>> import tensorflow_datasets as tfds
    >>> from tlrecipes.lab.tfds_data import load_tfds_arrays
    >>> with tfds.testing.mock_data(num_examples=6):
    ...     data = load_tfds_arrays("cifar10")
    >>> data.x_train.shape, data.x_train.dtype
    ((6, 32, 32, 3), dtype('uint8'))
    """
    stream = load_tfds(
        name,
        image_size,
        batch_size=256,
        channels=channels,
        splits=splits,
        shuffle=False,
        cache=False,
        data_dir=data_dir,
        download=download,
    )
    arrays = {}
    for role in ("train", "validation", "test"):
        ds = getattr(stream, role)
        if ds is None:
            continue
        xs, ys = [], []
        for images, labels in ds.as_numpy_iterator():
            xs.append(np.clip(np.rint(images), 0, 255).astype("uint8"))
            ys.append(labels.astype("int64"))
        empty = np.zeros((0, *stream.image_shape), "uint8")
        arrays[role] = (
            np.concatenate(xs) if xs else empty,
            np.concatenate(ys) if ys else np.zeros((0,), "int64"),
        )
    x_val, y_val = arrays.get("validation", (None, None))
    data = ImageSplits(
        *arrays["train"],
        *arrays["test"],
        class_names=stream.class_names,
        source=stream.source,
        x_val=x_val,
        y_val=y_val,
    )
    return data if classes is None else select_classes(data, classes)
