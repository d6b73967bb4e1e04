"""Phase 1 of `two_phase_fit` on cached features: the base runs once, not every epoch.

`cached_head_phase` decides whether phase 1 may train the head on features
computed once by the frozen base (`tlrecipes.features.cache_problem` says when
that changes nothing); `CachedHeadPhase.prepare` computes them the first time
phase 1 really trains and returns the head model and its `fit` inputs. The
head model shares `model`'s own head layers and optimizer, so the model comes
back with the trained head and nothing is copied.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from typing import Any

import keras
import numpy as np

from tlrecipes.batches import fit_inputs
from tlrecipes.features import (
    FeatureSplit,
    cache_problem,
    dataset_batches,
    extract_features,
    feature_bytes,
    split_at_head,
)
from tlrecipes.validation import is_dataset

__all__ = ["CachedHeadPhase", "cached_head_phase"]

#: Feature arrays larger than this go to a temporary `np.memmap` file, deleted
#: when phase 1 ends (1 GiB).
MEMMAP_THRESHOLD_BYTES = 1 << 30

#: Per backend: a cached head that trains for at most this many steps in all
#: runs eagerly (`run_eagerly=True`), since compiling its train step costs
#: more than it saves. Measured on a 2-core CPU (fashion_a_to_b, 50 images,
#: median of 3): JAX compiled 0.95-1.02 s for 20-60 steps vs eager 0.27 s at
#: 20 and 0.74 s at 60, even near 90; TensorFlow compiled 0.37 s at 20 steps
#: vs eager 0.33 s, and eager loses from 40 steps on, so TensorFlow always
#: compiles. torch runs eagerly unless `jit_compile=True`.
EAGER_HEAD_STEPS = {"jax": 64}

#: Backends on which a cached head runs a whole epoch per call of its train
#: function (`steps_per_execution` = steps per epoch), when no callback
#: needs to see single batches. On TensorFlow a small head's step costs less
#: than Keras's Python work around it: measured on a 2-core CPU
#: (fashion_a_to_b, 10 epochs, medians of 3, identical weights), 14.0 s with
#: one step per call vs 7.7 s with one call per epoch at 1000 images per
#: class (157 steps per epoch), 2.14 s vs 2.00 s at 100 per class (16 steps).
#: JAX gained 5% and compiles one program per batch count; torch refuses
#: it. Below `EPOCH_PER_EXECUTION_MIN_STEPS` steps per epoch the loop costs
#: more to trace than it saves (50 images, 2 steps per epoch: 1.39 s vs 1.20 s).
EPOCH_PER_EXECUTION = ("tensorflow",)
EPOCH_PER_EXECUTION_MIN_STEPS = 16

#: The batch-level callback hooks; a callback that overrides one of these
#: keeps the cached head at one step per call.
BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
)

#: Arrays of at most this many inference batches go through the feature model
#: by direct calls instead of `predict`, which traces a predict function first.
EAGER_EXTRACT_BATCHES = 8



def _scope(model: keras.Model):
    """The model's tf.distribute scope (TensorFlow backend), else a no-op."""
    strategy = getattr(model, "_distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


class CachedHeadPhase:
    """Phase 1 of `two_phase_fit` on cached features (used by training.py).

    Built before phase 1 (cheap: it only checks that caching is valid);
    `prepare` computes the features the first time phase 1 really trains, so
    a resumed run whose phase 1 is finished never runs the base.
    """

    def __init__(
        self,
        model: keras.Model,
        split: FeatureSplit,
        x: Any,
        y: Any,
        validation_data: Any,
        fit_kwargs: dict[str, Any],
        seed: int | None,
    ) -> None:
        self.model, self.split = model, split
        self.x, self.y, self.validation_data = x, y, validation_data
        self.fit_kwargs, self.seed = dict(fit_kwargs), seed
        self.used = False
        self._tmp = None

    def _path(self, name: str, n: int) -> str | None:
        if feature_bytes(self.split.features, n) < MEMMAP_THRESHOLD_BYTES:
            return None
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tlrecipes-features-")
        return os.path.join(self._tmp.name, f"{name}.npy")

    def prepare(self, compiled: dict[str, Any], callbacks: list, epochs: int = 0):
        """Computes the features; returns `(head, inputs)` for `fit`.

        `callbacks` are the user's (read only to see whether any needs single
        batches).

        `epochs` is how many epochs the head will train in this `fit`: a head
        with at most `EAGER_HEAD_STEPS[backend]` steps in all runs eagerly.
        """
        features = self.split.features
        kwargs = dict(self.fit_kwargs)
        batch = int(kwargs.get("batch_size") or 32)
        infer = max(batch, 128)
        x, y = self.x, self.y
        if is_dataset(x):
            x, y, weights = extract_features(features, x)
            first = next(dataset_batches(self.x))[0]
            kwargs.setdefault("batch_size", len(first))
            if weights is not None:
                kwargs["sample_weight"] = weights
        else:
            x = extract_features(
                features, x, batch_size=infer, path=self._path("x", len(x))
            )
        validation = self.validation_data
        if is_dataset(validation):
            xv, yv, wv = extract_features(features, validation)
            validation = (xv, yv) if wv is None else (xv, yv, wv)
        elif validation is not None:
            xv, *rest = validation
            path = self._path("validation_x", len(xv))
            validation = (
                extract_features(features, xv, batch_size=infer, path=path),
                *rest,
            )
        seed = self.seed
        if seed is None and isinstance(x, np.memmap):
            seed = int(np.random.randint(2**31 - 1))  # batches read rows, not all
        if seed is None and not kwargs.get("steps_per_epoch"):
            # The same steps as Keras would take; given explicitly, Keras keeps
            # its data iterator from one epoch to the next instead of building
            # two per epoch (most of an epoch's cost once the base is cached).
            n = math.floor(len(x) * (1.0 - float(kwargs.get("validation_split") or 0)))
            kwargs["steps_per_epoch"] = max(
                1, math.ceil(n / int(kwargs.get("batch_size") or 32))
            )
        inputs = fit_inputs(x, y, validation, kwargs, seed)
        head = self.split.head
        steps = kwargs.get("steps_per_epoch") or math.ceil(
            len(x) / int(kwargs.get("batch_size") or 32)
        )
        if self._eager(compiled, int(epochs) * steps):
            compiled = {**compiled, "run_eagerly": True}
        elif self._epoch_per_execution(compiled, callbacks, inputs):
            # The same steps in the same order, one call per epoch: exact,
            # since an execution then ends where the epoch ends.
            compiled = {
                **compiled,
                "steps_per_execution": int(inputs(0)["steps_per_epoch"]),
            }
        with _scope(self.model):
            head.compile(optimizer=self.model.optimizer, **compiled)
        self.used = True
        return head, inputs

    def _eager(self, compiled: dict[str, Any], total_steps: int) -> bool:
        """Whether the head trains eagerly: few steps, nothing asking otherwise."""
        limit = EAGER_HEAD_STEPS.get(keras.backend.backend(), 0)
        if compiled.get("jit_compile") is True or compiled.get("run_eagerly"):
            return False  # the caller asked for XLA, or it is eager already
        if getattr(self.model, "_distribute_strategy", None) is not None:
            return False
        if keras.distribution.distribution() is not None:
            return False
        return 0 < total_steps <= limit

    def _epoch_per_execution(
        self, compiled: dict[str, Any], callbacks: list, inputs
    ) -> bool:
        """Whether one train-function call may run a whole epoch of the head."""
        if keras.backend.backend() not in EPOCH_PER_EXECUTION:
            return False
        if (compiled.get("steps_per_execution") or 1) != 1:
            return False  # the user chose it
        if getattr(self.model, "_distribute_strategy", None) is not None:
            return False  # not tested under tf.distribute: keep Keras's default
        steps = inputs(0).get("steps_per_epoch")
        if not steps or steps < EPOCH_PER_EXECUTION_MIN_STEPS:
            return False  # an epoch's length is not known, or too short
        return not any(
            not getattr(getattr(c, hook, None), "_is_default", False)
            for c in callbacks
            for hook in BATCH_HOOKS
        )

    def close(self) -> None:
        """Deletes temporary feature files."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def cached_head_phase(
    model: keras.Model,
    head_start: int | str | None,
    cache_features: bool | str,
    x: Any,
    y: Any,
    validation_data: Any,
    fit_kwargs: dict[str, Any],
    seed: int | None,
) -> tuple[CachedHeadPhase | None, str | None]:
    """Decides whether phase 1 runs on cached features (model frozen for it).

    Returns `(phase, None)` when it does, `(None, reason)` when `"auto"`
    finds it invalid, `(None, "disabled")` for False.

    Raises:
        ValueError: For an invalid `cache_features`, or when
            `cache_features=True` and caching would change the training.
    """
    if cache_features is False:
        return None, "cache_features=False"
    if cache_features not in ("auto", True):
        raise ValueError(
            "Received an invalid value for `cache_features`, expected 'auto', True "
            f"or False. Received: cache_features={cache_features!r}. Fix: use "
            "'auto' (cache when valid), True (require it) or False (never)."
        )
    explicit = cache_features is True
    try:
        with _scope(model):
            split = split_at_head(model, head_start)
        problem = cache_problem(model, split, x, validation_data, datasets_ok=explicit)
    except ValueError as err:
        split, problem = None, str(err)
    if problem is None and fit_kwargs.get("validation_split") and is_dataset(x):
        problem = "validation_split needs arrays"
    if problem is not None:
        if explicit:
            raise ValueError(
                "Received cache_features=True, but the base's features cannot be "
                f"cached for this run: {problem}. Caching would train the head on "
                "other inputs than the model sees. Fix: pass cache_features='auto' "
                "(caches only when valid) or False."
            )
        return None, problem
    return (
        CachedHeadPhase(
            model, split, x, y, validation_data, fit_kwargs, seed
        ),
        None,
    )
