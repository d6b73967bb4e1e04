"""Batches in an order fixed by `(seed, epoch)`, so a resumed run sees the same data.

Keras shuffles arrays with the process's random state, so a process that
resumes a killed run would see other batches than the run it continues.
With `seed`, `two_phase_fit` feeds arrays through `SeededBatches` instead and
reseeds Keras's random state at the first batch of every epoch
(`reseed`): then the same seed gives the same numbers twice, and a resumed
run ends where an uninterrupted one would. Datasets (`PyDataset`,
`tf.data`) keep their own order; they are only reseeded.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

__all__ = ["SeededBatches", "epoch_seed", "fit_inputs", "reseed"]


class SeededBatches(keras.utils.PyDataset):
    """Array batches in an order fixed by `(seed, epoch)`, not by process state.

    Item `i` is batch `i % steps` of epoch `first_epoch + i // steps`, in a
    permutation drawn from `np.random.default_rng([seed, epoch, lap])`: the
    same in any process. The dataset reports no number of batches
    (`num_batches` is None), so Keras keeps one iterator for the whole `fit`
    and `i` counts from the fit's first epoch; `len()` gives the steps of one
    epoch, for code that asks.

    Args:
        arrays: The arrays to batch together (inputs, labels, sample weights).
        batch_size: Examples per batch.
        steps: Batches per epoch (may exceed one pass over the data).
        seed: The run's seed.
        first_epoch: The epoch the fit starts at.
        shuffle: Whether to permute at all. Defaults to True.
    """

    def __init__(
        self,
        arrays: list[np.ndarray],
        batch_size: int,
        steps: int,
        seed: int,
        first_epoch: int,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.arrays = arrays
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed
        self.first_epoch = first_epoch
        self.shuffle = shuffle
        self.size = len(arrays[0])
        self.batches = math.ceil(self.size / batch_size)
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    @property
    def num_batches(self) -> None:
        return None

    def __len__(self) -> int:
        return self.steps

    def _order(self, epoch: int, lap: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        if (epoch, lap) not in self._orders:
            self._orders = {  # keep only the current epoch's orders
                key: v for key, v in self._orders.items() if key[0] == epoch
            }
            rng = np.random.default_rng([self.seed, epoch, lap])
            self._orders[(epoch, lap)] = rng.permutation(self.size)
        return self._orders[(epoch, lap)]

    def __getitem__(self, i: int) -> tuple:
        epoch, step = divmod(int(i), self.steps)
        lap, b = divmod(step, self.batches)  # steps_per_epoch may exceed a pass
        order = self._order(self.first_epoch + epoch, lap)
        index = order[b * self.batch_size : (b + 1) * self.batch_size]
        return tuple(a[index] for a in self.arrays)


def fit_inputs(
    x: Any,
    y: Any,
    validation_data: Any,
    fit_kwargs: dict[str, Any],
    seed: int | None,
) -> Callable[[int], dict[str, Any]]:
    """Returns `inputs(first_epoch) -> dict` of `model.fit` keyword arguments.

    Without a seed, or for datasets, the arguments are passed through as
    given. With a seed and arrays, the training data becomes a
    `SeededBatches` (Keras's `validation_split` is reproduced: the last
    fraction of the arrays, before any shuffling).
    """
    if seed is None or not isinstance(x, np.ndarray):
        fixed = {"x": x, "y": y, "validation_data": validation_data, **fit_kwargs}
        return lambda first_epoch: fixed
    kwargs = dict(fit_kwargs)
    batch_size = kwargs.pop("batch_size", None) or 32
    shuffle = kwargs.pop("shuffle", True)
    split = kwargs.pop("validation_split", 0.0)
    sample_weight = kwargs.pop("sample_weight", None)
    arrays = [np.asarray(a) for a in (x, y, sample_weight) if a is not None]
    if split and validation_data is None:  # as Keras splits: the last fraction
        cut = int(math.floor(len(x) * (1.0 - split)))
        validation_data = tuple(a[cut:] for a in arrays)
        arrays = [a[:cut] for a in arrays]
    steps = kwargs.pop("steps_per_epoch", None) or math.ceil(
        len(arrays[0]) / batch_size
    )
    kwargs.setdefault("validation_batch_size", batch_size)

    def inputs(first_epoch: int) -> dict[str, Any]:
        batches = SeededBatches(arrays, batch_size, steps, seed, first_epoch, shuffle)
        return {
            "x": batches,
            "validation_data": validation_data,
            "steps_per_epoch": steps,
            "shuffle": False,
            **kwargs,
        }

    return inputs


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch of a run: a fixed function of `(seed, epoch)`."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] >> 1)


def reseed(seed: int) -> None:
    """`keras.utils.set_random_seed(seed)` without TensorFlow's global seed.

    `tf.random.set_seed` clears TensorFlow's kernel caches, so every compiled
    train step is set up again afterwards: measured 20-50 ms per epoch on a
    2-core CPU, more than a whole small epoch. Keras 3 layers draw their
    randomness from their own seed generators and stateless ops, not from
    TensorFlow's global seed, so it is left alone here (it is still set once
    by the user's own `keras.utils.set_random_seed`).
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
    except ImportError:  # a Keras without these internals: the public call
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)
