"""The two containers the data loaders return.

In-memory loaders return `ImageSplits` (numpy, uint8 NHWC images, int64
labels); streaming loaders return `StreamingSplits` (batched, prefetched
`tf.data.Dataset`s of float32 images in [0, 255] and int64 labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["ImageSplits", "StreamingSplits"]


@dataclass(repr=False)
class ImageSplits:
    """A labelled image dataset held in memory, split into train / test (/ val).

    Images are uint8 arrays in NHWC layout (grayscale has one channel), labels
    are int64 in 0..k-1, and `class_names[i]` names label `i`. The test split
    is the dataset's official one; `x_val` / `y_val`, when present, were carved
    from the training side.

    Args:
        x_train: Training images, shape `(n, height, width, channels)`.
        y_train: Training labels, shape `(n,)`.
        x_test: Test images.
        y_test: Test labels.
        class_names: One name per label. Defaults to nothing: required.
        source: Where the data came from and how much of it there is, in
            words. Defaults to nothing: required.
        x_val: Validation images. Defaults to None.
        y_val: Validation labels. Defaults to None.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.imagesplits import ImageSplits
    >>> x = np.zeros((6, 28, 28, 1), "uint8")
    >>> y = np.array([0, 1, 2, 0, 1, 2])
    >>> data = ImageSplits(x, y, x[:3], y[:3], ["a", "b", "c"], "zeros")
    >>> data.num_classes, data.image_shape
    (3, (28, 28, 1))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.class_names = [str(name) for name in self.class_names]
        pairs = [
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ]
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(
                "Received only one of `x_val` and `y_val`; pass both or neither. "
                f"Received: x_val is None={self.x_val is None}, "
                f"y_val is None={self.y_val is None}"
            )
        if self.x_val is not None:
            pairs.append(("val", self.x_val, self.y_val))
        for split, x, y in pairs:
            if len(x) != len(y):
                raise ValueError(
                    f"`x_{split}` and `y_{split}` must have the same length. "
                    f"Received: len(x_{split})={len(x)}, len(y_{split})={len(y)}"
                )

    @property
    def num_classes(self) -> int:
        """Number of classes, `len(class_names)`."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image, `(height, width, channels)`."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def __repr__(self) -> str:
        val = "None" if self.x_val is None else f"{len(self.x_val):,}"
        return (
            f"ImageSplits(train={len(self.x_train):,}, val={val}, "
            f"test={len(self.x_test):,}, image_shape={self.image_shape}, "
            f"num_classes={self.num_classes}, source={self.source!r})"
        )


@dataclass(repr=False)
class StreamingSplits:
    """Batched, prefetched `tf.data` pipelines for train / test (/ validation).

    Every element is `(images, labels)`: float32 images in [0, 255] of shape
    `(batch, height, width, channels)` and int64 labels in 0..k-1, ready for
    `model.fit(data.train, validation_data=data.validation)`. The training
    pipeline reshuffles every epoch; the others keep a fixed order.

    Args:
        train: The training `tf.data.Dataset`.
        test: The test `tf.data.Dataset`.
        class_names: One name per label. Defaults to nothing: required.
        image_shape: Shape of one image, `(height, width, channels)`.
            Defaults to nothing: required.
        source: Where the data came from, in words. Defaults to nothing:
            required.
        validation: The validation `tf.data.Dataset`. Defaults to None.
        num_examples: Number of images per split, where known. Defaults to
            `{}`.
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    image_shape: tuple[int, int, int]
    source: str
    validation: tf.data.Dataset | None = None
    num_examples: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes, `len(class_names)`."""
        return len(self.class_names)

    def __repr__(self) -> str:
        return (
            f"StreamingSplits(image_shape={self.image_shape}, "
            f"num_classes={self.num_classes}, num_examples={self.num_examples}, "
            f"validation={self.validation is not None}, source={self.source!r})"
        )
