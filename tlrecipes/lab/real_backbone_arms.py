"""Arms on the real-backbone tasks: feature extractor vs the from-scratch twin.

`run_arms` measures, per training-set size and seed, on the same splits:
the feature extractor (a linear head on frozen cached ImageNet features,
`tlrecipes.lab.real_backbone.linear_probe`), the same head on a random-init
twin's features, and the from-scratch twin (`train_scratch_twin`: the same
network from random weights, every layer trained). Every arm gets the same
tuning budget (as many configurations, chosen on validation), the test split
is read once per final model, and arms are compared paired by seed with
`tlrecipes.lab.comparison.compare`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tlrecipes.lab.comparison import check_seeds, compare
from tlrecipes.lab.real_backbone import (
    C_GRID,
    LR_GRID,
    RESOLUTION,
    ProbeResult,
    check_seed_list,
    probe_on_task,
    protocol_settings,
    task_splits,
    to_backbone_input,
)
from tlrecipes.lab.record import device_description
from tlrecipes.lab.tasks import Task, get_task

__all__ = ["run_arms", "train_scratch_twin"]


def train_scratch_twin(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    num_classes: int,
    backbone: str = "efficientnet_lite0",
    size: int = RESOLUTION,
    lr_grid: Sequence[float] = LR_GRID,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
) -> ProbeResult:
    """The backbone from random weights, all layers trained; choices on validation.

    For each learning rate in `lr_grid` (Adam), the network (`weights=None`,
    initialised from `seed`) with a linear softmax head is trained for
    `epochs` and kept at its best-validation epoch; the best of those on
    validation is scored once on test.

    Args:
        train: `(images, labels)` in [0, 255] (resized by `to_backbone_input`).
        val: `(images, labels)` to choose the rate and epoch on.
        test: `(images, labels)` to score the chosen model on.
        num_classes: Number of classes.
        backbone: A `tl.application` name. Defaults to `"efficientnet_lite0"`.
        size: Input side in pixels. Defaults to `RESOLUTION`.
        lr_grid: Learning rates to try. Defaults to `LR_GRID`.
        epochs: Epochs per rate. Defaults to 10.
        batch_size: Batch size. Defaults to 32.
        seed: Seed of the initial weights and the shuffling. Defaults to 0.

    Returns:
        A `ProbeResult` with `choice={"learning_rate", "epoch"}`.
    """
    import keras

    from tlrecipes.applications import application

    start = time.perf_counter()
    x_train, x_val = (to_backbone_input(x, size) for x in (train[0], val[0]))
    best = None
    for lr in lr_grid:
        keras.utils.clear_session()
        keras.utils.set_random_seed(seed)
        base = application(
            backbone, input_shape=(size, size, 3), weights=None, pooling="avg"
        )
        outputs = keras.layers.Dense(num_classes, activation="softmax")(base.output)
        model = keras.Model(base.input, outputs)
        model.compile(
            keras.optimizers.Adam(float(lr)),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
            # XLA spends minutes compiling this network on a CPU (measured:
            # first epoch still running after 150 s at 96 px, vs 60 s without).
            jit_compile=False,
        )
        stop = keras.callbacks.EarlyStopping(
            "val_accuracy", patience=epochs, restore_best_weights=True
        )
        history = model.fit(
            x_train,
            train[1],
            validation_data=(x_val, val[1]),
            epochs=epochs,
            batch_size=batch_size,
            callbacks=[stop],
            verbose=0,
        )
        scores = history.history["val_accuracy"]
        epoch = int(np.argmax(scores))
        if best is None or scores[epoch] > best[0]:
            best = (float(scores[epoch]), float(lr), epoch + 1, model)
    score, lr, epoch, model = best
    correct = 0
    for i in range(0, len(test[0]), 256):
        probs = model.predict(to_backbone_input(test[0][i : i + 256], size), verbose=0)
        correct += int(np.sum(np.argmax(probs, axis=1) == test[1][i : i + 256]))
    accuracy = correct / max(1, len(test[0]))
    return ProbeResult(
        {"learning_rate": lr, "epoch": epoch},
        score,
        float(accuracy),
        time.perf_counter() - start,
    )


def run_arms(
    task: str | Task,
    *,
    sizes: Sequence[int] = (10, 100),
    seeds: Sequence[int] = range(5),
    scratch: bool = True,
    size: int = RESOLUTION,
    val_per_class: int = 20,
    test_per_class: int | None = None,
    epochs: int = 10,
    cache_dir: str | os.PathLike | None = None,
    c_grid: Sequence[float] = C_GRID,
    lr_grid: Sequence[float] = LR_GRID,
) -> dict[str, Any]:
    """Feature extractor vs the random-init probe and the from-scratch twin, by size.

    Arms, per size and seed, on the same splits: `feature_extractor` (the
    linear head on frozen cached ImageNet features, `linear_probe`),
    `random_init_probe` (the same head on a random-init twin's features) and,
    with `scratch=True`, `scratch` (`train_scratch_twin`). Each arm tries
    the same number of configurations (`len(c_grid)` must equal
    `len(lr_grid)`), chosen on validation; the test split is read once per
    final model. Comparisons go through `compare`, paired by seed.

    Args:
        task: A name from `REAL_BACKBONE_TASKS`, or a `Task` with a backbone.
        sizes: Training images per class. Defaults to (10, 100).
        seeds: Seeds; at least 5 on a CPU. Defaults to 0-4.
        scratch: Whether to run the from-scratch twin (minutes per seed on a
            CPU). Defaults to True.
        size: Input side in pixels. Defaults to `RESOLUTION`.
        val_per_class: Validation images per class. Defaults to 20.
        test_per_class: Test images per class, or None for the full split.
            Defaults to None.
        epochs: Epochs per learning rate of the scratch twin. Defaults to 10.
        cache_dir: Feature cache folder. Defaults to `feature_cache_dir()`.
        c_grid: The probe's inverse L2 strengths. Defaults to `C_GRID`.
        lr_grid: The scratch twin's learning rates. Defaults to `LR_GRID`.

    Returns:
        `{"task", "sizes": {n: {"arms": {arm: {seed: result}},
        "comparisons": [Comparison dicts]}}, "seconds"}`.

    Raises:
        ValueError: If the two grids differ in length (unequal tuning
            budgets), or fewer than 2 seeds are given.
    """
    task = get_task(task) if isinstance(task, str) else task
    if scratch and len(c_grid) != len(lr_grid):
        raise ValueError(
            "Received grids of different lengths: `c_grid` has "
            f"{len(c_grid)} values, `lr_grid` {len(lr_grid)}; expected the same "
            "number, so every arm gets the same tuning budget. Fix: pass grids "
            "of equal length."
        )
    seeds = check_seed_list(seeds)
    settings = protocol_settings(
        size=size,
        val_per_class=val_per_class,
        test_per_class=test_per_class,
        cache_dir=cache_dir,
        c_grid=tuple(c_grid),
    )
    start = time.perf_counter()
    out: dict[str, Any] = {"task": task.name, "sizes": {}}
    for n in sizes:
        arms: dict[str, dict[int, ProbeResult]] = {
            "feature_extractor": {
                s: probe_on_task(task, n, s, "imagenet", settings) for s in seeds
            },
            "random_init_probe": {
                s: probe_on_task(task, n, s, None, settings) for s in seeds
            },
        }
        if scratch:
            arms["scratch"] = {}
            for s in seeds:
                train, val, test = task_splits(
                    task, n, s, val_per_class=val_per_class,
                    test_per_class=test_per_class,
                )  # fmt: skip
                arms["scratch"][s] = train_scratch_twin(
                    train,
                    val,
                    test,
                    num_classes=len(task.target_classes),
                    backbone=task.backbone or "efficientnet_lite0",
                    size=settings["size"],
                    lr_grid=lr_grid,
                    epochs=epochs,
                    seed=s,
                )
        tests = {
            a: {s: r.test_accuracy for s, r in res.items()} for a, res in arms.items()
        }
        others = [a for a in arms if a != "feature_extractor"]
        comparisons = [
            compare(
                tests["feature_extractor"],
                tests[other],
                name_a="feature_extractor",
                name_b=other,
                comparisons=len(others),
            )
            for other in others
        ]
        check_seeds(comparisons, device_description())  # warns; returns the flagged
        out["sizes"][n] = {
            "arms": {
                a: {s: r.to_dict() for s, r in res.items()} for a, res in arms.items()
            },
            "comparisons": [c.to_dict() for c in comparisons],
        }
    out["seconds"] = time.perf_counter() - start
    return out
