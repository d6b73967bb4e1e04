"""Copies of a model: the from-scratch twin, a fresh copy, a copy with the weights.

"Was that really transfer, or did the new layers do all the learning?" is
answered against a **from-scratch twin**: the same architecture,
re-initialised and trained the same way on the target (`scratch_twin`).
`fresh_copy` and `weights_copy` are the two copies the experiments build on.
"""

from __future__ import annotations

import keras

from tlrecipes.freezing import unfreeze

__all__ = ["fresh_copy", "scratch_twin", "weights_copy"]


def _renamed(model: keras.Model, name: str) -> keras.Model:
    return keras.Model(model.input, model.output, name=name)


def fresh_copy(model: keras.Model, name: str | None = None) -> keras.Model:
    """Same architecture, newly initialised weights (BatchNorm stats reset)."""
    return _renamed(keras.models.clone_model(model), name or model.name)


def weights_copy(model: keras.Model, name: str | None = None) -> keras.Model:
    """Same architecture and weights, no shared variables."""
    twin = fresh_copy(model, name)
    twin.set_weights(model.get_weights())
    return twin


def scratch_twin(model: keras.Model, seed: int | None = None) -> keras.Model:
    """Returns the same architecture, re-initialised, with every layer trainable.

    "Was that really transfer, or did the new layers do all the learning?"
    has one honest answer: train a re-initialised copy of the same network
    the same way (same data, optimizer, learning rate and number of steps) and
    compare the learning curves (`transfer_benefit`). The twin has the
    transfer model's layers and shapes but none of its weights: kernels are
    drawn afresh from their initializers and BatchNorm statistics are reset.
    Every layer is trainable, BatchNorm included, because there is nothing
    learned to protect.

    Args:
        model: The transfer model (or any Keras model). It is not changed.
        seed: If given, `keras.utils.set_random_seed(seed)` is called first so
            the twin's initial weights are reproducible. Defaults to None.

    Returns:
        A new, uncompiled `keras.Model` named `"<model name>_scratch"`.

    Example:

    >>> import keras
    >>> base = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(4, 3, name="block1_conv")], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> twin = scratch_twin(model, seed=0)
    >>> twin.count_params() == model.count_params()
    True
    >>> len(twin.trainable_weights) == len(twin.weights)
    True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`scratch_twin` expects a keras.Model. Received: "
            f"model={type(model).__name__}."
        )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    twin = fresh_copy(model, f"{model.name}_scratch")
    unfreeze(twin, train_bn=True)
    return twin
