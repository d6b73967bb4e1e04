"""A new classification head on a pretrained base, built the way the Keras guide does.

The model is `Input -> [preprocessing] -> base(x, training=False) -> pooling ->
Dropout -> [hidden Dense] -> Dense`. The base stays one nested layer (so
`model.get_layer(base.name)` returns it and saving keeps its structure), and
every head layer is named `head_*`, which is how `two_phase_fit` and
`freeze_until` find where the head starts without being told.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tlrecipes.freezing import flat_layers, freeze, is_batchnorm

__all__ = [
    "add_head",
    "HEAD_PREFIX",
    "RepeatChannels",
    "head_layers",
    "find_base",
    "base_bn_training",
]

HEAD_PREFIX = "head_"


@keras.saving.register_keras_serializable(package="tlrecipes")
class RepeatChannels(keras.layers.Layer):
    """Repeats a one-channel image into `channels` channels (grayscale -> RGB).

    ImageNet backbones expect three channels; copying the gray channel into R,
    G and B is the standard way to feed them grayscale images. `add_head`
    inserts this layer when `input_shape` has 1 channel and the base expects 3.
    It is a registered layer, not a `Lambda`, so a model holding it saves and
    loads with `safe_mode` on.

    Args:
        channels: Number of output channels. Defaults to 3.

    Example:

    >>> import numpy as np
    >>> tuple(RepeatChannels()(np.ones((1, 2, 2, 1), "float32")).shape)
    (1, 2, 2, 3)
    """

    def __init__(self, channels: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels = _positive_int(channels, "channels", "use channels=3 for RGB.")

    def call(self, inputs):
        return keras.ops.repeat(inputs, self.channels, axis=-1)

    def compute_output_shape(self, input_shape):
        last = input_shape[-1]
        return (*input_shape[:-1], None if last is None else last * self.channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "channels": self.channels}


def _shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _match_base(x, base: keras.Model):
    """Adapts `x` to the base's expected input, or says why it cannot."""
    try:
        expected = tuple(base.input_shape[1:])
    except (AttributeError, ValueError):
        return x  # a subclassed base: it checks its own inputs
    got = tuple(x.shape[1:])
    if len(got) == len(expected) == 3 and got[-1] == 1 and expected[-1] == 3:
        x = RepeatChannels(3, name="gray_to_rgb")(x)
        got = tuple(x.shape[1:])
    mismatch = len(got) != len(expected) or any(
        e is not None and g is not None and g != e
        for g, e in zip(got, expected, strict=True)
    )
    if mismatch:
        raise ValueError(
            f"Inputs reaching base {base.name!r} have shape {_shape(got)} but it "
            f"expects {_shape(expected)}. Fix: pass input_shape matching the "
            "base, add keras.layers.Resizing(h, w) to `preprocessing`, or build "
            "the base for this size (keras.applications accept input_shape with "
            "include_top=False). Grayscale (h, w, 1) inputs are repeated to RGB "
            "automatically; other channel counts are not."
        )
    return x


def _positive_int(value: object, name: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive "
            f"integer. Received: {name}={value!r}. Fix: {fix}"
        )
    return value


