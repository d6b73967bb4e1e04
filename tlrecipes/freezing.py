"""Freezing and unfreezing layers, nested models included.

Keras decides what trains from each layer's `trainable` flag, but three things
trip people up again and again:

1. A frozen BatchNormalization layer is also a layer in *inference mode*: it
   normalises with its moving statistics and never updates them. An unfrozen one
   updates its moving statistics on every training batch, which ruins a
   pretrained base when the new batches are small or come from another
   distribution. The helpers here therefore keep BatchNormalization frozen by
   default, even in the part of the network that is fine-tuned (the Keras
   guide's advice). In Keras 3 (checked on 3.15.1, all three backends) a
   `base(x, training=False)` call does *not* protect it once the base is
   unfrozen: the functional model passes the outer `training=True` over the
   value recorded at the call, so an unfrozen BatchNorm updates its moving
   statistics during `fit`. Keeping the BatchNorm layers themselves frozen
   is what keeps them in inference mode.
2. A model built around a `keras.applications` base nests that base as a single
   layer, so `model.layers[100:]` does not reach into it. `freeze_until` walks
   nested models and counts their layers in order.
3. A change of `trainable` only takes effect at the next `compile()`.
   `two_phase_fit` recompiles for you; if you call these helpers yourself,
   recompile before fitting.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

__all__ = [
    "flat_layers",
    "freeze",
    "unfreeze",
    "freeze_until",
    "trainable_summary",
    "TrainableSummary",
    "is_batchnorm",
    "block_of",
    "layer_index",
    "set_trainable",
]


def is_batchnorm(layer: keras.layers.Layer) -> bool:
    """Returns True for layers that keep moving statistics (BatchNormalization)."""
    return isinstance(layer, keras.layers.BatchNormalization)


def _is_container(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.Model) or isinstance(
        getattr(layer, "layers", None), list
    )


def _walk(
    model: keras.layers.Layer, path: str = ""
) -> Iterator[tuple[str, keras.layers.Layer]]:
    for layer in model.layers:
        if _is_container(layer) and layer.layers:
            yield from _walk(layer, f"{path}{layer.name}/")
        else:
            yield path, layer


def flat_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Lists a model's layers in order, with nested models expanded in place.

    This is the order `freeze_until` counts in: for a flat model it is exactly
    `model.layers`, so `freeze_until(base, 100)` means what the TensorFlow
    tutorial's `fine_tune_at = 100` means. A nested model (such as the
    `keras.applications` base inside a model built by `add_head`) is replaced by
    its own layers.

    Args:
        model: A Keras model (Functional, Sequential or a subclass with
            `.layers`).

    Returns:
        A list of leaf layers (layers that are not themselves models).

    Example:

    >>> import keras
    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="b")
    >>> model = keras.Sequential([keras.Input((4,)), base, keras.layers.Dense(2)])
    >>> [layer.name for layer in flat_layers(model)][-1] == model.layers[-1].name
    True
    """
    _check_model(model, "flat_layers")
    return [layer for _, layer in _walk(model)]


def _check_model(model: object, fn: str) -> None:
    if not isinstance(model, keras.layers.Layer) or not hasattr(model, "layers"):
        raise TypeError(
            f"`{fn}` expects `model` to be a Keras model (keras.Model or "
            f"keras.Sequential). Received: model={type(model).__name__}. "
            "Fix: pass the model object itself, not its output tensor or history."
        )


def _set_trainable(layer: keras.layers.Layer, value: bool) -> None:
    layer.trainable = bool(value)


