"""Measuring transfer: the classic studies, each a single call.

The questions people ask about transfer learning ("was that really transfer,
or did the new layers do all the learning?", "how many layers should I
freeze?", "how much data before transfer stops helping?") are answered by
measurement, with the same few ingredients every time:

- a **source model**, trained once on the source task and then reused the way
  ImageNet weights are (`tlrecipes.lab.sources`);
- a **from-scratch twin**: the same architecture, re-initialised and trained
  the same way on the target (`tlrecipes.lab.model_copies.scratch_twin`);
- **learning curves** of both, reduced to the three benefits of Torrey &
  Shavlik (`tlrecipes.lab.results.transfer_benefit`), with mean and spread
  over seeds (`aggregate`);
- the two classic studies as single calls, in this module: Yosinski et al.
  2014's transferability by layer (`transferability_by_layer`) and Soekhoe et
  al. 2016's dataset-size sweep (`size_sweep`), plus the plain comparison of
  one transfer strategy against its twin (`transfer_vs_scratch`).

Every run trains under the same budget of optimisation steps (`TrainConfig`,
`tlrecipes.lab.runs`) and is recorded in a `ResultStore`, so an interrupted
sweep resumes where it stopped and a finished one reloads without retraining.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tlrecipes.heads import find_base
from tlrecipes.lab.array_splits import prepare_target, target_identity, target_splits
from tlrecipes.lab.backbones import block_names
from tlrecipes.lab.configs import TrainConfig, as_config
from tlrecipes.lab.fingerprints import stable_hash, weights_fingerprint
from tlrecipes.lab.results import (
    BENEFIT_MEASURES,
    ResultStore,
    aggregate,
    transfer_benefit,
)
from tlrecipes.lab.runs import (
    STRATEGIES,
    check_input_shape,
    check_strategy,
    deferred_run,
    make_run_id,
    run_or_reuse,
    train_run,
)
from tlrecipes.lab.sources import SourceModel

__all__ = [
    "ScratchComparison",
    "VARIANTS",
    "size_sweep",
    "transfer_vs_scratch",
    "transferability_by_layer",
]


#: Yosinski et al.'s variants: layers copied from A or B, frozen or ("+")
#: fine-tuned.
VARIANTS = ("AnB", "AnB+", "BnB", "BnB+")


def _source_base(source: Any, name: str = "source") -> tuple[keras.Model, str]:
    """The feature extractor to transfer from, and an identity for hashing."""
    if isinstance(source, SourceModel):
        return source.base, f"{source.info.get('name')}-{source.info.get('key')}"
    if isinstance(source, keras.Model):
        base = source if block_names(source) else find_base(source)
        if base is not None and block_names(base):
            return base, weights_fingerprint(base)
    raise TypeError(
        f"`{name}` must be a SourceModel (from train_source_model) or a Keras "
        "base whose layers are named block<i>_... (tlrecipes.small_convnet), or "
        f"a model nesting one. Received: {name}={type(source).__name__}."
    )


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    seeds = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    if not seeds:
        raise ValueError("`seeds` is empty. Fix: pass e.g. seeds=(0, 1, 2).")
    return [int(s) for s in seeds]


def size_sweep(
    source: Any,
    target: Any,
    *,
    sizes: Sequence[int] = (5, 10, 50, 100, 500),
    strategies: Sequence[str] | None = None,
    seeds: int | Sequence[int] = (0, 1, 2),
    config: TrainConfig | dict | None = None,
    store: ResultStore | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Accuracy for each target size and strategy (Soekhoe et al. 2016).

    Soekhoe et al. found that transfer beats training from scratch when the
    target has fewer than about 500 images per class, that with little data
    freezing the first 2-3 layers is best, and that the benefit fades as data
    grows. This runs that study on any source and target: for every size (N
    images per class, sampled balanced and nested: for one seed, the 10-per-
    class set contains the 5-per-class set), every strategy and every seed, a
    model is trained under the same budget (`TrainConfig`) and evaluated on
    the full target test set.

    Strategies (the transferred ones copy the source base's weights; BatchNorm
    layers keep the source statistics, in inference mode):

    - `"scratch"`: the same architecture, re-initialised, all layers trained;
    - `"feature_extractor"`: base frozen, only the new head trains (at
      `head_lr`); `"feature_extractor_flatten"` flattens the base's last
      feature map into the head instead of averaging it;
    - `"two_phase"`: `two_phase_fit`: the head first at `head_lr`, then the
      whole base at `fine_tune_lr` (LP-FT);
    - `"fine_tune_all"`: every layer trains from the start at `learning_rate`;
    - `"freeze_<k>"`: the first k blocks frozen, the rest and the head train.

    Args:
        source: A `SourceModel`, or a base with `block<i>_` layers (e.g. a
            trained `small_convnet`), or a model nesting one.
        target: The target task: a task name or object (sampled with its
            `target_subset`), an `ImageSplits`-like object or a tuple
            `(x_train, y_train, x_test, y_test)`; images must have the
            source's input shape.
        sizes: Training images per class. Defaults to `(5, 10, 50, 100, 500)`.
        strategies: Strategy names. Defaults to None: all of `STRATEGIES` and
            `freeze_<k>` for every k below the number of blocks.
        seeds: Seeds; each draws its own sample and initialisation. Defaults
            to `(0, 1, 2)`.
        config: A `TrainConfig` or dict of its fields. Defaults to None:
            `TrainConfig()`.
        store: Where finished runs are looked up and recorded. Defaults to
            None: an in-memory store (nothing is reused across calls).
        progress: Show a progress bar. Defaults to True.

    Returns:
        A list of dicts, one per run: `experiment`, `strategy`,
        `n_per_class`, `seed`, `config_hash`, `accuracy` (test), then
        `train_accuracy`, `steps`, `epochs`, `n_train`, `n_test`,
        `curve_steps`, `curve_accuracy`, `seconds`, `run_id`. Summarise with
        `aggregate(rows, by=("strategy", "n_per_class"))`; plot with
        `plot_size_sweep(rows)`.

    Raises:
        ValueError: For an unknown strategy, a size larger than a class
            holds, or target images of another shape than the source's.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(60) % 3
    >>> x = rng.normal(size=(60, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    >>> base = small_convnet((8, 8, 1), blocks=2, width=4)
    >>> rows = size_sweep(base, (x, y, x, y), sizes=[5], seeds=[0],
    ...                   strategies=["scratch", "freeze_1"], progress=False,
    ...                   config=TrainConfig(epochs=1, min_steps=0))
    >>> [(r["strategy"], r["n_per_class"], r["n_train"]) for r in rows]
    [('scratch', 5, 15), ('freeze_1', 5, 15)]
    """
    config = as_config(config, TrainConfig, "config")
    base, source_id = _source_base(source)
    blocks = len(block_names(base))
    if strategies is None:
        strategies = [*STRATEGIES, *[f"freeze_{k}" for k in range(1, blocks)]]
    for strategy in strategies:
        check_strategy(strategy, blocks)
    seeds = _seeds(seeds)
    target = prepare_target(target)
    config_hash = stable_hash(
        {
            "config": config.to_dict(),
            "source": source_id,
            "target": target_identity(target),
        }
    )
    specs = []
    for n in sizes:
        for seed in seeds:
            for strategy in strategies:
                columns = {
                    "experiment": "size_sweep",
                    "strategy": strategy,
                    "n_per_class": int(n),
                    "seed": seed,
                    "config_hash": config_hash,
                }
                specs.append(
                    (
                        make_run_id("size_sweep", strategy, n, seed, config_hash),
                        columns,
                        deferred_run(base, target, n, seed, config, strategy=strategy),
                    )
                )
    return run_or_reuse(specs, store, progress, "size_sweep")


