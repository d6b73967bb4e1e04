"""Images converted for a pretrained backbone: channels, size and its own scaling."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import keras
import numpy as np

from tlrecipes.lab.checks import check_image_size, positive_int

__all__ = ["to_backbone_input"]


# Name (lower case, without "_" or "-") -> keras.applications module.
_PREPROCESS_MODULES = {
    "convnext": "convnext",
    "densenet": "densenet",
    "efficientnetv2": "efficientnet_v2",
    "efficientnet": "efficientnet",
    "inceptionresnetv2": "inception_resnet_v2",
    "inceptionv3": "inception_v3",
    "mobilenetv2": "mobilenet_v2",
    "mobilenetv3": "mobilenet_v3",
    "mobilenet": "mobilenet",
    "nasnet": "nasnet",
    "resnetv2": "resnet_v2",
    "resnet": "resnet",
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "xception": "xception",
}


def _preprocess_function(backbone: str | Callable | None) -> Callable | None:
    if backbone is None or callable(backbone):
        return backbone
    key = str(backbone).lower().replace("_", "").replace("-", "")
    if key.startswith("resnet") and key.endswith("v2"):
        key = "resnetv2"
    for prefix, module in _PREPROCESS_MODULES.items():
        if key.startswith(prefix):
            return getattr(keras.applications, module).preprocess_input
    close = difflib.get_close_matches(key, list(_PREPROCESS_MODULES), n=3)
    raise ValueError(
        f"Received an unknown `backbone`: {backbone!r}, expected the name of a "
        f"keras.applications model. Closest names: {close or 'none'}. Known "
        f"families: {sorted(_PREPROCESS_MODULES)}. Fix: e.g. backbone="
        "'mobilenetv2', or pass the preprocess_input function itself."
    )


def to_backbone_input(
    x: np.ndarray,
    image_size: int | Sequence[int] | None = None,
    backbone: str | Callable | None = None,
    *,
    channels: int = 3,
    chunk_size: int = 512,
) -> np.ndarray:
    """Converts images for a pretrained backbone: channels, size, preprocessing.

    ImageNet backbones expect RGB images of a size they were trained near and
    the exact scaling of their own `preprocess_input`: [-1, 1] for MobileNetV2,
    caffe-style mean subtraction for ResNet50, and nothing at all for
    EfficientNet, MobileNetV3 and ConvNeXt, which rescale inside the model
    (feeding them pre-scaled [0, 1] images is a classic silent bug). This
    repeats a grayscale channel to 3, resizes (bilinear) and applies the
    backbone's own function, in chunks so 60,000 images do not need a second
    full-size float copy. It uses numpy and `keras.ops` only, so it runs on
    every backend.

    Args:
        x: uint8 or float images, NHWC, values in [0, 255].
        image_size: `(height, width)` or one int. Defaults to None (keep).
        backbone: A `keras.applications` model name (e.g. `"mobilenetv2"`,
            `"efficientnetb0"`, `"resnet50"`) whose `preprocess_input` to
            apply, or such a function itself. Defaults to None (only cast to
            float32).
        channels: 3 to repeat grayscale into RGB, or 1 to keep one channel.
            Defaults to 3.
        chunk_size: Images converted at a time. Defaults to 512.

    Returns:
        A float32 numpy array `(n, height, width, channels)`.

    Raises:
        ValueError: For images that are not NHWC with 1 or 3 channels, an
            invalid `image_size` or `chunk_size`, or an unknown `backbone`
            (the message lists the closest names).

    Example:

    >>> import numpy as np
    >>> from tlrecipes.lab.backbone_input import to_backbone_input
    >>> gray = np.full((2, 28, 28, 1), 255, "uint8")
    >>> out = to_backbone_input(gray, 32, "mobilenetv2")
    >>> out.shape, float(out.max())
    ((2, 32, 32, 3), 1.0)
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            "Received an invalid value for `x`, expected images of shape "
            "(n, height, width, 1 or 3). Received: x with shape "
            f"{x.shape}. Fix: add a channel axis with x[..., None]."
        )
    if channels not in (1, 3) or (channels == 1 and x.shape[-1] == 3):
        raise ValueError(
            f"Received an invalid value for `channels`, expected 3 (or 1 for "
            f"grayscale input). Received: channels={channels!r} for images with "
            f"{x.shape[-1]} channels."
        )
    size = check_image_size(image_size)
    chunk_size = positive_int(chunk_size, "chunk_size", "e.g. chunk_size=512.")
    preprocess = _preprocess_function(backbone)
    height, width = size or x.shape[1:3]
    out = np.empty((len(x), height, width, channels), "float32")
    for start in range(0, len(x), chunk_size):
        chunk = x[start : start + chunk_size].astype("float32")
        if chunk.shape[-1] != channels:
            chunk = np.repeat(chunk, channels, axis=-1)
        if (height, width) != chunk.shape[1:3]:
            resized = keras.ops.image.resize(chunk, (height, width))
            chunk = keras.ops.convert_to_numpy(resized).astype("float32")
        if preprocess is not None:
            chunk = np.asarray(
                keras.ops.convert_to_numpy(preprocess(chunk)), dtype="float32"
            )
        out[start : start + len(chunk)] = chunk
    return out