def _containers(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        if _is_container(layer) and layer.layers:
            yield from _containers(layer)
            yield layer


def set_trainable(model: keras.Model, trainable: list[bool]) -> None:
    """Sets the flag of each leaf of `flat_layers(model)`, in order.

    Containers (nested models) end trainable iff one of their leaves is, since
    a container's flag gates its children.
    """
    # A container's flag gates its children, so open every container first
    # (explicitly: Keras does not always recurse when the top flag is already
    # True), then set leaves one by one, then close fully-frozen containers.
    model.trainable = True
    for container in _containers(model):
        container.trainable = True
    leaves = flat_layers(model)
    for layer, flag in zip(leaves, trainable):
        _set_trainable(layer, flag)
    for container in _containers(model):
        if not any(leaf.trainable for leaf in flat_layers(container)):
            container.trainable = False  # all its leaves are frozen already
    if not any(trainable):
        model.trainable = False


def freeze(model: keras.Model, train_bn: bool = False) -> keras.Model:
    """Freezes every layer of a model (the feature-extractor setting).

    Use it on a pretrained base before training a new head on top. Frozen
    BatchNormalization layers run in inference mode, which is what a feature
    extractor needs.

    Args:
        model: The Keras model to freeze in place.
        train_bn: If True, BatchNormalization layers stay trainable (and run in
            training mode, updating their moving statistics) while everything
            else is frozen, as fastai's `train_bn=True` does. Useful when the
            new data's statistics differ from the source's. Defaults to False.

    Returns:
        The same model, for chaining. Recompile before fitting.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> len(freeze(m).trainable_weights)
    0
    """
    _check_model(model, "freeze")
    leaves = flat_layers(model)
    set_trainable(model, [bool(train_bn and is_batchnorm(layer)) for layer in leaves])
    return model


def unfreeze(model: keras.Model, train_bn: bool = False) -> keras.Model:
    """Unfreezes every layer except, by default, BatchNormalization.

    Args:
        model: The Keras model to unfreeze in place.
        train_bn: If True, BatchNormalization layers are unfrozen too (they then
            update their moving statistics during `fit`). Defaults to False,
            which keeps them in inference mode: the safe choice for
            fine-tuning a pretrained network on small batches.

    Returns:
        The same model, for chaining. Recompile before fitting.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> len(unfreeze(freeze(m)).trainable_weights)
    2
    """
    _check_model(model, "unfreeze")
    return freeze_until(model, 0, train_bn=train_bn)


def layer_index(model: keras.Model, layer: int | str) -> int:
    """Index into `flat_layers(model)` of a layer given by name or index.

    A nested model's name stands for its first layer; negative indices count
    from the end.

    Raises:
        ValueError: For an unknown name (with the closest names) or an index
            out of range.
        TypeError: For anything but a name or an integer.
    """
    return _resolve(model, flat_layers(model), layer)


def _resolve(model: keras.Model, leaves: list, layer: int | str) -> int:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer, str)):
        raise TypeError(
            "`layer` must be a layer name (str) or an index (int). "
            f"Received: layer={layer!r} of type {type(layer).__name__}. "
            "Fix: pass e.g. layer='block_13_expand' or layer=-20."
        )
    n = len(leaves)
    if isinstance(layer, str):
        names = [leaf.name for leaf in leaves]
        if layer in names:
            return names.index(layer)
        # A nested model's name stands for its first layer.
        for path, leaf in _walk(model):
            if f"/{layer}/" in f"/{path}":
                return leaves.index(leaf)
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
        hint = close or names[:5]
        raise ValueError(
            f"No layer named {layer!r} in model {model.name!r} (searched "
            f"{n} layers, nested models included). Closest names: {hint}. "
            "Fix: pick one of these, or print trainable_summary(model) to see "
            "every layer name."
        )
    index = int(layer)
    if not -n <= index < n:
        raise ValueError(
            f"Layer index out of range: the model has {n} layers (nested models "
            f"expanded), so `layer` must be in [{-n}, {n - 1}]. Received: "
            f"layer={index}. Fix: use an index in that range or a layer name."
        )
    return index % n


def freeze_until(
    model: keras.Model, layer: int | str, train_bn: bool = False
) -> keras.Model:
    """Freezes every layer before `layer`; `layer` and all after it train.

    This is the TensorFlow tutorial's `fine_tune_at`, made to work on nested
    models: on a model built by `add_head` around a `keras.applications` base,
    `freeze_until(model, "block_13_expand")` freezes the base up to that layer
    and leaves the rest of the base and the whole head trainable.

    BatchNormalization layers stay frozen (inference mode) even in the
    trainable part unless `train_bn=True`: an unfrozen BatchNorm updates its
    moving statistics from each small fine-tuning batch, which is the most
    common way fine-tuning destroys a pretrained network.

    Args:
        model: The Keras model to change in place.
        layer: Where training starts: a layer name (a nested model's name
            stands for its first layer), or an index into `flat_layers(model)`
            (negative counts from the end).
        train_bn: If True, every BatchNormalization layer is trainable (in the
            frozen part as well, as fastai's `train_bn=True`). Defaults to
            False.

    Returns:
        The same model, for chaining. Recompile before fitting.

    Raises:
        ValueError: If no layer has that name (the message lists the closest
            names) or the index is out of range (the message gives the range).
        TypeError: If `model` is not a Keras model or `layer` is neither str
            nor int.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
    ...                       keras.layers.Dense(2, name="b")])
    >>> _ = freeze_until(m, "b")
    >>> [layer.trainable for layer in m.layers]
    [False, True]
    """
    _check_model(model, "freeze_until")
    leaves = flat_layers(model)
    start = _resolve(model, leaves, layer)
    flags = [
        (i >= start and not is_batchnorm(leaf)) or (train_bn and is_batchnorm(leaf))
        for i, leaf in enumerate(leaves)
    ]
    set_trainable(model, flags)
    return model


