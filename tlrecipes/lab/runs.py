"""One training run per strategy, under the budget every strategy shares.

`train_run` builds one target model from a source base, trains it with one
strategy (see `size_sweep`) or as one of Yosinski et al.'s variants, and
measures its learning curve on the test set. Every strategy gets the same
number of optimisation steps (`step_budget`), except `"keras_guide"`, which
copies the Keras guide's recipe as written, epochs and all (`KERAS_GUIDE`).
`run_or_reuse` runs a list of such runs, skipping those a `ResultStore`
already holds.
"""

from __future__ import annotations

import difflib
import math
import re
import time
from collections.abc import Callable
from typing import Any

import keras
from tqdm.auto import tqdm

from tlrecipes.freezing import flat_layers, freeze_until, is_batchnorm, unfreeze
from tlrecipes.heads import add_head, find_base, find_head_start
from tlrecipes.lab.array_splits import ArraySplits, target_splits
from tlrecipes.lab.backbones import block_names, cut_after_block
from tlrecipes.lab.configs import TrainConfig
from tlrecipes.lab.evaluation import LearningCurve, accuracy_of
from tlrecipes.lab.model_copies import fresh_copy
from tlrecipes.lab.results import ResultStore
from tlrecipes.optimizers import make_optimizer
from tlrecipes.training import two_phase_fit

# Heads built by add_head output logits: the loss is computed from them.
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

__all__ = [
    "EXTRA_STRATEGIES",
    "KERAS_GUIDE",
    "STRATEGIES",
    "check_input_shape",
    "check_strategy",
    "deferred_run",
    "make_run_id",
    "run_or_reuse",
    "step_budget",
    "train_run",
]


#: Strategies of `size_sweep` besides `"freeze_<k>"` (first k blocks frozen).
STRATEGIES = ("scratch", "feature_extractor", "two_phase", "fine_tune_all")
#: Strategies `size_sweep` also accepts but does not run by default:
#: `"earlier_block"` (a frozen base cut after an earlier block, its feature
#: map flattened into a new head; `"earlier_block_<k>"` picks block k, and an
#: `_avg` suffix, e.g. `"earlier_block_avg"`, pools the map with global
#: averaging instead, to compare the two), `"feature_extractor_flatten"` (the
#: whole frozen base, its last feature map flattened into the head rather
#: than averaged) and `"keras_guide"` (the Keras transfer-learning guide's
#: recipe as written, counted in epochs; see `KERAS_GUIDE`;
#: `"keras_guide_<e1>_<e2>"` changes its epochs).
EXTRA_STRATEGIES = ("earlier_block", "feature_extractor_flatten", "keras_guide")
#: The Keras guide's recipe (keras.io/guides/transfer_learning, "Fine-tuning"
#: section): base frozen, GlobalAveragePooling -> Dropout(0.2) -> Dense trained
#: with `Adam()` (learning rate 1e-3) for 20 epochs; then `base.trainable =
#: True`, recompile with `Adam(1e-5)`, 10 more epochs; batch size 32; the base
#: called with `training=False`. Its end-to-end cats-vs-dogs example shortens
#: the epochs to 2 and 1. Not step-budgeted: with 10 images per class and 5
#: classes an epoch is 2 steps, as for anyone who copies the guide.
KERAS_GUIDE = {
    "head_epochs": 20,
    "fine_tune_epochs": 10,
    "head_lr": 1e-3,
    "fine_tune_lr": 1e-5,
    "batch_size": 32,
    "dropout": 0.2,
}


def step_budget(n_train: int, config: TrainConfig) -> tuple[int, int, list[int]]:
    """Steps per epoch, epochs (raised to reach min_steps), epochs to evaluate."""
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    points = max(1, config.curve_points)
    eval_epochs = sorted(
        {max(1, round(k * epochs / points)) for k in range(1, points + 1)}
    )
    return steps_per_epoch, epochs, eval_epochs


