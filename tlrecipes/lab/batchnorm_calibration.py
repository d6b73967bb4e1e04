"""Calibrating BatchNormalization statistics of a randomly initialised network.

A random-init twin of a pretrained backbone is the control that says what the
pretrained weights add. Read as a feature extractor straight after
initialisation, its BatchNormalization layers hold moving mean 0 and
variance 1 and do not normalise: through EfficientNet-Lite0 the pooled
features shrink to about 1e-12 and a linear probe on them sits at chance.
`calibrate_batchnorm` sets each layer's moving statistics to those of a batch
of target images, the fair version of that control.
"""

from __future__ import annotations

__all__ = ["calibrate_batchnorm"]


def calibrate_batchnorm(model, images, *, training_layers=("Dropout",)) -> int:
    """Sets every BatchNormalization layer's moving statistics to its batch statistics.

    A freshly initialised network's BatchNormalization layers hold moving
    mean 0 and moving variance 1, so in inference mode they do not
    normalise at all; through a deep network the activations shrink (or
    blow up) layer after layer. This runs `images` through `model` once in
    training mode with every BatchNormalization momentum set to 0.0, so each
    layer's moving mean and variance become exactly the mean and variance of
    its input on this batch; momenta are restored afterwards. Layers whose
    class name is in `training_layers` (Dropout, by default) have their
    `rate` set to 0.0 for that pass, so the statistics are those of the
    inference-mode network; their rates are restored too. In inference mode
    the calibrated model then maps `images` exactly as the training-mode
    pass did: each BatchNormalization output is standardised on them.

    Args:
        model: A Keras model (its weights are changed in place).
        images: One batch, already in the model's input format. A few
            hundred images are enough; all are held in memory at once.
        training_layers: Class names of layers made deterministic (rate 0)
            for the pass. Defaults to `("Dropout",)`.

    Returns:
        The number of BatchNormalization layers calibrated.

    Raises:
        ValueError: For fewer than 2 images (a variance needs two), or a
            model without BatchNormalization layers.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)),
    ...                           keras.layers.BatchNormalization()])
    >>> x = np.arange(8, dtype="float32").reshape(2, 4)
    >>> calibrate_batchnorm(model, x)
    1
    >>> model.layers[0].moving_mean.numpy().tolist()
    [2.0, 3.0, 4.0, 5.0]
    """
    import keras

    if len(images) < 2:
        raise ValueError(
            "Received an invalid value for `images`, expected at least 2 images "
            f"(a batch variance needs two). Received: {len(images)}. Fix: pass a "
            "few hundred target training images."
        )
    layers = list(_all_layers(model))
    norms = [x for x in layers if isinstance(x, keras.layers.BatchNormalization)]
    if not norms:
        raise ValueError(
            "Received a `model` without BatchNormalization layers, expected at "
            f"least one to calibrate. Received: {model.name!r}. Fix: calibrate "
            "only networks that use BatchNormalization."
        )
    dropouts = [x for x in layers if type(x).__name__ in training_layers]
    momenta = [x.momentum for x in norms]
    rates = [x.rate for x in dropouts]
    try:
        for layer in norms:
            layer.momentum = 0.0
        for layer in dropouts:
            layer.rate = 0.0
        model(images, training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
        for layer, rate in zip(dropouts, rates, strict=True):
            layer.rate = rate
    return len(norms)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
