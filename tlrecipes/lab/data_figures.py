"""The data before the results: a grid of example images per class.

Like the result figures (`tlrecipes.lab.plots`), it returns a
`matplotlib.figure.Figure` built without `pyplot`, so it works headless.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_examples"]


def plot_examples(
    x: Any,
    y: Any,
    *,
    class_names: Sequence[str] | None = None,
    per_class: int = 6,
    title: str | None = None,
    seed: int = 0,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Shows the data: a grid of example images, one row per class.

    Look at the images before training on them: whether the classes are
    distinguishable by eye, how alike the source and target look, and
    whether anything is upside down, cropped or mislabelled. The examples
    are drawn at random (fixed by `seed`) within each class.

    Args:
        x: Images, `(n, height, width)` or `(n, height, width, channels)`
            with 1 or 3 channels; integers in [0, 255] or floats in [0, 1]
            or [0, 255].
        y: Integer labels, one per image.
        class_names: A name per label (index = label). Defaults to None: the
            labels' numbers.
        per_class: Examples per class (columns). Defaults to 6.
        title: Figure title. Defaults to None (no title).
        seed: Seed of the random draw within each class. Defaults to 0.
        path: Where to save a PNG. Defaults to None (not saved).

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: If `x` is not a stack of images, `y` does not hold one
            integer label per image, `per_class` is below 1, or
            `class_names` has no name for a label.

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.data_figures import plot_examples
    >>> x = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype="uint8")
    >>> y = np.arange(20) % 2
    >>> fig = plot_examples(x, y, class_names=["even", "odd"], per_class=4)
    >>> len(fig.axes)
    8
    """
    images = np.asarray(x)
    labels = np.asarray(y)
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images[..., 0] if images.shape[-1] == 1 else images
    if images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(
            "Received an invalid value for `x`, expected a stack of images "
            "(n, height, width) or (n, height, width, 1 or 3). Received: shape "
            f"{np.shape(x)}. Fix: pass the image array itself, e.g. data.x_train."
        )
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "Received an invalid value for `y`, expected one integer label per "
            f"image ({len(images)}). Received: shape {labels.shape}, dtype "
            f"{labels.dtype}. Fix: pass the labels matching `x`, as integers."
        )
    if not isinstance(per_class, int) or per_class < 1:
        raise ValueError(
            "Received an invalid value for `per_class`, expected an integer of "
            f"at least 1. Received: {per_class!r}. Fix: e.g. per_class=6."
        )
    classes = sorted(int(c) for c in np.unique(labels))
    if class_names is not None and max(classes) >= len(class_names):
        raise ValueError(
            "Received an invalid value for `class_names`, expected a name for "
            f"each label 0..{max(classes)}. Received: {len(class_names)} names. "
            "Fix: pass one name per class, in label order."
        )
    integers = np.issubdtype(images.dtype, np.integer)
    scale = 255.0 if integers or images.max() > 1.5 else 1.0
    rng = np.random.default_rng(seed)
    fig = Figure(
        figsize=(1.1 * per_class + 1.4, 1.1 * len(classes) + (0.4 if title else 0)),
        layout="constrained",
    )
    axes = fig.subplots(len(classes), per_class, squeeze=False)
    for row, label in zip(axes, classes, strict=True):
        members = np.flatnonzero(labels == label)
        picked = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for col, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(picked):
                image = images[picked[col]].astype("float32") / scale
                ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
        name = class_names[label] if class_names is not None else str(label)
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