def _block_start(model: keras.Model, block: int, blocks: int) -> int:
    """Index of the first layer of `block` (the head when past the last block)."""
    if block > blocks:
        return find_head_start(model)
    names = [layer.name for layer in flat_layers(model)]
    return next(i for i, n in enumerate(names) if n.startswith(f"block{block}_"))


def _earlier_block(strategy: str, blocks: int) -> int | None:
    """The cut of `"earlier_block[_<k>][_avg]"` (None if not one, or out of range).

    By default the middle block, ceil(blocks / 2), and always before the last
    block: block 2 of `small_convnet`'s 3 (7x7x64 features), block 1 of 2.
    """
    match = re.fullmatch(r"earlier_block(?:_(\d+))?(?:_avg)?", strategy)
    if not match:
        return None
    k = int(match.group(1)) if match.group(1) else min(blocks - 1, -(-blocks // 2))
    return k if 1 <= k < blocks else None


def _keras_guide_epochs(strategy: str) -> tuple[int, int] | None:
    """(head epochs, fine-tune epochs) of `"keras_guide[_<e1>_<e2>]"`, else None."""
    match = re.fullmatch(r"keras_guide(?:_(\d+)_(\d+))?", strategy)
    if not match:
        return None
    if match.group(1) is None:
        return KERAS_GUIDE["head_epochs"], KERAS_GUIDE["fine_tune_epochs"]
    epochs = int(match.group(1)), int(match.group(2))
    return epochs if epochs[0] >= 1 else None


def check_strategy(strategy: str, blocks: int) -> None:
    """Raises a ValueError listing the known strategies unless `strategy` is one."""
    match = re.fullmatch(r"freeze_(\d+)", strategy)
    if strategy in (*STRATEGIES, "feature_extractor_flatten") or (
        match and 1 <= int(match.group(1)) <= blocks
    ):
        return
    if _earlier_block(strategy, blocks) or _keras_guide_epochs(strategy):
        return
    known = [
        *STRATEGIES,
        *[f"freeze_{k}" for k in range(1, blocks + 1)],
        *EXTRA_STRATEGIES,
    ]
    close = difflib.get_close_matches(strategy, known, n=3, cutoff=0.4)
    raise ValueError(
        f"Unknown strategy. Received: strategy={strategy!r}. Expected one of "
        f"{known} (freeze_<k> freezes the first k of the base's {blocks} blocks; "
        f"earlier_block_<k> reads features after block k < {blocks}, flattened, "
        "or pooled with an _avg suffix; feature_extractor_flatten flattens the "
        "whole frozen base's last map; "
        "keras_guide_<e1>_<e2> runs the Keras guide with e1 + e2 epochs)."
        + (f" Did you mean {close}?" if close else "")
    )


def _compile(model: keras.Model, config: TrainConfig, learning_rate: float) -> None:
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate),
        loss=LOSS,
        metrics=["accuracy"],
    )