@dataclass
class ScratchComparison:
    """A transfer strategy against its from-scratch twin, over seeds.

    Attributes:
        rows: One dict per run (transfer and scratch, every seed), with their
            learning curves, as `size_sweep` returns them.
        benefits: One `transfer_benefit` dict per seed (plus `seed`).
        summary: Mean, std and n of each `BENEFIT_MEASURES` entry and of the
            two final accuracies, over seeds (see `aggregate`).
    """

    rows: list[dict[str, Any]]
    benefits: list[dict[str, Any]]
    summary: dict[str, Any]

    def curves(self, strategy: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(steps, accuracy)` of one strategy: accuracy is seeds x points."""
        runs = [r for r in self.rows if r["strategy"] == strategy]
        return np.asarray(runs[0]["curve_steps"]), np.array(
            [r["curve_accuracy"] for r in runs]
        )


def transfer_vs_scratch(
    source: Any,
    target: Any,
    *,
    strategy: str = "two_phase",
    n_per_class: int | None = None,
    seeds: int | Sequence[int] = (0, 1, 2),
    config: TrainConfig | dict | None = None,
    threshold: float | None = None,
    store: ResultStore | None = None,
    progress: bool = True,
) -> ScratchComparison:
    """Trains a transfer model and its from-scratch twin; measures the benefit.

    The honest answer to "was that really transfer?": the same network,
    re-initialised, trained with the same data, optimizer and number of steps
    (`scratch_twin`), and the three benefits read off the two learning curves
    (`transfer_benefit`), with mean and spread over seeds.

    Args:
        source: A `SourceModel` or a base with `block<i>_` layers.
        target: The target task (see `size_sweep`).
        strategy: How the transfer model trains (see `size_sweep`). Defaults
            to `"two_phase"`.
        n_per_class: Training images per class; None uses the whole target
            training set. Defaults to None.
        seeds: Seeds. Defaults to `(0, 1, 2)`.
        config: A `TrainConfig` or dict. Defaults to None: `TrainConfig()`.
        threshold: Accuracy for the time-to-threshold measures. Defaults to
            None: each seed's final scratch accuracy.
        store: A `ResultStore` for reuse. Defaults to None (in memory).
        progress: Show a progress bar. Defaults to True.

    Returns:
        A `ScratchComparison` with `rows`, per-seed `benefits` and a
        `summary`; `comparison.curves("scratch")` gives curves to plot.

    Raises:
        ValueError: As `size_sweep`; also for `strategy="scratch"`.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(30) % 3
    >>> x = rng.normal(size=(30, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    >>> base = small_convnet((8, 8, 1), blocks=1, width=4)
    >>> result = transfer_vs_scratch(base, (x, y, x, y), seeds=[0], progress=False,
    ...     strategy="feature_extractor", config={"epochs": 2, "min_steps": 0})
    >>> sorted(result.benefits[0])[:3]
    ['auc_difference', 'final_difference', 'jumpstart']
    """
    config = as_config(config, TrainConfig, "config")
    base, source_id = _source_base(source)
    blocks = len(block_names(base))
    check_strategy(strategy, blocks)
    if strategy == "scratch":
        raise ValueError(
            "`strategy` must be a transfer strategy: the scratch twin is trained "
            "anyway. Received: strategy='scratch'. Fix: use e.g. 'two_phase'."
        )
    seeds = _seeds(seeds)
    target = prepare_target(target)
    config_hash = stable_hash(
        {
            "config": config.to_dict(),
            "source": source_id,
            "target": target_identity(target),
        }
    )
    size = "all" if n_per_class is None else int(n_per_class)
    specs = []
    for seed in seeds:
        for name in (strategy, "scratch"):
            columns = {
                "experiment": "transfer_vs_scratch",
                "strategy": name,
                "n_per_class": size,
                "seed": seed,
                "config_hash": config_hash,
            }
            specs.append(
                (
                    make_run_id("transfer_vs_scratch", name, size, seed, config_hash),
                    columns,
                    deferred_run(
                        base, target, n_per_class, seed, config, strategy=name
                    ),
                )
            )
    rows = run_or_reuse(specs, store, progress, "transfer_vs_scratch")
    by_run = {(r["strategy"], r["seed"]): r for r in rows}
    benefits = []
    for seed in seeds:
        t, s = by_run[(strategy, seed)], by_run[("scratch", seed)]
        benefit = transfer_benefit(
            t["curve_accuracy"],
            s["curve_accuracy"],
            steps=t["curve_steps"],
            threshold=threshold,
        )
        benefits.append(
            {
                "seed": seed,
                "transfer_accuracy": t["accuracy"],
                "scratch_accuracy": s["accuracy"],
                **benefit,
            }
        )
    values = ["transfer_accuracy", "scratch_accuracy", *BENEFIT_MEASURES]
    summary = {
        "strategy": strategy,
        "n_per_class": size,
        **aggregate(benefits, (), values)[0],
    }
    return ScratchComparison(rows, benefits, summary)


def transferability_by_layer(
    source_a: Any,
    target: Any,
    *,
    cuts: Sequence[int] | None = None,
    variants: Sequence[str] = VARIANTS,
    n_per_class: int | None = None,
    seeds: int | Sequence[int] = (0,),
    config: TrainConfig | dict | None = None,
    base_b_config: TrainConfig | dict | None = None,
    store: ResultStore | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """How transferable is each depth of a network? (Yosinski et al. 2014)

    For each cut point n, the first n blocks are copied into a network whose
    other blocks are re-initialised, and the whole is trained on task B:

    - `AnB`: blocks 1..n copied from the source network (trained on A) and
      frozen. Falls when n reaches layers too specific to A.
    - `BnB`: blocks 1..n copied from base B (a network trained on B itself)
      and frozen. A dip shows fragile co-adaptation between layers.
    - `AnB+`, `BnB+`: the same, with the copied blocks fine-tuned too.
    - `baseB`: the network trained on B from scratch (one row per seed,
      `n=None`); plotted as a horizontal line.

    Yosinski et al.'s numbers on ImageNet: AnB flat to n~3 then falling,
    AnB+ above base B at every n (+1.7 points on average). Base B is trained
    here from scratch on the same target sample as the variants, one per
    seed, with `base_b_config` (by default the variants' `config`).
    Yosinski et al. trained base B to convergence; with a short shared
    budget, BnB beats base B merely because its copied blocks were trained
    twice, so give base B more steps when the budget is short. BatchNorm
    layers holding copied statistics stay frozen, re-initialised ones train.
    Runs train at `config.learning_rate`, except AnB and BnB at the last
    block, where only the head trains, at `config.head_lr`.

    Args:
        source_a: The network trained on task A: a `SourceModel` or a base
            with `block<i>_` layers.
        target: Task B (see `size_sweep`); images must have A's input shape.
        cuts: Values of n (numbers of copied blocks). Defaults to None:
            1..number of blocks.
        variants: Any of `VARIANTS`. Defaults to all four.
        n_per_class: Training images per class of B; None uses all. Defaults
            to None.
        seeds: Seeds. Defaults to `(0,)`.
        config: A `TrainConfig` or dict for the variants. Defaults to None:
            `TrainConfig()`.
        base_b_config: A `TrainConfig` or dict for base B. Defaults to None:
            the same as `config`.
        store: A `ResultStore` for reuse. Defaults to None (in memory).
        progress: Show a progress bar. Defaults to True.

    Returns:
        A list of dicts, one per run: `experiment`, `variant`, `n`, `seed`,
        `config_hash`, `accuracy`, and the run details as in `size_sweep`.
        Plot with `plot_transferability(rows)`. If base B's row is stored but
        a BnB run is not, base B is trained again for it (not re-recorded).

    Raises:
        ValueError: For an unknown variant or a cut outside 1..blocks.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(30) % 3
    >>> x = rng.normal(size=(30, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    >>> base_a = small_convnet((8, 8, 1), blocks=1, width=4)
    >>> rows = transferability_by_layer(base_a, (x, y, x, y), variants=["AnB"],
    ...     progress=False, config={"epochs": 1, "min_steps": 0})
    >>> [(r["variant"], r["n"]) for r in rows]
    [('baseB', None), ('AnB', 1)]
    """
    config = as_config(config, TrainConfig, "config")
    base_b_config = (
        config
        if base_b_config is None
        else as_config(base_b_config, TrainConfig, "base_b_config")
    )
    base_a, source_id = _source_base(source_a, "source_a")
    blocks = len(block_names(base_a))
    cuts = list(range(1, blocks + 1)) if cuts is None else [int(n) for n in cuts]
    bad_cuts = [n for n in cuts if not 1 <= n <= blocks]
    if bad_cuts:
        raise ValueError(
            f"Received an invalid value for `cuts`: {bad_cuts} outside [1, {blocks}] "
            f"(the source base has {blocks} blocks). Received: cuts={cuts}."
        )
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(
            f"Unknown variant(s) {unknown}. Expected any of {list(VARIANTS)}. "
            f"Received: variants={list(variants)}."
        )
    seeds = _seeds(seeds)
    target = prepare_target(target)
    config_hash = stable_hash(
        {
            "config": config.to_dict(),
            "base_b_config": base_b_config.to_dict(),
            "source": source_id,
            "target": target_identity(target),
        }
    )
    size = "all" if n_per_class is None else int(n_per_class)
    base_b: dict[int, tuple[dict[str, Any], keras.Model]] = {}

    def train_base_b(seed: int) -> tuple[dict[str, Any], keras.Model]:
        if seed not in base_b:
            splits = target_splits(
                target, n_per_class, seed, base_b_config.val_per_class
            )
            check_input_shape(base_a, splits)
            metrics, model = train_run(
                base_a, splits, base_b_config, seed, strategy="scratch"
            )
            base_b[seed] = (metrics, find_base(model))
        return base_b[seed]

    def variant_run(variant: str, n: int, seed: int) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            source = base_a if variant.startswith("A") else train_base_b(seed)[1]
            splits = target_splits(target, n_per_class, seed, config.val_per_class)
            check_input_shape(base_a, splits)
            metrics, _ = train_run(
                source,
                splits,
                config,
                seed,
                copy_blocks=n,
                copy_trainable=variant.endswith("+"),
            )
            return metrics

        return run

    def columns(variant: str, n: int | None, seed: int) -> dict[str, Any]:
        return {
            "experiment": "transferability_by_layer",
            "variant": variant,
            "n": n,
            "n_per_class": size,
            "seed": seed,
            "config_hash": config_hash,
        }

    specs = []
    for seed in seeds:
        specs.append(
            (
                make_run_id(
                    "transferability_by_layer", "baseB", size, seed, config_hash
                ),
                columns("baseB", None, seed),
                lambda seed=seed: train_base_b(seed)[0],
            )
        )
        for n in cuts:
            for variant in variants:
                specs.append(
                    (
                        make_run_id(
                            "transferability_by_layer",
                            f"{variant}{n}",
                            size,
                            seed,
                            config_hash,
                        ),
                        columns(variant, n, seed),
                        variant_run(variant, n, seed),
                    )
                )
    return run_or_reuse(specs, store, progress, "transferability_by_layer")