_BLOCK = re.compile(r"^([A-Za-z]+_?\d+)")


def block_of(path: str, name: str) -> str:
    """The block a layer belongs to, read from its name (`block2_conv` -> `block2`)."""
    match = _BLOCK.match(name)
    key = match.group(1) if match else name.split("_")[0]
    return f"{path}{key}"


def _count(weights: list) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


@dataclass
class TrainableSummary:
    """What trains and what is frozen, per block of layers.

    `rows` holds one dict per block (in model order) with the keys `block`,
    `layers`, `trainable_layers`, `frozen_layers`, `trainable_params` and
    `non_trainable_params`. `str()` renders it as a table; `print()` it.
    """

    model_name: str
    rows: list[dict]

    @property
    def trainable_params(self) -> int:
        return sum(row["trainable_params"] for row in self.rows)

    @property
    def non_trainable_params(self) -> int:
        return sum(row["non_trainable_params"] for row in self.rows)

    def __str__(self) -> str:
        head = (
            "block",
            "layers",
            "trainable",
            "frozen",
            "train params",
            "frozen params",
        )
        body = [
            (
                r["block"],
                str(r["layers"]),
                str(r["trainable_layers"]),
                str(r["frozen_layers"]),
                f"{r['trainable_params']:,}",
                f"{r['non_trainable_params']:,}",
            )
            for r in self.rows
        ]
        total = (
            "total",
            str(sum(r["layers"] for r in self.rows)),
            str(sum(r["trainable_layers"] for r in self.rows)),
            str(sum(r["frozen_layers"] for r in self.rows)),
            f"{self.trainable_params:,}",
            f"{self.non_trainable_params:,}",
        )
        table = [head, *body, total]
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]

        def fmt(row: tuple) -> str:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
            return "  ".join(cells)

        rule = "-" * len(fmt(head))
        lines = [f"Model: {self.model_name}", fmt(head), rule]
        lines += [fmt(row) for row in body] + [rule, fmt(total)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython display
        printer.text(str(self))


def trainable_summary(model: keras.Model) -> TrainableSummary:
    """Counts trainable and frozen layers and parameters per block.

    Blocks are read from layer names (`block1_conv` -> `block1`,
    `block_13_expand` -> `block_13`, `conv4_block3_1_conv` -> `conv4`), and
    nested models prefix their blocks with their own name. Parameters are
    counted as Keras counts them: BatchNorm moving statistics are always
    non-trainable.

    Args:
        model: A Keras model.

    Returns:
        A `TrainableSummary`; `print()` it for a table, or read `.rows`.

    Example:

    >>> import keras
    >>> head = keras.layers.Dense(2, name="head_out")
    >>> m = keras.Sequential([keras.Input((4,)), head])
    >>> trainable_summary(m).trainable_params
    10
    """
    _check_model(model, "trainable_summary")
    rows: dict[str, dict] = {}
    for path, leaf in _walk(model):
        key = block_of(path, leaf.name)
        row = rows.setdefault(
            key,
            {
                "block": key,
                "layers": 0,
                "trainable_layers": 0,
                "frozen_layers": 0,
                "trainable_params": 0,
                "non_trainable_params": 0,
            },
        )
        trainable = _effective_trainable(model, path, leaf)
        row["layers"] += 1
        row["trainable_layers" if trainable else "frozen_layers"] += 1
        if trainable:
            row["trainable_params"] += _count(leaf.trainable_weights)
            row["non_trainable_params"] += _count(leaf.non_trainable_weights)
        else:
            row["non_trainable_params"] += _count(leaf.weights)
    return TrainableSummary(model.name, list(rows.values()))


def _effective_trainable(
    model: keras.Model, path: str, leaf: keras.layers.Layer
) -> bool:
    """A leaf trains only if it and every container above it are trainable."""
    if not (leaf.trainable and model.trainable):
        return False
    node = model
    for name in [p for p in path.split("/") if p]:
        node = next(layer for layer in node.layers if layer.name == name)
        if not node.trainable:
            return False
    return True
