"""`ImagePreprocessing`: the input scaling of a pretrained network, as a layer.

In its own module (no dependency but Keras) so that `safe_load_model` can
register it before loading a saved model that holds one, such as the
EfficientNet-Lite models `tlrecipes.applications` caches.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["ImagePreprocessing"]

_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="tlrecipes")
class ImagePreprocessing(keras.layers.Layer):
    """Scales RGB images in [0, 255] the way a pretrained network expects.

    One layer for the conventions of `keras.applications` and TF Lite, so the
    scaling is part of the model (and of its saved file) instead of a function
    to remember:

    - `"tf"`: `x / 127.5 - 1`, values in [-1, 1] (MobileNet, MobileNetV2,
      ResNetV2, Inception, Xception, NASNet).
    - `"caffe"`: RGB to BGR, then minus the ImageNet BGR means `(103.939,
      116.779, 123.68)`, no scaling (ResNet, VGG).
    - `"torch"`: `x / 255`, minus `(0.485, 0.456, 0.406)`, divided by
      `(0.229, 0.224, 0.225)` per RGB channel (DenseNet).
    - `"lite"`: `(x - 127) / 128`, the TF Lite EfficientNet-Lite reference
      (mean 127, standard deviation 128).
    - `"none"`: unchanged (networks that scale inside, such as EfficientNet).

    Args:
        mode: One of `"tf"`, `"caffe"`, `"torch"`, `"lite"`, `"none"`.
            Defaults to `"none"`.
        **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

    Raises:
        ValueError: If `mode` is not one of the five.

    Example:

    >>> import numpy as np
    >>> layer = ImagePreprocessing("tf")
    >>> np.asarray(layer(np.array([[0.0, 127.5, 255.0]]))).tolist()
    [[-1.0, 0.0, 1.0]]
    >>> np.asarray(ImagePreprocessing("lite")(np.array([[127.0, 255.0]]))).tolist()
    [[0.0, 1.0]]
    """

    MODES = ("tf", "caffe", "torch", "lite", "none")

    def __init__(self, mode: str = "none", **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(
                "Received an invalid value for `mode`, expected one of "
                f"{list(self.MODES)}. Received: mode={mode!r}. Fix: use the mode "
                "of the network's `preprocess_input` (e.g. 'tf' for MobileNetV2)."
            )
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "lite":
            return (x - 127.0) / 128.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "caffe":
            mean = ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)
            return ops.flip(x, axis=-1) - mean
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}
