"""TensorFlow for the tf.data loaders, imported only when one of them runs.

The lab's data modules import only `keras` and numpy at module level:
TensorFlow is imported inside the functions that need tf.data or
tensorflow-datasets (`import_tensorflow`), so the in-memory loaders work on
the jax and torch backends. `finish_pipeline` gives every streaming loader the
same ending: cache, shuffle (training only), batch, prefetch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["AUTO_CACHE_BYTES", "finish_pipeline", "import_tensorflow"]

AUTO_CACHE_BYTES = 2 * 1024**3  # cache a decoded split in memory up to this size


def import_tensorflow():
    """Imports TensorFlow for tf.data (hiding the GPU from it on jax and torch)."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "This loader builds a tf.data pipeline and needs TensorFlow, which "
            "is not installed. Fix: pip install 'tlrecipes[tensorflow]' (it "
            "works with every Keras backend), or use the in-memory loaders "
            "load_fashion_mnist / load_mnist."
        ) from error
    if keras.backend.backend() != "tensorflow":
        try:  # tf.data only feeds the model: leave the GPU to jax / torch
            tf.config.set_visible_devices([], "GPU")
        except (RuntimeError, ValueError):
            pass  # TensorFlow already initialised its devices
    return tf


def finish_pipeline(
    ds: tf.data.Dataset,
    *,
    training: bool,
    batch_size: int,
    cache: bool,
    seed: int | None,
    shuffle_buffer: int,
) -> tf.data.Dataset:
    """cache -> shuffle (training only) -> batch -> prefetch, on unbatched data."""
    import tensorflow as tf  # already imported (and set up) by the caller

    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
