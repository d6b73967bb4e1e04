"""Transitional: these names moved to `tlrecipes.lab`.

Kept only because the current, eager `tlrecipes/__init__.py` still imports
these names from here. Nothing else may import this module; delete it once
the lazy kit `__init__` lands.
"""

from tlrecipes.lab import (
    ImageSplits,
    load_fashion_mnist,
    load_image_folder,
    load_mnist,
    load_tfds,
    random_class_split,
    sample_per_class,
    split_by_class,
    to_backbone_input,
    train_val_split,
)

__all__ = [
    "ImageSplits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "load_tfds",
    "random_class_split",
    "sample_per_class",
    "split_by_class",
    "to_backbone_input",
    "train_val_split",
]