def train_run(
    source_base: keras.Model,
    splits: ArraySplits,
    config: TrainConfig,
    seed: int,
    *,
    strategy: str | None = None,
    copy_blocks: int | None = None,
    copy_trainable: bool = False,
) -> tuple[dict[str, Any], keras.Model]:
    """Builds one target model, trains it under the shared budget, measures it.

    Either `strategy` (see `size_sweep`) or `copy_blocks` (Yosinski: blocks
    1..copy_blocks copied from `source_base`, the rest re-initialised; the
    copied blocks frozen unless `copy_trainable`). BatchNorm layers holding
    copied statistics stay frozen (inference mode), as the library's helpers
    keep them; freshly initialised ones train.
    """
    blocks = len(block_names(source_base))
    keras.utils.set_random_seed(seed)
    # Clone first in every case so all runs of one seed draw the same random
    # numbers: the new head starts from the same weights whatever is copied.
    base = fresh_copy(source_base)
    if strategy != "scratch" and copy_blocks is None:
        base.set_weights(source_base.get_weights())
    elif copy_blocks is not None:
        for layer in base.layers:
            match = re.match(r"block(\d+)_", layer.name)
            if match and int(match.group(1)) <= copy_blocks and layer.weights:
                layer.set_weights(source_base.get_layer(layer.name).get_weights())
    cut = _earlier_block(strategy, blocks) if strategy else None
    guide = _keras_guide_epochs(strategy) if strategy else None
    # An earlier block's map keeps where each feature is: flattened, the head
    # can use it; global averaging throws it away (`_avg` to compare).
    flatten = strategy == "feature_extractor_flatten" or bool(
        cut and not strategy.endswith("_avg")
    )
    model = add_head(
        cut_after_block(base, cut) if cut else base,
        splits.num_classes,
        dropout=KERAS_GUIDE["dropout"] if guide else config.dropout,
        pooling="flatten" if flatten else "avg",
        # The guide calls base(x, training=False); elsewhere the base is called
        # without it, so the layers' trainable flags decide BatchNorm's mode.
        bn_training=not guide,
        name="target",
    )
    steps_per_epoch, epochs, eval_epochs = step_budget(len(splits.x_train), config)
    batch_size = config.batch_size
    if guide:  # counted in epochs, as written: no min_steps rule
        batch_size = KERAS_GUIDE["batch_size"]
        steps_per_epoch = max(1, math.ceil(len(splits.x_train) / batch_size))
        epochs = sum(guide)
        points = max(1, config.curve_points)
        eval_epochs = sorted(
            {max(1, round(k * epochs / points)) for k in range(1, points + 1)}
        )
    # The protocol: with a validation split the curve is read on it, the best
    # point's weights are kept, and test is read once, on them (below).
    validation = splits.x_val is not None
    curve = LearningCurve(
        splits.x_val if validation else splits.x_test,
        splits.y_val if validation else splits.y_test,
        eval_epochs,
        steps_per_epoch,
        batch_size,
        keep_best=validation,
    )
    fit = {"batch_size": batch_size, "verbose": 0, "callbacks": [curve]}
    start = time.perf_counter()
    if guide:
        history = _keras_guide_fit(model, splits, guide, fit, curve)
    elif strategy == "two_phase":
        head_epochs = min(
            max(1, round(epochs * config.head_fraction)), max(1, epochs - 1)
        )
        history = two_phase_fit(
            model,
            splits.x_train,
            splits.y_train,
            head_epochs=head_epochs,  # the same budget as every strategy
            fine_tune_epochs=epochs - head_epochs,
            head_lr=config.head_lr,
            fine_tune_lr=config.fine_tune_lr,
            optimizer=config.optimizer,
            train_bn=False,
            **fit,
        )
    else:
        if strategy == "scratch":
            unfreeze(model, train_bn=True)
        elif strategy in ("feature_extractor", "feature_extractor_flatten") or cut:
            freeze_until(model, find_head_start(model))
        elif strategy == "fine_tune_all":
            unfreeze(model)  # BatchNorm keeps the source statistics
        elif strategy is not None:  # freeze_<k>
            k = int(strategy.split("_")[1])
            freeze_until(model, _block_start(model, k + 1, blocks))
        else:
            first_trainable = 0 if copy_trainable else copy_blocks + 1
            freeze_until(model, _block_start(model, max(first_trainable, 1), blocks))
            for layer in flat_layers(base):  # re-initialised BatchNorm trains
                match = re.match(r"block(\d+)_", layer.name)
                if is_batchnorm(layer) and match and int(match.group(1)) > copy_blocks:
                    layer.trainable = True
        # A head on a fully frozen base is a linear probe: it gets head_lr.
        base_trains = bool(find_base(model).trainable_weights)  # the cut, if any
        _compile(model, config, config.learning_rate if base_trains else config.head_lr)
        history = model.fit(splits.x_train, splits.y_train, epochs=epochs, **fit)
    seconds = time.perf_counter() - start
    selection = {"selected_on": "last test point"}
    if validation:
        model.set_weights(curve.best_weights)
        selection = {
            "selected_on": "validation",
            "val_accuracy": curve.best_accuracy,
            "best_step": curve.best_step,
            "n_val": len(splits.x_val),
        }
    metrics = {
        "accuracy": (
            accuracy_of(model, splits.x_test, splits.y_test, batch_size)
            if validation
            else curve.accuracy[-1]
        ),
        **selection,
        "train_accuracy": round(float(history.history["accuracy"][-1]), 6),
        "steps": epochs * steps_per_epoch,
        "epochs": epochs,
        "n_train": len(splits.x_train),
        "n_test": len(splits.x_test),
        "curve_steps": curve.steps,
        "curve_accuracy": curve.accuracy,
        "seconds": round(seconds, 2),
    }
    return metrics, model


