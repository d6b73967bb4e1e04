"""The building blocks of a transfer task: class splits and honest samples.

`random_class_split`, `split_by_class` and `select_classes` cut a source task
A and a target task B from one labelled set (Yosinski et al. 2014). The
samplers keep a size sweep honest: `sample_per_class` is balanced, seeded and
nested (the 10-per-class set is inside the 20-per-class set for the same
seed), `train_val_split` carves validation from the training side only, and
nothing here ever samples from a test split.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from tlrecipes.lab.checks import positive_int
from tlrecipes.lab.imagesplits import ImageSplits

__all__ = [
    "random_class_split",
    "sample_indices_per_class",
    "sample_per_class",
    "select_classes",
    "split_by_class",
    "train_val_indices",
    "train_val_split",
]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            "Received an invalid value for `seed`, expected a non-negative "
            f"integer. Received: seed={seed!r}. Fix: e.g. seed=0."
        )
    return int(seed)


def _check_labels(y: Any, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a 1-D array of "
            f"integer class labels. Received: {name} with shape {y.shape} and "
            f"dtype {y.dtype}. Fix: pass sparse labels, e.g. np.argmax(one_hot, -1)."
        )
    if y.size and y.min() < 0:
        raise ValueError(
            f"Received a negative label in `{name}` ({int(y.min())}), expected "
            "class labels 0..k-1. Fix: relabel, e.g. with split_by_class."
        )
    return y


def _class_permutation(indices: np.ndarray, seed: int, label: int, stream: int):
    # One generator per (seed, class, purpose): a class's order does not
    # depend on how many images other classes have, which keeps sizes nested.
    rng = np.random.default_rng([seed, int(label), stream])
    return indices[rng.permutation(len(indices))]


def random_class_split(
    num_classes: int, num_a: int, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Splits class labels 0..num_classes-1 into two random, disjoint groups.

    Yosinski et al. (2014) built their A/B tasks from two random halves of
    ImageNet's classes; this is the same draw for any labelled set, seeded so
    a study can repeat it.

    Args:
        num_classes: How many classes there are.
        num_a: How many go to group A; the rest form group B.
        seed: Seed of the draw. Defaults to 0.

    Returns:
        `(a, b)`: two sorted lists of labels.

    Raises:
        ValueError: If `num_a` is not in 1..num_classes-1.

    Example:

    >>> from tlrecipes.lab.sampling import random_class_split
    >>> a, b = random_class_split(10, 5, seed=0)
    >>> len(a), len(b), sorted(a + b) == list(range(10))
    (5, 5, True)
    """
    num_classes = positive_int(num_classes, "num_classes", "e.g. num_classes=10.")
    seed = _check_seed(seed)
    if (
        isinstance(num_a, bool)
        or not isinstance(num_a, (int, np.integer))
        or not (0 < num_a < num_classes)
    ):
        raise ValueError(
            "Received an invalid value for `num_a`, expected an integer in "
            f"1..{num_classes - 1} so that both groups are non-empty. Received: "
            f"num_a={num_a!r}. Fix: e.g. num_a={num_classes // 2}."
        )
    order = np.random.default_rng(seed).permutation(num_classes)
    return sorted(int(c) for c in order[:num_a]), sorted(int(c) for c in order[num_a:])


