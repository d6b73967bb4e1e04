"""`keras.applications` models by a friendly name, with their preprocessing.

`application` gives the ImageNet-pretrained networks of `keras.applications`
together with the `preprocess_input` function each one was trained with: the
most common silent mistake in transfer learning is feeding a pretrained network
inputs scaled the wrong way.

The research backbone `small_convnet` (and `block_names`, `cut_after_block`)
moved to `tlrecipes.lab.backbones`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable

import keras

__all__ = ["application"]

# Friendly name -> (model constructor, module with its preprocess_input).
_APPLICATIONS: dict[str, tuple[str, str]] = {
    "mobilenet": ("MobileNet", "mobilenet"),
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2"),
    "mobilenetv3small": ("MobileNetV3Small", "mobilenet_v3"),
    "mobilenetv3large": ("MobileNetV3Large", "mobilenet_v3"),
    **{f"efficientnetb{i}": (f"EfficientNetB{i}", "efficientnet") for i in range(8)},
    **{
        f"efficientnetv2{v}": (f"EfficientNetV2{v.upper()}", "efficientnet_v2")
        for v in ("b0", "b1", "b2", "b3", "s", "m", "l")
    },
    "resnet50": ("ResNet50", "resnet"),
    "resnet101": ("ResNet101", "resnet"),
    "resnet152": ("ResNet152", "resnet"),
    "resnet50v2": ("ResNet50V2", "resnet_v2"),
    "resnet101v2": ("ResNet101V2", "resnet_v2"),
    "resnet152v2": ("ResNet152V2", "resnet_v2"),
    "vgg16": ("VGG16", "vgg16"),
    "vgg19": ("VGG19", "vgg19"),
    "densenet121": ("DenseNet121", "densenet"),
    "densenet169": ("DenseNet169", "densenet"),
    "densenet201": ("DenseNet201", "densenet"),
    "inceptionv3": ("InceptionV3", "inception_v3"),
    "inceptionresnetv2": ("InceptionResNetV2", "inception_resnet_v2"),
    "xception": ("Xception", "xception"),
    "nasnetmobile": ("NASNetMobile", "nasnet"),
    "nasnetlarge": ("NASNetLarge", "nasnet"),
    **{
        f"convnext{size.lower()}": (f"ConvNeXt{size}", "convnext")
        for size in ("Tiny", "Small", "Base", "Large", "XLarge")
    },
}


def _friendly(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _keras_models_dir() -> str:
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models")


def application(
    name: str,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | os.PathLike | None = "imagenet",
) -> tuple[keras.Model, Callable]:
    """Builds a `keras.applications` base by a friendly name, with its preprocessing.

    Every pretrained network expects its inputs scaled the way it was trained
    (`[-1, 1]` for MobileNetV2, caffe-style BGR means for ResNet50 and VGG,
    raw `[0, 255]` for EfficientNet, which rescales inside the model). The
    matching `preprocess_input` comes back with the model so the two cannot
    be mismatched. The model has no classifier (`include_top=False`) and no
    pooling; put a head on it with `add_head`.

    Args:
        name: A `keras.applications` model, case, `_` and `-` ignored:
            `"mobilenetv2"`, `"MobileNetV3Small"`, `"efficientnet_b0"`,
            `"efficientnetv2b0"`, `"resnet50"`, `"resnet50v2"`, `"vgg16"`,
            `"densenet121"`, `"inceptionv3"`, `"xception"`, `"nasnetmobile"`,
            `"convnext_tiny"`, ...
        input_shape: Shape of one input image, `(height, width, 3)`. Defaults
            to `(224, 224, 3)`.
        weights: `"imagenet"` (downloaded once into Keras's cache,
            `~/.keras/models`), None for random initialisation, or the path
            to a weights file for the model without its top. Defaults to
            `"imagenet"`.

    Returns:
        A tuple `(base, preprocess_input)`: the model and the function to
        apply to images (values in [0, 255]) before they enter it.

    Raises:
        ValueError: For an unknown name (the message lists the closest ones),
            a `weights` path that does not exist, or an `input_shape` the
            model does not accept.
        RuntimeError: When `weights="imagenet"` and the weights are neither
            cached nor downloadable (offline). The message gives the fixes.

    Example:

    >>> import numpy as np
    >>> base, preprocess = application("mobilenetv2", (96, 96, 3), weights=None)
    >>> base.output_shape
    (None, 3, 3, 1280)
    >>> float(preprocess(np.full((1, 1, 1, 3), 255.0))[0, 0, 0, 0])
    1.0
    """
    if not isinstance(name, str):
        raise TypeError(
            f"`name` must be a string. Received: name={name!r}. Fix: e.g. "
            "application('mobilenetv2')."
        )
    key = _friendly(name)
    if key not in _APPLICATIONS:
        close = difflib.get_close_matches(key, list(_APPLICATIONS), n=5, cutoff=0.4)
        raise ValueError(
            f"Unknown backbone name. Received: name={name!r}. Closest known "
            f"names: {close or sorted(_APPLICATIONS)[:8]}. Fix: use one of "
            f"{sorted(_APPLICATIONS)}."
        )
    constructor_name, module_name = _APPLICATIONS[key]
    constructor = getattr(keras.applications, constructor_name)
    preprocess = getattr(keras.applications, module_name).preprocess_input
    if weights not in ("imagenet", None):
        weights = os.fspath(weights)
        if not os.path.exists(weights):
            raise ValueError(
                "Received an invalid value for `weights`: the file does not exist. "
                f"Received: weights={weights!r}. Fix: pass 'imagenet', None (random "
                f"initialisation) or the path of a {constructor_name} weights file "
                "without its top (a '..._notop.h5' file)."
            )
    try:
        base = constructor(include_top=False, weights=weights, input_shape=input_shape)
    except (ValueError, TypeError):
        raise  # a bad input_shape: Keras's own message says what it accepts
    except Exception as err:
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not fetch the ImageNet weights of {constructor_name} (are you "
            f"offline?). Keras said: {err}. Fixes: (1) go online once: the file "
            f"is then cached in {_keras_models_dir()}; (2) copy the '..._notop' "
            "weights file from a machine that has it into that folder, or pass "
            f"its path: application({name!r}, weights='/path/to/file.h5'); "
            f"(3) use weights=None for a randomly initialised {constructor_name} "
            "(then it is not transfer learning)."
        ) from err
    return base, preprocess