def _keras_guide_fit(
    model: keras.Model,
    splits: ArraySplits,
    epochs: tuple[int, int],
    fit: dict[str, Any],
    curve: LearningCurve,
) -> keras.callbacks.History:
    """The Keras guide's two `fit` calls, as written (see `KERAS_GUIDE`)."""
    base = find_base(model)
    base.trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(),  # the guide's default learning rate
        loss=LOSS,
        metrics=["accuracy"],
    )
    history = model.fit(splits.x_train, splits.y_train, epochs=epochs[0], **fit)
    if epochs[1]:
        base.trainable = True  # every base layer, BatchNorm included
        model.compile(
            optimizer=keras.optimizers.Adam(KERAS_GUIDE["fine_tune_lr"]),
            loss=LOSS,
            metrics=["accuracy"],
        )
        curve.offset = epochs[0]
        history = model.fit(splits.x_train, splits.y_train, epochs=epochs[1], **fit)
    return history


def check_input_shape(base: keras.Model, splits: ArraySplits) -> None:
    """Raises a ValueError unless the target images fit the source base's input."""
    expected = tuple(base.input_shape[1:])
    received = tuple(splits.x_train.shape[1:])
    if expected != received:
        raise ValueError(
            f"The target images have shape {received}, but the source base "
            f"expects {expected}. Fix: resize or convert the target images (e.g. "
            "grayscale to 3 channels) to the source's input shape."
        )


def run_or_reuse(
    specs: list[tuple[str, dict[str, Any], Callable[[], dict[str, Any]]]],
    store: ResultStore | None,
    progress: bool,
    desc: str,
) -> list[dict[str, Any]]:
    """Runs each (run_id, columns, train) spec unless the store has it."""
    store = store if store is not None else ResultStore()
    rows, reused = [], 0
    bar = tqdm(specs, desc=desc, disable=not progress, unit="run")
    for run_id, columns, train in bar:
        row = store.get(run_id)
        if row is None:
            row = {"run_id": run_id, **columns, **train()}
            store.add(row)
            row = store.get(run_id)
        else:
            reused += 1
        rows.append(row)
        bar.set_postfix(reused=reused)
    return rows


def make_run_id(
    experiment: str, what: str, size: Any, seed: int, config_hash: str
) -> str:
    """The id a run is stored under in a `ResultStore`."""
    return f"{experiment}|{what}|n={size}|seed={seed}|{config_hash}"


def deferred_run(
    base: keras.Model,
    target: Any,
    n: int | None,
    seed: int,
    config: TrainConfig,
    **kwargs,
) -> Callable[[], dict[str, Any]]:
    """A function that samples the target and trains one run when called."""

    def run() -> dict[str, Any]:
        splits = target_splits(target, n, seed, config.val_per_class)
        check_input_shape(base, splits)
        metrics, _ = train_run(base, splits, config, seed, **kwargs)
        return metrics

    return run
