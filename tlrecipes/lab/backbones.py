"""The research backbone: a small convnet whose blocks can be cut and copied.

`small_convnet` is the network the project's experiments are run with: a
Yosinski-style stack of conv blocks, small enough to train on a CPU in
seconds, whose layers are named `block{i}_conv`, `block{i}_bn`, `block{i}_relu`
and `block{i}_pool`. Those names are what lets an experiment copy "the first n
blocks" of one network into another (`transferability_by_layer`), freeze the
first k blocks (`freeze_until(model, "block3_conv")`), or cut a network after
block n (`cut_after_block`).

The ImageNet-pretrained networks (EfficientNet-Lite, offline, and
`keras.applications`) come from `tlrecipes.application`, which puts their
input scaling inside the model.
"""

from __future__ import annotations

import re

import keras

__all__ = ["small_convnet", "cut_after_block", "block_names"]


#: Parameters of `small_convnet()` with its defaults (28x28x1 input, 3 blocks,
#: width 32, BatchNorm): 93,344, of which 448 are BatchNorm moving statistics.
SMALL_CONVNET_PARAMS = 93_344

_BLOCK = re.compile(r"^block(\d+)_")


def _positive_int(value: object, name: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive "
            f"integer. Received: {name}={value!r}. Fix: {fix}"
        )
    return value


