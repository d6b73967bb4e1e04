"""Fine-tuning controls measured against plain fine-tuning, on the protocol.

One (task, seed) cell of the comparison that `notebooks/09` and
`benchmarks/compare_finetune_controls.py` run: a new head is trained on the
frozen source base (phase 1), its best-validation weights are kept, and every
fine-tuning method starts from exactly them with the same phase-2 budget and
the same batch order, so the methods differ in nothing but the method. Each
run reads validation after every epoch and ends on its best-validation
weights; test is read once per method, on those weights.

The methods (`FINE_TUNE_METHODS`):

    head_only          phase 1 only: the new head on frozen features
    plain              unfreeze the base (BatchNorm frozen), Adam at lr
    plain_10x          the same at 10 * lr
    discriminative     ULMFiT rates: head at lr, each block below / 2.6
    discriminative_hi  the same with the head at 10 * lr (fastai-style)
    gradual            gradual unfreezing: block3, then block2, then block1
    surgical_<g>       only group g trains (block1, block2, block3, head)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tlrecipes.lab import evaluation

#: Every method a cell can run, with what trains at which rate.
FINE_TUNE_METHODS = {
    "head_only": "phase 1 only: the new head on the frozen base",
    "plain": "everything but BatchNorm at lr (two_phase_fit's phase 2)",
    "plain_10x": "the same at 10 x lr",
    "discriminative": "head at lr, each block below / 2.6 (ULMFiT)",
    "discriminative_hi": "head at 10 x lr, each block below / 2.6 (fastai-style)",
    "gradual": "block3 + head, then block2 too, then all; a third of the epochs each",
    "surgical_block1": "only block1",
    "surgical_block2": "only block2",
    "surgical_block3": "only block3",
    "surgical_head": "only the head",
}


class BestOnValidation(keras.callbacks.Callback):
    """Reads validation accuracy after every epoch and keeps the best weights.

    After `fit`, `weights` holds the weights of the best-validation epoch
    (ties keep the earliest), `best` its accuracy, `best_epoch` its number
    (from 1) and `scores` every epoch's accuracy. Set them on the model with
    `model.set_weights(callback.weights)`: that is the final model, the one
    whose test accuracy is read.

    Args:
        x_val: Validation images, as the model takes them.
        y_val: Their integer labels.
        batch_size: Batch size of the validation reads. Defaults to 256.

    Example:

    >>> import keras, numpy as np
    >>> from tlrecipes.lab.finetune_controls import BestOnValidation
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    >>> x, y = np.random.rand(16, 4).astype("float32"), np.arange(16) % 2
    >>> best = BestOnValidation(x, y)
    >>> _ = model.fit(x, y, epochs=3, verbose=0, callbacks=[best])
    >>> len(best.scores), 1 <= best.best_epoch <= 3
    (3, True)
    """

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, batch_size: int = 256):
        super().__init__()
        if len(x_val) == 0 or len(x_val) != len(y_val):
            raise ValueError(
                "BestOnValidation: `x_val` and `y_val` must be non-empty and of "
                f"the same length; received {len(x_val)} images and "
                f"{len(y_val)} labels. Fix: pass the validation split."
            )
        self.x_val, self.y_val, self.batch_size = x_val, np.asarray(y_val), batch_size
        self.scores: list[float] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        score = evaluation.accuracy_of(
            self.model, self.x_val, self.y_val, self.batch_size
        )
        self.scores.append(score)
        if self.best is None or score > self.best:
            self.best, self.best_epoch = score, len(self.scores)
            self.weights = self.model.get_weights()


def fine_tune(
    model: keras.Model,
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    epochs: int,
    batch_size: int = 32,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> None:
    """Phase 2 of one method on a model whose new head is already trained.

    Args:
        model: A model built by `tl.add_head` on a `lab` convnet base.
        method: One of `FINE_TUNE_METHODS` other than `"head_only"`.
        x: Training images.
        y: Their integer labels.
        lr: The base learning rate (`plain` trains at it).
        epochs: The phase-2 budget, the same for every method.
        batch_size: Batch size. Defaults to 32.
        callbacks: Keras callbacks of the fit (e.g. `BestOnValidation`).

    Raises:
        ValueError: If `method` is not a fine-tuning method.

    Example:

    >>> from tlrecipes.lab.finetune_controls import FINE_TUNE_METHODS
    >>> "discriminative_hi" in FINE_TUNE_METHODS
    True
    """
    from tlrecipes.discriminative import lr_multipliers
    from tlrecipes.finetune import gradual_unfreeze_fit, surgical_fit
    from tlrecipes.training import two_phase_fit

    if method not in FINE_TUNE_METHODS or method == "head_only":
        raise ValueError(
            f"fine_tune: unknown `method` {method!r}. Expected one of "
            f"{[m for m in FINE_TUNE_METHODS if m != 'head_only']}. Fix: pick one."
        )
    fit = {"batch_size": batch_size, "verbose": 0, "callbacks": list(callbacks)}
    if method in ("plain", "plain_10x", "discriminative", "discriminative_hi"):
        top = lr * (10 if method in ("plain_10x", "discriminative_hi") else 1)
        multipliers = lr_multipliers(model, 2.6) if method.startswith("disc") else None
        two_phase_fit(
            model, x, y, head_epochs=0, fine_tune_epochs=epochs,
            fine_tune_lr=top, lr_multipliers=multipliers, **fit,
        )  # fmt: skip
    elif method == "gradual":
        gradual_unfreeze_fit(
            model, x, y, epochs_per_stage=max(1, epochs // 3), learning_rate=lr,
            **fit,
        )  # fmt: skip
    else:
        block = method.removeprefix("surgical_")
        surgical_fit(model, x, y, block=block, epochs=epochs, learning_rate=lr, **fit)


def finetune_controls_cell(
    task_name: str,
    seed: int,
    *,
    n_per_class: int,
    val_per_class: int,
    head_epochs: int,
    fine_tune_epochs: int,
    lr: float = 1e-4,
    methods: Sequence[str] = tuple(FINE_TUNE_METHODS),
    batch_size: int = 32,
    test_images: int | None = None,
) -> list[dict[str, Any]]:
    """Every method for one (task, seed), from one shared phase-1 model.

    The target sample is `lab`'s protocol draw (`val_per_class` validation
    images per class first, with the seed alone; `n_per_class` training
    images from the rest). Phase 1 trains a new head on the frozen shipped
    (or cached) source base for `head_epochs` and keeps its best-validation
    weights; every method in `methods` then starts from them, with the batch
    order of seed `seed + 1000`, for `fine_tune_epochs`.

    Args:
        task_name: An offline task with a trained source, e.g.
            `"fashion_a_to_b"` or `"fashion_to_mnist"`.
        seed: Seed of the sample, the head and the batch order.
        n_per_class: Training images per class.
        val_per_class: Validation images per class.
        head_epochs: Phase-1 epochs.
        fine_tune_epochs: Phase-2 epochs of every method.
        lr: Base fine-tuning rate. Defaults to 1e-4 (`two_phase_fit`'s).
        methods: Methods to run, from `FINE_TUNE_METHODS`; `"head_only"` (if
            listed) records the phase-1 model. Defaults to all of them.
        batch_size: Batch size. Defaults to 32.
        test_images: Read only the first this many test images (quick runs).
            Defaults to None: the whole test split.

    Returns:
        One row per method: task, seed, method, `val_accuracy` (best),
        `best_epoch`, `val_curve`, `test_accuracy` (read once, on the
        best-validation weights), sizes and seconds.

    Raises:
        ValueError: If a method is unknown, or a size or epoch count is not
            a positive integer, before anything trains.

    Example:

    >>> from tlrecipes.lab.finetune_controls import finetune_controls_cell
    >>> rows = finetune_controls_cell(
    ...     "fashion_a_to_b", 0, n_per_class=4, val_per_class=2, head_epochs=1,
    ...     fine_tune_epochs=1, methods=("head_only", "plain"), test_images=50)
    >>> [r["method"] for r in rows], rows[1]["test_reads"]
    (['head_only', 'plain'], 1)
    """
    from tlrecipes.heads import add_head
    from tlrecipes.lab.array_splits import target_splits
    from tlrecipes.lab.notebook_setup import get_source
    from tlrecipes.lab.tasks import get_task
    from tlrecipes.training import two_phase_fit

    unknown = [m for m in methods if m not in FINE_TUNE_METHODS]
    if unknown or not methods:
        raise ValueError(
            f"finetune_controls_cell: unknown `methods` {unknown or methods!r}. "
            f"Expected names from {list(FINE_TUNE_METHODS)}. Fix: pick from these."
        )
    for name, value in [
        ("n_per_class", n_per_class),
        ("val_per_class", val_per_class),
        ("head_epochs", head_epochs),
        ("fine_tune_epochs", fine_tune_epochs),
    ]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"finetune_controls_cell: `{name}` must be a positive integer; "
                f"received {value!r}. Fix: pass e.g. {name}=5."
            )
    source = get_source(task_name)
    data = target_splits(get_task(task_name), n_per_class, seed, val_per_class)
    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if test_images is not None:
        x_test, y_test = x_test[:test_images], y_test[:test_images]
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = add_head(source.copy_base(), data.num_classes)
    best = BestOnValidation(data.x_val, data.y_val, batch_size)
    two_phase_fit(
        model, x, y, head_epochs=head_epochs, fine_tune_epochs=0,
        batch_size=batch_size, verbose=0, callbacks=[best],
    )  # fmt: skip
    after_head = best.weights
    rows = []

    def record(method: str, t0: float, best: BestOnValidation, epochs: int) -> None:
        model.set_weights(best.weights)  # the final model: best on validation
        test = evaluation.accuracy_of(model, x_test, y_test, batch_size)  # the one read
        rows.append(
            {
                "task": task_name,
                "n_per_class": n_per_class,
                "val_per_class": val_per_class,
                "seed": seed,
                "method": method,
                "val_accuracy": best.best,
                "best_epoch": best.best_epoch,
                "val_curve": best.scores,
                "test_accuracy": round(test, 4),
                "test_reads": 1,
                "n_val": len(data.x_val),
                "n_test": len(x_test),
                "phase2_epochs": epochs,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )

    if "head_only" in methods:
        record("head_only", start, best, 0)
    for method in (m for m in methods if m != "head_only"):
        t0 = time.perf_counter()
        model.set_weights(after_head)
        keras.utils.set_random_seed(seed + 1000)  # the same batches for all
        best = BestOnValidation(data.x_val, data.y_val, batch_size)
        fine_tune(
            model, method, x, y, lr=lr, epochs=fine_tune_epochs,
            batch_size=batch_size, callbacks=[best],
        )  # fmt: skip
        record(method, t0, best, fine_tune_epochs)
    return rows