def add_head(
    base: keras.Model,
    num_classes: int,
    *,
    dropout: float = 0.2,
    hidden_units: Sequence[int] = (),
    pooling: str = "avg",
    input_shape: tuple[int, ...] | None = None,
    preprocessing: keras.layers.Layer | Sequence[keras.layers.Layer] | None = None,
    bn_training: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Wraps a (pretrained) base in a new model with a fresh classifier head.

    The base is called with `training=False` and returned **frozen**, ready for
    the first phase of transfer learning (train the head on frozen features).
    When the base outputs a feature map it is pooled to a vector. The output
    layer is kept in float32 so the head stays stable under mixed precision.

    Args:
        base: The feature extractor: any Keras model, e.g.
            `keras.applications.MobileNetV2(include_top=False)` or
            `tlrecipes.small_convnet()`.
        num_classes: Number of classes. 1 gives a single sigmoid unit (binary
            classification); 2 or more give a softmax layer.
        dropout: Dropout rate before the classifier; 0 disables it. Defaults to
            0.2, as in the Keras guide.
        hidden_units: Sizes of optional ReLU Dense layers between pooling and
            the output. Defaults to `()` (none).
        pooling: `"avg"` or `"max"` global pooling applied when the base
            outputs a feature map (rank 4); `"flatten"` flattens it instead.
            Defaults to `"avg"`.
        input_shape: Shape of one input example, without the batch axis.
            Defaults to the base's own input shape. A grayscale shape
            `(h, w, 1)` on a base that expects 3 channels inserts a
            `RepeatChannels` layer (named `gray_to_rgb`) just before the base,
            after `preprocessing`, that copies the channel into RGB.
        preprocessing: A layer, or a list of layers (e.g. rescaling or
            augmentation), applied to the input before the base. Defaults to
            None.
        bn_training: If True, the base's BatchNormalization layers stay
            trainable while the rest of the base is frozen: they run in
            training mode and re-estimate their statistics on the new data
            (the large-data, different-domain case). `two_phase_fit` keeps this
            choice in both phases. Defaults to False (inference mode).
        name: Name of the returned model. Defaults to `"<base name>_transfer"`.

    Returns:
        A new functional `keras.Model`, not compiled, with the base frozen.

    Raises:
        ValueError: For a non-positive `num_classes`, an unknown `pooling`, a
            `dropout` outside [0, 1), a base whose input shape is unknown
            when `input_shape` is not given, or inputs whose shape the base
            cannot take (other than grayscale on an RGB base).

    Example:

    >>> import keras
    >>> base = keras.Sequential(
    ...     [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3)], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> model.output_shape
    (None, 3)
    >>> model.get_layer("base").trainable
    False
    """
    if not isinstance(base, keras.Model):
        raise TypeError(
            "`add_head` expects `base` to be a keras.Model. Received: "
            f"base={type(base).__name__}. Fix: wrap the layers in keras.Sequential "
            "or pass a keras.applications model built with include_top=False."
        )
    _positive_int(num_classes, "num_classes", "use 1 for binary, 2+ for multi-class.")
    if pooling not in ("avg", "max", "flatten"):
        raise ValueError(
            "Received an invalid value for `pooling`, expected 'avg', 'max' or "
            f"'flatten'. Received: pooling={pooling!r}. Fix: use pooling='avg'."
        )
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(
            "Received an invalid value for `dropout`, expected a rate in [0, 1). "
            f"Received: dropout={dropout!r}. Fix: use e.g. dropout=0.2, or 0 to "
            "disable it."
        )
    for units in hidden_units:
        _positive_int(units, "hidden_units", "give a list of positive layer sizes.")
    if input_shape is None:
        try:
            input_shape = tuple(base.input_shape[1:])
        except (AttributeError, ValueError) as err:
            raise ValueError(
                f"Cannot read the input shape of base {base.name!r}. Fix: pass "
                "input_shape=(height, width, channels) to add_head."
            ) from err

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    if preprocessing is not None:
        layers = (
            list(preprocessing)
            if isinstance(preprocessing, (list, tuple))
            else [preprocessing]
        )
        for layer in layers:
            x = layer(x)
    x = _match_base(x, base)
    # training=False is the Keras guide's call. In Keras 3 it does not stop an
    # *unfrozen* BatchNorm from updating (see freezing.py); keeping BatchNorm
    # layers frozen is what does, and the helpers do that by default.
    x = base(x) if bn_training else base(x, training=False)
    if len(x.shape) == 4:
        if pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name=f"{HEAD_PREFIX}pool")(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name=f"{HEAD_PREFIX}pool")(x)
        else:
            x = keras.layers.Flatten(name=f"{HEAD_PREFIX}pool")(x)
    elif len(x.shape) > 2:
        x = keras.layers.Flatten(name=f"{HEAD_PREFIX}pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{HEAD_PREFIX}dropout")(x)
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(
            units, activation="relu", name=f"{HEAD_PREFIX}dense_{i}"
        )(x)
    activation = "sigmoid" if num_classes == 1 else "softmax"
    outputs = keras.layers.Dense(
        num_classes, activation=activation, dtype="float32", name=f"{HEAD_PREFIX}output"
    )(x)
    model = keras.Model(inputs, outputs, name=name or f"{base.name}_transfer")
    freeze(base, train_bn=bn_training)
    return model


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Returns the top-level layers whose names start with `head_`."""
    return [layer for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]


def find_base(model: keras.Model) -> keras.Model | None:
    """Returns the nested base model of a model built by `add_head`, if any."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if len(nested) == 1 else None


def base_bn_training(model: keras.Model) -> bool:
    """True when the base was built with `bn_training=True` (BatchNorm trainable
    while the rest of the base is frozen)."""
    base = find_base(model)
    if base is None:
        return False
    layers = flat_layers(base)
    bns = [layer for layer in layers if is_batchnorm(layer)]
    others = [layer for layer in layers if layer.weights and not is_batchnorm(layer)]
    return (
        bool(bns)
        and all(bn.trainable for bn in bns)
        and not any(layer.trainable for layer in others)
    )
