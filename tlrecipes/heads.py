"""A new classification head on a pretrained base, built the way the Keras guide does.

The model is `Input -> [preprocessing] -> base(x, training=False) -> pooling ->
Dropout -> [hidden Dense] -> Dense`. The base stays one nested layer (so
`model.get_layer(base.name)` returns it and saving keeps its structure), and
every head layer is named `head_*`: the run of `head_*` layers at the end of
the model is how `two_phase_fit` finds where the head starts without being
told.

The last layer outputs **logits**, as the Keras guide's own models do, and
every loss tlrecipes picks is computed from logits (`from_logits=True`). On
probabilities, Keras's crossentropy clips them to [1e-7, 1 - 1e-7] on jax and
torch (not on TensorFlow), so an example whose true class falls below 1e-7
gets no gradient and a saturating head stops learning. `predict_proba(model,
x)` gives probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tlrecipes.freezing import flat_layers, freeze, is_batchnorm
from tlrecipes.validation import check_positive_int

__all__ = [
    "add_head",
    "HEAD_PREFIX",
    "RepeatChannels",
    "head_layers",
    "find_base",
    "find_head_start",
    "base_bn_training",
    "outputs_logits",
    "predict_proba",
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
        self.channels = check_positive_int(
            channels, "channels", "use channels=3 for RGB."
        )

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
    In Keras 3 the outer model's training flag still reaches the base's
    layers during `fit` (checked on tensorflow, jax and torch): frozen
    BatchNorm runs in inference mode because it is frozen, but Dropout inside
    the base (EfficientNet's stochastic depth, for one) is active while
    training. Feature caching notices this and stays off.
    When the base outputs a feature map it is pooled to a vector. The last
    layer, `head_logits`, outputs logits (no softmax: see the module
    docstring) in float32, so the head stays stable under mixed precision;
    `predict_proba` turns them into probabilities.

    Args:
        base: The feature extractor: any Keras model, e.g.
            `keras.applications.MobileNetV2(include_top=False)` or
            `tlrecipes.small_convnet()`.
        num_classes: Number of classes (a NumPy integer such as `y.max() + 1`
            is fine). 1 gives a single logit (binary classification); 2 or
            more give one logit per class.
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
    num_classes = check_positive_int(
        num_classes, "num_classes", "use 1 for binary, 2+ for multi-class."
    )
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
    hidden_units = [
        check_positive_int(units, "hidden_units", "give a list of positive sizes.")
        for units in hidden_units
    ]
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
    # training=False is the Keras guide's call. In Keras 3 the outer model's
    # training flag overrides it: an *unfrozen* BatchNorm updates (see
    # freezing.py; keeping BatchNorm frozen is what protects it, the helpers'
    # default) and Dropout inside the base is active during fit.
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
    outputs = keras.layers.Dense(
        num_classes, dtype="float32", name=f"{HEAD_PREFIX}logits"
    )(x)
    model = keras.Model(inputs, outputs, name=name or f"{base.name}_transfer")
    freeze(base, train_bn=bn_training)
    return model


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Returns the head: the run of top-level `head_*` layers that ends the model.

    Only the trailing run counts, so a base with a layer of its own named
    `head_conv` (nested, or earlier in a flat model) is never taken for the
    head.

    Example:

    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="b")
    >>> [layer.name for layer in head_layers(add_head(base, 2))]
    ['head_dropout', 'head_logits']
    """
    layers = list(model.layers)
    start = len(layers)
    while start > 0 and layers[start - 1].name.startswith(HEAD_PREFIX):
        start -= 1
    return layers[start:]


def find_head_start(model: keras.Model) -> int:
    """Index into `flat_layers(model)` of the first head layer.

    Raises:
        ValueError: When the model does not end with `head_*` layers (the
            message says how to name the head instead).

    Example:

    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="b")
    >>> model = add_head(base, 2)
    >>> flat_layers(model)[find_head_start(model)].name
    'head_dropout'
    """
    head = head_layers(model)
    if not head:
        raise ValueError(
            f"Cannot tell where the head of model {model.name!r} starts: its last "
            f"top-level layers are not named {HEAD_PREFIX!r}*. Fix: build the "
            "model with tlrecipes.add_head, or pass head_start=<name or index of "
            "the first head layer>."
        )
    flat = flat_layers(model)
    return next(i for i, layer in enumerate(flat) if layer is head[0])


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


def outputs_logits(model: keras.Model) -> bool:
    """True when the model's last layer is linear (no activation): it outputs logits."""
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    return activation == "linear"


def predict_proba(
    model: keras.Model, x: Any, *, batch_size: int | None = None, verbose: Any = 0
) -> np.ndarray:
    """Class probabilities from a model whose last layer outputs logits.

    `add_head` models output logits (see the module docstring); this is the
    one way to read probabilities from them: softmax over the classes, or a
    sigmoid for a single output unit. A model that already ends in softmax or
    sigmoid is returned as it predicts. To deploy a model that outputs
    probabilities, wrap it: `keras.Sequential([model, keras.layers.Softmax()])`.

    Args:
        model: A Keras classifier.
        x: Inputs, as for `model.predict`.
        batch_size: Passed to `model.predict`. Defaults to None (32).
        verbose: Passed to `model.predict`. Defaults to 0 (silent).

    Returns:
        A NumPy array of probabilities, shape `(n, num_classes)` (or `(n, 1)`
        for one output unit), rows summing to 1 for several classes.

    Example:

    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="b")
    >>> p = predict_proba(add_head(base, 3), np.ones((2, 4), "float32"))
    >>> p.shape, bool(np.allclose(p.sum(axis=1), 1.0))
    ((2, 3), True)
    """
    out = model.predict(x, batch_size=batch_size, verbose=verbose)
    if not outputs_logits(model):
        return np.asarray(out)
    out = np.asarray(out, dtype="float64")
    if out.shape[-1] == 1:
        return (1.0 / (1.0 + np.exp(-out))).astype("float32")
    e = np.exp(out - out.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype("float32")
