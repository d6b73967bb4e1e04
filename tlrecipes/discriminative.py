"""Discriminative learning rates: per-layer multipliers, falling toward the input.

ULMFiT (Howard & Ruder 2018; fastai's `slice(lo, hi)`): lower layers hold
more general features and should move less, so each layer group gets its own
learning rate, e.g. the head at the base rate and each group below it 2.6
times lower. `layer_groups(model)` splits a model into ordered groups and
`lr_multipliers(model)` returns the multipliers as plain data,
`{layer name: multiplier}`; `tlrecipes.optimizers.with_lr_multipliers`
(or `two_phase_fit(..., lr_multipliers=...)`) applies them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import keras

from tlrecipes.freezing import block_of, flat_layers
from tlrecipes.heads import HEAD_PREFIX

__all__ = ["ULMFIT_FACTOR", "layer_groups", "lr_multipliers"]

#: ULMFiT's ratio between the learning rates of two neighbouring layer groups.
ULMFIT_FACTOR = 2.6


def _group_key(layer: keras.layers.Layer) -> str:
    if layer.name.startswith(HEAD_PREFIX):
        return "head"
    return block_of("", layer.name)


def layer_groups(
    model: keras.Model, starts: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Splits a model's layers into ordered groups (blocks, then the head).

    Discriminative rates, gradual unfreezing and surgical fine-tuning all
    work on groups of layers rather than single layers. By default a group is
    a run of consecutive layers that share a name prefix such as `block2`
    (`tlrecipes.lab.small_convnet`, VGG) or `conv4` (ResNet), and every layer named
    `head_*` (`add_head`) forms the group `"head"`. Layers without weights
    (inputs, activations, pooling) join the group of the layer before them,
    so each group has weights. Nested models are expanded.

    Args:
        model: A Keras model, e.g. one built by `add_head`.
        starts: Names of the layers where each group starts, in model order,
            for networks whose layer names do not follow a block pattern (or
            to merge blocks). Each group is named after its first layer.
            Defaults to None: groups from the layer names as above.

    Returns:
        An ordered dict `{group name: [leaf layer names]}`, input side first.

    Raises:
        ValueError: If a name in `starts` is not a layer of the model, or the
            model has no layer with weights.

    Example:

    >>> from tlrecipes.discriminative import layer_groups
    >>> base = keras.Sequential([keras.Input((8, 8, 1))] + [
    ...     keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")
    ...     for i in range(1, 3)], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> list(layer_groups(model))
    ['block1', 'block2', 'head']
    """
    leaves = flat_layers(model)
    names = [layer.name for layer in leaves]
    if starts is not None:
        starts = list(starts)
        for name in starts:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
                raise ValueError(
                    f"Received an invalid value for `starts`: no layer named "
                    f"{name!r} in model {model.name!r}. Closest names: "
                    f"{close or names[:5]}. Fix: pass names of layers of the "
                    "model (nested models are expanded)."
                )
        keys, key = [], None
        for name in names:
            key = name if name in starts else key
            keys.append(key)
    else:
        keys = [_group_key(layer) for layer in leaves]
    # A weightless layer goes with the next weighted layer when they share a
    # key (head_pool -> head), else with the group before it (block1_relu).
    following: list[str | None] = []
    nxt = None
    for layer, key in zip(reversed(leaves), reversed(keys), strict=True):
        following.append(nxt)
        if layer.weights:
            nxt = key
    following.reverse()
    groups: dict[str, list[str]] = {}
    pending: list[str] = []  # weightless layers waiting for their group
    current = None
    for layer, key, after in zip(leaves, keys, following, strict=True):
        if not layer.weights and (current is None or key == after != current):
            pending.append(layer.name)
        elif layer.weights and key is not None:
            if key != current and key in groups:
                key = f"{key}#{sum(k.split('#')[0] == key for k in groups) + 1}"
            if key != current:
                groups[key] = pending + [layer.name]
                pending, current = [], key
            else:
                groups[key].append(layer.name)
        else:
            groups[current].append(layer.name)
    if not groups:
        raise ValueError(
            f"Model {model.name!r} has no layer with weights, so there is "
            "nothing to group. Fix: pass a built model with trainable layers."
        )
    return groups


def lr_multipliers(
    model: keras.Model,
    factor: float = ULMFIT_FACTOR,
    *,
    lowest: float | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Per-layer learning-rate multipliers that fall from the head to the input.

    ULMFiT's discriminative fine-tuning: the last group (the head) trains at
    the optimizer's rate, the group below it at `1 / factor` of it, the next
    at `1 / factor**2`, and so on, because lower layers hold general features
    that should change least. With `lowest`, the multipliers are instead
    spaced geometrically from `lowest` (first group) to 1 (last group), which
    is fastai's `slice(lo, hi)` with `lo / hi = lowest`.

    Args:
        model: The model to fine-tune.
        factor: Ratio between neighbouring groups. Defaults to 2.6 (ULMFiT).
        lowest: Multiplier of the first group for geometric spacing; when
            given, `factor` is ignored. Defaults to None.
        groups: The groups, as returned by `layer_groups`. Defaults to None:
            `layer_groups(model)`.

    Returns:
        `{layer name: multiplier}` for every layer with weights, ready for
        `with_lr_multipliers` or `two_phase_fit(..., lr_multipliers=...)`.

    Raises:
        ValueError: If `factor` is below 1 or `lowest` is not in (0, 1].

    Example:

    >>> from tlrecipes.discriminative import lr_multipliers
    >>> base = keras.Sequential([keras.Input((8, 8, 1))] + [
    ...     keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")
    ...     for i in range(1, 3)], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> m = lr_multipliers(model, factor=2.0)
    >>> m["block1_conv"], m["block2_conv"], m["head_logits"]
    (0.25, 0.5, 1.0)
    """
    if lowest is None and not (
        isinstance(factor, (int, float))
        and not isinstance(factor, bool)
        and factor >= 1
    ):
        raise ValueError(
            "Received an invalid value for `factor`, expected a number >= 1 (the "
            f"ratio between neighbouring groups). Received: factor={factor!r}. "
            "Fix: use factor=2.6 (ULMFiT)."
        )
    if lowest is not None and not 0 < float(lowest) <= 1:
        raise ValueError(
            "Received an invalid value for `lowest`, expected a multiplier in "
            f"(0, 1]. Received: lowest={lowest!r}. Fix: e.g. lowest=0.01 for "
            "fastai's slice(lr / 100, lr)."
        )
    groups = layer_groups(model) if groups is None else groups
    n = len(groups)
    by_name = {layer.name: layer for layer in flat_layers(model)}
    result: dict[str, float] = {}
    for i, members in enumerate(groups.values()):
        below_top = n - 1 - i
        if lowest is not None:
            value = float(lowest) ** (below_top / (n - 1)) if n > 1 else 1.0
        else:
            value = float(factor) ** -below_top
        for name in members:
            if name in by_name and by_name[name].weights:
                result[name] = value
    return result