def small_convnet(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    blocks: int = 3,
    width: int = 32,
    batchnorm: bool = True,
    bn_momentum: float = 0.9,
    name: str = "convnet",
) -> keras.Model:
    """Builds a small convnet base (no classifier) made of named, cuttable blocks.

    Each block is `Conv2D(3x3, same) -> BatchNormalization -> ReLU ->
    MaxPooling2D(2)`, with layers named `block{i}_conv`, `block{i}_bn`,
    `block{i}_relu` and `block{i}_pool`, and the number of filters doubling
    from one block to the next (`width`, `2 * width`, `4 * width`, ...). This
    is the shape of the networks Yosinski et al. (2014) cut layer by layer,
    scaled down so a CPU trains it in seconds on 28x28 images. The output is
    the last block's feature map; put a head on it with `add_head`.

    With the defaults it has 93,344 parameters (`SMALL_CONVNET_PARAMS`):
    92,896 in the convolutions and BatchNorm scales and offsets, and 448
    BatchNorm moving statistics.

    BatchNorm momentum is 0.9, not Keras's 0.99: with 0.99 the moving
    statistics lag far behind the weights on the short schedules this project
    runs. Measured on this project's machines: a small CNN trained for one or
    two epochs on 30,000 Fashion-MNIST images scored 0.86 in training and 0.21
    (chance) in evaluation with 0.99; with 0.9 it scored 0.87-0.90.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`. Defaults
            to `(28, 28, 1)` (MNIST and Fashion-MNIST).
        blocks: Number of conv blocks. Each halves the spatial size (pooling
            uses "same" padding, so the size never drops below 1). Defaults
            to 3.
        width: Filters of the first block; block i has `width * 2**(i-1)`.
            Defaults to 32.
        batchnorm: Whether blocks have a BatchNormalization layer (convolutions
            then drop their redundant bias). Defaults to True.
        bn_momentum: Momentum of the BatchNorm moving statistics. Defaults to
            0.9 (see above for why not 0.99).
        name: Name of the model. Defaults to `"convnet"`.

    Returns:
        A functional `keras.Model` from images to the last block's feature map.

    Raises:
        ValueError: If `blocks` or `width` is not a positive integer,
            `bn_momentum` is outside [0, 1), or `input_shape` is not
            `(height, width, channels)`.

    Example:

    >>> base = small_convnet()
    >>> base.count_params()
    93344
    >>> base.output_shape
    (None, 4, 4, 128)
    >>> [layer.name for layer in base.layers[1:5]]
    ['block1_conv', 'block1_bn', 'block1_relu', 'block1_pool']
    """
    _positive_int(blocks, "blocks", "use e.g. blocks=3.")
    _positive_int(width, "width", "use e.g. width=32.")
    if not 0.0 <= float(bn_momentum) < 1.0:
        raise ValueError(
            "Received an invalid value for `bn_momentum`, expected a number in "
            f"[0, 1). Received: bn_momentum={bn_momentum!r}. Fix: use 0.9 for "
            "short schedules (see the docstring), 0.99 for long ones."
        )
    if len(tuple(input_shape)) != 3:
        raise ValueError(
            "Received an invalid value for `input_shape`, expected (height, "
            f"width, channels). Received: input_shape={input_shape!r}. Fix: add "
            "the channel axis, e.g. (28, 28, 1) for grayscale images."
        )
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for i in range(1, blocks + 1):
        x = keras.layers.Conv2D(
            width * 2 ** (i - 1),
            3,
            padding="same",
            use_bias=not batchnorm,
            name=f"block{i}_conv",
        )(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(
                momentum=bn_momentum, name=f"block{i}_bn"
            )(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name=name)


def block_names(base: keras.Model) -> list[str]:
    """Lists the blocks of a base whose layers are named `block{i}_...`.

    Works for `small_convnet` and for `keras.applications` models that name
    their layers the same way (VGG16, VGG19).

    Args:
        base: A Keras model.

    Returns:
        Block names in order, e.g. `["block1", "block2", "block3"]`; empty when
        no layer follows the naming.

    Example:

    >>> block_names(small_convnet(blocks=2))
    ['block1', 'block2']
    """
    numbers = []
    for layer in base.layers:
        match = _BLOCK.match(layer.name)
        if match and int(match.group(1)) not in numbers:
            numbers.append(int(match.group(1)))
    return [f"block{i}" for i in sorted(numbers)]


def cut_after_block(base: keras.Model, n: int, name: str | None = None) -> keras.Model:
    """Returns the part of a base from its input to the end of block `n`.

    The new model shares its layers (and so its weights) with `base`: it is a
    view, not a copy, in the way `keras.Model(base.input,
    base.get_layer(...).output)` always is. Use it to take features from an
    earlier, more general layer, CS231n's advice for a small target dataset
    that differs from the source, or to study what each depth transfers.

    Args:
        base: A model whose layers are named `block{i}_...` (`small_convnet`,
            VGG16, VGG19). Pass the base itself, not a model with a head
            around it.
        n: Keep blocks 1..n (1-based, as in Yosinski et al.).
        name: Name of the new model. Defaults to `"<base name>_cut<n>"`.

    Returns:
        A functional `keras.Model` ending with the last layer of block `n`.

    Raises:
        ValueError: If `base` has no `block{i}_...` layers, or `n` is not one
            of its blocks.

    Example:

    >>> base = small_convnet()
    >>> cut = cut_after_block(base, 2)
    >>> cut.output_shape
    (None, 7, 7, 64)
    >>> cut.get_layer("block1_conv") is base.get_layer("block1_conv")
    True
    """
    blocks = block_names(base)
    if not blocks:
        nested = [layer.name for layer in base.layers if isinstance(layer, keras.Model)]
        hint = (
            f" It nests the model(s) {nested}: pass that base, e.g. "
            f"cut_after_block(model.get_layer({nested[0]!r}), n)."
            if nested
            else " Build it with tlrecipes.lab.small_convnet, or use "
            "keras.Model(base.input, base.get_layer(<name>).output)."
        )
        raise ValueError(
            f"Model {base.name!r} has no layers named 'block<i>_...', so it "
            f"cannot be cut at a block boundary.{hint}"
        )
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(blocks):
        raise ValueError(
            "Received an invalid value for `n`, expected a block number in "
            f"[1, {len(blocks)}] for model {base.name!r}. Received: n={n!r}. "
            f"Fix: pick one of its blocks {blocks}."
        )
    last = [layer for layer in base.layers if layer.name.startswith(f"block{n}_")][-1]
    return keras.Model(base.inputs, last.output, name=name or f"{base.name}_cut{n}")