def _resolve_classes(
    classes: Sequence[int | str], class_names: Sequence[str] | None, num_classes: int
) -> list[int]:
    if isinstance(classes, (str, int, np.integer)) or len(classes) == 0:
        raise ValueError(
            "Received an invalid value for `classes`, expected a non-empty list "
            f"of labels or class names. Received: classes={classes!r}. Fix: e.g. "
            "classes=[0, 1, 5]."
        )
    labels = []
    for c in classes:
        if isinstance(c, str):
            if class_names is None or c not in class_names:
                options = list(class_names or [])
                close = difflib.get_close_matches(c, options, n=3)
                if close:
                    hint = f"Closest names: {close}."
                elif options:
                    hint = f"Known names: {options}."
                else:
                    hint = "Pass `class_names` to select by name, or use labels."
                raise ValueError(
                    f"Received an unknown class name {c!r} in `classes`. {hint} "
                    f"Received: classes={list(classes)!r}"
                )
            labels.append(list(class_names).index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= c < num_classes:
                raise ValueError(
                    f"Received class {c} in `classes`, expected labels in "
                    f"0..{num_classes - 1}. Received: classes={list(classes)!r}"
                )
            labels.append(int(c))
        else:
            raise ValueError(
                f"Received {c!r} in `classes`, expected an integer label or a "
                f"class name. Received: classes={list(classes)!r}"
            )
    if len(set(labels)) != len(labels):
        raise ValueError(
            "Received a class more than once in `classes`, expected distinct "
            f"classes. Received: classes={list(classes)!r}"
        )
    return labels


def split_by_class(
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[int | str],
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Keeps only the given classes, relabelled 0..k-1 in the order given.

    This is how a source task A and a target task B are cut from one labelled
    set (Yosinski et al. 2014): call it once with A's classes and once with
    B's. The images keep their original order; the new label `i` is
    `classes[i]`, and the returned names follow.

    Args:
        x: Images (or any array with one row per example).
        y: Integer labels, shape `(n,)`.
        classes: Labels (ints) or names (strings, needs `class_names`) to keep.
        class_names: Names of the original labels. Defaults to None (names are
            the labels as strings).

    Returns:
        `(x_subset, y_relabelled, names)`.

    Raises:
        ValueError: For an empty, repeated or unknown class (the message lists
            the closest names), or `x` and `y` of different lengths.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.sampling import split_by_class
    >>> x = np.arange(6)
    >>> y = np.array([0, 1, 2, 0, 1, 2])
    >>> split_by_class(x, y, [2, 0], ["a", "b", "c"])
    (array([0, 2, 3, 5]), array([1, 0, 1, 0]), ['c', 'a'])
    """
    y = _check_labels(y)
    if len(x) != len(y):
        raise ValueError(
            "`x` and `y` must have the same length. Received: "
            f"len(x)={len(x)}, len(y)={len(y)}"
        )
    if class_names is not None:
        num_classes = len(class_names)
    else:
        num_classes = int(y.max()) + 1 if y.size else 0
    labels = _resolve_classes(classes, class_names, num_classes)
    lookup = np.full(max(num_classes, int(y.max()) + 1 if y.size else 0), -1, "int64")
    lookup[labels] = np.arange(len(labels))
    new = lookup[y] if y.size else y.astype("int64")
    keep = new >= 0
    names = [class_names[c] if class_names is not None else str(c) for c in labels]
    return np.asarray(x)[keep], new[keep], names


def select_classes(data: ImageSplits, classes: Sequence[int | str]) -> ImageSplits:
    """`split_by_class` applied to every split of an `ImageSplits`.

    Args:
        data: The dataset.
        classes: Labels or class names to keep, in their new label order.

    Returns:
        A new `ImageSplits` with the kept classes relabelled 0..k-1, their
        names, and `source` saying which classes were kept.

    Raises:
        ValueError: As `split_by_class`.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.sampling import ImageSplits, select_classes
    >>> x = np.zeros((6, 2, 2, 1), "uint8")
    >>> y = np.array([0, 1, 2, 0, 1, 2])
    >>> data = ImageSplits(x, y, x, y, ["a", "b", "c"], "toy")
    >>> select_classes(data, ["c", "a"]).class_names
    ['c', 'a']
    """
    labels = _resolve_classes(classes, data.class_names, data.num_classes)
    x_train, y_train, names = split_by_class(
        data.x_train, data.y_train, labels, data.class_names
    )
    x_test, y_test, _ = split_by_class(
        data.x_test, data.y_test, labels, data.class_names
    )
    x_val = y_val = None
    if data.x_val is not None:
        x_val, y_val, _ = split_by_class(
            data.x_val, data.y_val, labels, data.class_names
        )
    kept = ", ".join(names)
    source = f"{data.source}; classes {labels} ({kept}) as 0..{len(labels) - 1}"
    return ImageSplits(x_train, y_train, x_test, y_test, names, source, x_val, y_val)


def sample_indices_per_class(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of `n` examples of every class: balanced, seeded and nested.

    Each class's examples are put in a random order drawn from `(seed, class)`
    alone, and the first `n` are taken. So the 10-per-class sample is contained
    in the 20-per-class sample for the same seed, and a size sweep differs only
    in size, never in which images it happened to draw.

    Args:
        y: Integer labels, shape `(num_examples,)`. Every label present counts
            as a class.
        n: Examples per class.
        seed: Seed of the per-class order. Defaults to 0.

    Returns:
        Sorted int64 indices into `y`, `n` per class.

    Raises:
        ValueError: If `n` is not a positive integer, or exceeds the smallest
            class (the message says how many that class has).

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.sampling import sample_indices_per_class
    >>> y = np.array([0, 1] * 10)
    >>> small = sample_indices_per_class(y, 2, seed=1)
    >>> large = sample_indices_per_class(y, 4, seed=1)
    >>> np.bincount(y[small]).tolist(), set(small) <= set(large)
    ([2, 2], True)
    """
    y = _check_labels(y)
    n = positive_int(n, "n", "e.g. n=10 images per class.")
    seed = _check_seed(seed)
    classes, counts = np.unique(y, return_counts=True)
    if classes.size == 0:
        raise ValueError("Received an empty `y`: there is nothing to sample from.")
    if n > counts.min():
        smallest = classes[np.argmin(counts)]
        raise ValueError(
            f"Received n={n} examples per class, but the smallest class (label "
            f"{smallest}) has only {counts.min():,}. Fix: ask for at most "
            f"n={counts.min()} per class."
        )
    chosen = [
        _class_permutation(np.flatnonzero(y == c), seed, c, stream=0)[:n]
        for c in classes
    ]
    return np.sort(np.concatenate(chosen)).astype("int64")


def sample_per_class(
    x: np.ndarray, y: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Takes `n` examples of every class: balanced, seeded and nested.

    The research this project teaches (Soekhoe et al. 2016) measures transfer
    as a function of how many target images per class there are. For such a
    sweep to compare sizes and nothing else, the samples are nested: the
    10-per-class set is a subset of the 20-per-class set for the same seed.
    Use it on the training split only; the test split is never sampled.

    Args:
        x: Images (or any array with one row per example).
        y: Integer labels, shape `(num_examples,)`.
        n: Examples per class.
        seed: Seed; different seeds give different samples. Defaults to 0.

    Returns:
        `(x_sample, y_sample)` in the original order of `x`.

    Raises:
        ValueError: If `n` is not a positive integer or exceeds the smallest
            class (the message says how many that class has), or `x` and `y`
            have different lengths.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.sampling import sample_per_class
    >>> x = np.arange(20)
    >>> y = np.array([0, 1] * 10)
    >>> x_small, y_small = sample_per_class(x, y, 3, seed=0)
    >>> np.bincount(y_small).tolist()
    [3, 3]
    """
    if len(x) != len(y):
        raise ValueError(
            "`x` and `y` must have the same length. Received: "
            f"len(x)={len(x)}, len(y)={len(y)}"
        )
    indices = sample_indices_per_class(y, n, seed)
    return np.asarray(x)[indices], np.asarray(y)[indices]


def train_val_indices(
    y: np.ndarray,
    val_per_class: int | None = None,
    *,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified, seeded train / validation split of `y`.

    See `train_val_split`, which applies these indices to arrays.

    Args:
        y: Integer labels of the training side.
        val_per_class: Validation examples per class. Defaults to None (use
            `fraction`).
        fraction: Fraction of each class for validation, rounded, at least one
            per class. Defaults to None (use `val_per_class`).
        seed: Seed of the draw. Defaults to 0.

    Returns:
        `(train_indices, val_indices)`, sorted and disjoint.

    Raises:
        ValueError: Unless exactly one of `val_per_class` / `fraction` is given
            and leaves at least one training example per class.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.sampling import train_val_indices
    >>> train, val = train_val_indices(np.array([0, 1] * 5), val_per_class=1)
    >>> len(train), len(val), set(train) & set(val)
    (8, 2, set())
    """
    y = _check_labels(y)
    seed = _check_seed(seed)
    if (val_per_class is None) == (fraction is None):
        raise ValueError(
            "Pass exactly one of `val_per_class` and `fraction`. Received: "
            f"val_per_class={val_per_class!r}, fraction={fraction!r}. Fix: e.g. "
            "val_per_class=5 or fraction=0.1."
        )
    if val_per_class is not None:
        val_per_class = positive_int(val_per_class, "val_per_class", "e.g. 5.")
    elif not 0 < fraction < 1:
        raise ValueError(
            "Received an invalid value for `fraction`, expected a number in "
            f"(0, 1). Received: fraction={fraction!r}. Fix: e.g. fraction=0.1."
        )
    train, val = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = val_per_class or max(1, int(round(fraction * len(members))))
        if k >= len(members):
            raise ValueError(
                f"Class {c} has {len(members):,} examples, so taking {k} for "
                "validation leaves none to train on. Received: "
                f"val_per_class={val_per_class!r}, fraction={fraction!r}. Fix: "
                f"take at most {len(members) - 1} per class."
            )
        order = _class_permutation(members, seed, c, stream=1)
        val.append(order[:k])
        train.append(order[k:])
    if not train:
        raise ValueError("Received an empty `y`: there is nothing to split.")
    return (
        np.sort(np.concatenate(train)).astype("int64"),
        np.sort(np.concatenate(val)).astype("int64"),
    )


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    val_per_class: int | None = None,
    *,
    fraction: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carves a stratified validation set out of training data.

    Pass it the training split only: the test split stays untouched for the
    final number, so choosing epochs or learning rates on validation never
    leaks test images into a decision. Every class gives the same number of
    validation examples (`val_per_class`) or the same share (`fraction`).

    Args:
        x: Training images.
        y: Training labels.
        val_per_class: Validation examples per class. Defaults to None (use
            `fraction`).
        fraction: Fraction of each class for validation. Defaults to None (use
            `val_per_class`).
        seed: Seed of the draw. Defaults to 0.

    Returns:
        `(x_train, y_train, x_val, y_val)`, each in the original order.

    Raises:
        ValueError: Unless exactly one of `val_per_class` / `fraction` is given
            and leaves at least one training example per class, or if `x` and
            `y` have different lengths.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.sampling import train_val_split
    >>> x, y = np.arange(20), np.array([0, 1] * 10)
    >>> x_tr, y_tr, x_val, y_val = train_val_split(x, y, fraction=0.2, seed=0)
    >>> len(x_tr), np.bincount(y_val).tolist()
    (16, [2, 2])
    """
    if len(x) != len(y):
        raise ValueError(
            "`x` and `y` must have the same length. Received: "
            f"len(x)={len(x)}, len(y)={len(y)}"
        )
    train, val = train_val_indices(y, val_per_class, fraction=fraction, seed=seed)
    x, y = np.asarray(x), np.asarray(y)
    return x[train], y[train], x[val], y[val]
