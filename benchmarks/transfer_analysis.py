"""The transfer report's analysis: stored run rows in, paired comparisons out.

Pure functions (no training, no files) used by `transfer_report.py`, and
tested on synthetic rows in `tests/test_transfer_report.py`. They follow the
project's protocol (`tlrecipes.lab.comparison`):

- every verdict word ("ahead", "behind", "tie") is a `Comparison`'s, from a
  paired 95% t interval over seeds; several arms against one baseline are one
  Bonferroni family (`compare_to_baseline`);
- the best strategy per size and the best frozen depth are picked with
  `pick_best` on **validation** scores, then measured on test with `compare`;
- trends over sizes or depths (`paired_trend`) use the whole sequence: each
  seed's least-squares slope, and an interval on the slopes.

Example:

>>> rows = [
...     {"strategy": s, "n_per_class": 5, "seed": seed, "accuracy": acc,
...      "val_accuracy": acc}
...     for seed in range(5)
...     for s, acc in (("scratch", 0.5 + seed / 100), ("two_phase", 0.7))
... ]
>>> c = compare_arms(rows, ["two_phase"], 5)["two_phase"]
>>> c.verdict
'ahead'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tlrecipes.lab.comparison import Comparison, compare, compare_to_baseline, pick_best

STRATEGIES = (
    "scratch",
    "feature_extractor",
    "two_phase",
    "fine_tune_all",
    "freeze_1",
    "freeze_2",
)
TRANSFER = STRATEGIES[1:]
#: Arms that differ only in how many blocks stay frozen, least frozen first:
#: `pick_best` breaks a tie towards the first (fewest frozen blocks).
DEPTH_ARMS = ("fine_tune_all", "freeze_1", "freeze_2", "feature_extractor")
VARIANTS = ("AnB", "AnB+", "BnB", "BnB+")


def frozen_blocks(strategy: str, blocks: int) -> int:
    """Blocks the strategy keeps frozen while the base trains.

    >>> frozen_blocks("freeze_2", 3), frozen_blocks("feature_extractor", 3)
    (2, 3)
    """
    if strategy == "feature_extractor":
        return blocks
    match = re.fullmatch(r"freeze_(\d+)", strategy)
    return int(match.group(1)) if match else 0


def scores(rows: Sequence[dict], key: str = "accuracy", **where: Any) -> dict:
    """`{seed: row[key]}` of the rows matching every `column=value` in `where`.

    >>> scores([{"seed": 0, "strategy": "a", "accuracy": 0.5}], strategy="a")
    {0: 0.5}
    """
    return {
        int(r["seed"]): float(r[key])
        for r in rows
        if all(r.get(k) == v for k, v in where.items())
    }


def selection_key(rows: Sequence[dict]) -> str:
    """`"val_accuracy"` when every row has it (the protocol), else `"accuracy"`."""
    return (
        "val_accuracy"
        if rows and all("val_accuracy" in r for r in rows)
        else ("accuracy")
    )


def compare_arms(
    rows: Sequence[dict], arms: Sequence[str], n: int, baseline: str = "scratch"
) -> dict[str, Comparison]:
    """Every arm against `baseline` at size `n` on test: one Bonferroni family."""
    test = {a: scores(rows, strategy=a, n_per_class=n) for a in [*arms, baseline]}
    return {c.name_a: c for c in compare_to_baseline(test, baseline)}


def pick_on_validation(rows: Sequence[dict], arms: Sequence[str], n: int) -> str:
    """The arm with the best mean validation accuracy at size `n` (`pick_best`)."""
    key = selection_key(rows)
    return pick_best({a: scores(rows, key, strategy=a, n_per_class=n) for a in arms})


def paired_trend(
    series: Mapping[float, Mapping[int, float]], name: str, *, log_x: bool = True
) -> Comparison:
    """Per seed, the least-squares slope of `series` over its x values; compared to 0.

    `series` maps x (a size, a cut) to `{seed: value}`. Every x counts, not
    only the first and last. The verdict is "behind" when the slope is
    negative (the value falls as x grows), "ahead" when positive, "tie" when
    the interval spans 0. Slopes are per doubling of x with `log_x`.

    >>> falls = {5: {0: 3, 1: 3.1, 2: 2.9}, 50: {0: 2, 1: 2, 2: 1.8},
    ...          500: {0: 0, 1: 0.2, 2: 0.1}}
    >>> paired_trend(falls, "k").verdict
    'behind'
    """
    xs = sorted(series)
    seeds = sorted(set.intersection(*(set(series[x]) for x in xs)))
    t = np.array([math.log2(x) if log_x else float(x) for x in xs])
    slopes = {}
    for seed in seeds:
        y = np.array([series[x][seed] for x in xs], dtype="float64")
        slopes[seed] = float(np.polyfit(t, y, 1)[0])
    return compare(slopes, {s: 0.0 for s in seeds}, name_a=name, name_b="no trend")


# --------------------------------------------------------------------------
# Size sweep


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    data = np.array([v for v in values if v is not None and np.isfinite(v)], float)
    if not len(data):
        return math.nan, math.nan
    return float(data.mean()), float(data.std(ddof=1)) if len(data) > 1 else 0.0


def _benefit_cell(rows, index, strategy, n, seeds, comparison) -> dict[str, Any]:
    """Paired benefits of one strategy at one size, with its test comparison."""
    from tlrecipes.lab.results import BENEFIT_MEASURES, aggregate, transfer_benefit

    per_seed = []
    for seed in seeds:
        t, s = index[(strategy, n, seed)], index[("scratch", n, seed)]
        benefit = transfer_benefit(
            t["curve_accuracy"], s["curve_accuracy"], steps=t["curve_steps"]
        )
        # The final gap is on test, read once on the kept (best-validation)
        # weights; the curves (jumpstart, area) are read on validation.
        benefit["final_difference"] = t["accuracy"] - s["accuracy"]
        per_seed.append(
            {
                "seed": seed,
                "transfer_accuracy": t["accuracy"],
                "scratch_accuracy": s["accuracy"],
                **benefit,
            }
        )
    values = ["transfer_accuracy", "scratch_accuracy", *BENEFIT_MEASURES]
    summary = aggregate(per_seed, (), values)[0]
    diffs = [b["final_difference"] for b in per_seed]
    return {
        "strategy": strategy,
        "n_per_class": n,
        **summary,
        "per_seed": per_seed,
        "comparison": comparison.to_dict(),
        "verdict": comparison.verdict,
        "seeds_ahead": sum(d > 0 for d in diffs),
        "reached": sum(np.isfinite(b["transfer_to_threshold"]) for b in per_seed),
    }


def best_at(rows: Sequence[dict], n: int, blocks: int) -> dict[str, Any]:
    """Best transfer strategy and best frozen depth at size `n`, on validation.

    The picks are measured on test, each by one `compare` (the picking saw
    only validation): the best strategy against scratch, and against each
    other transfer strategy (one Bonferroni family) to list those it cannot
    be told apart from.
    """
    key = selection_key(rows)
    best = pick_on_validation(rows, TRANSFER, n)
    test = {a: scores(rows, strategy=a, n_per_class=n) for a in STRATEGIES}
    vs_scratch = compare(test[best], test["scratch"], name_a=best, name_b="scratch")
    others = compare_to_baseline(
        {a: test[a] for a in TRANSFER if a != best} | {best: test[best]}, best
    )
    depth = pick_on_validation(rows, DEPTH_ARMS, n)
    val = {a: _mean_std(list(scores(rows, key, strategy=a, n_per_class=n).values()))[0]
           for a in TRANSFER}  # fmt: skip
    return {
        "strategy": best,
        "selected_on": "validation" if key == "val_accuracy" else "test",
        "validation_means": val,
        "best_on_test": max(TRANSFER, key=lambda a: np.mean(list(test[a].values()))),
        "comparison": vs_scratch.to_dict(),
        "verdict": vs_scratch.verdict,
        "vs_others": [c.to_dict() for c in others],
        "within_spread": [c.name_a for c in others if c.verdict == "tie"],
        "depth_strategy": depth,
        "depth": frozen_blocks(depth, blocks),
    }


def analyse_sweep(rows: list[dict], task: dict, plan: dict) -> dict[str, Any]:
    """Accuracy table, paired benefits vs scratch, picks on validation, crossover."""
    from tlrecipes.lab.results import aggregate

    seeds, sizes, blocks = plan["seeds"], task["sizes"], plan["blocks"]
    index = {(r["strategy"], r["n_per_class"], r["seed"]): r for r in rows}
    values = ["accuracy", *(["val_accuracy"] if selection_key(rows) != "accuracy"
                            else [])]  # fmt: skip
    accuracy = {
        (s["strategy"], s["n_per_class"]): s
        for s in aggregate(rows, by=("strategy", "n_per_class"), values=values)
    }
    benefits: dict[tuple[str, int], dict[str, Any]] = {}
    for n in sizes:
        family = compare_arms(rows, TRANSFER, n)  # 5 arms vs scratch, Bonferroni
        for strategy in TRANSFER:
            benefits[(strategy, n)] = _benefit_cell(
                rows, index, strategy, n, seeds, family[strategy]
            )
    best = {n: best_at(rows, n, blocks) for n in sizes}
    crossover = {
        strategy: crossover_of(sizes, {n: benefits[(strategy, n)] for n in sizes})
        for strategy in TRANSFER
    }
    best_cells = {
        n: {
            **benefits[(best[n]["strategy"], n)],
            "comparison": best[n]["comparison"],
            "verdict": best[n]["verdict"],
        }
        for n in sizes
    }
    crossover["best"] = crossover_of(sizes, best_cells)
    return {
        "accuracy": accuracy,
        "benefits": benefits,
        "best": best,
        "crossover": crossover,
        "depth_trend": depth_trend(rows, sizes, blocks).to_dict(),
        "index": index,
    }


def depth_trend(rows: Sequence[dict], sizes: Sequence[int], blocks: int) -> Comparison:
    """Does the value of freezing more blocks fall as data grows? Whole sequence.

    Per seed and size, the least-squares slope of test accuracy over the
    frozen depth of `DEPTH_ARMS` (points per extra frozen block: how much
    freezing pays); then per seed, the slope of that over log2(size); the
    interval is on those per-seed slopes. "behind": freezing pays less as
    data grows, i.e. the best number of frozen blocks falls.
    """
    depths = np.array([frozen_blocks(a, blocks) for a in DEPTH_ARMS], float)
    series: dict[int, dict[int, float]] = {}
    for n in sizes:
        by_arm = [scores(rows, strategy=a, n_per_class=n) for a in DEPTH_ARMS]
        common = set.intersection(*(set(s) for s in by_arm))
        series[n] = {
            seed: float(np.polyfit(depths, [s[seed] for s in by_arm], 1)[0])
            for seed in sorted(common)
        }
    return paired_trend(series, "freezing pays, per doubling of size")


def crossover_of(sizes: Sequence[int], cells: dict[int, dict]) -> dict[str, Any]:
    """Where scratch catches up with a transfer strategy.

    `catch_up`: the smallest size from which on (at every larger size too)
    the comparison's verdict is no longer "ahead"; None when still ahead at
    the largest size. `zero_between`: the first neighbouring sizes between
    which the mean gap turns from positive to <= 0 (log-linear interpolation).
    """
    ahead = [cells[n]["verdict"] == "ahead" for n in sizes]
    catch_up = next((sizes[i] for i in range(len(sizes)) if not any(ahead[i:])), None)
    gaps = [cells[n]["final_difference_mean"] for n in sizes]
    zero = None
    for i in range(1, len(sizes)):
        if gaps[i - 1] > 0 >= gaps[i]:
            a, b = math.log(sizes[i - 1]), math.log(sizes[i])
            t = gaps[i - 1] / (gaps[i - 1] - gaps[i])
            zero = {
                "between": [sizes[i - 1], sizes[i]],
                "interpolated": round(math.exp(a + t * (b - a)), 1),
            }
            break
    return {
        "catch_up": catch_up,
        "never_ahead": not any(ahead),
        "ahead_at": [n for n, a in zip(sizes, ahead, strict=True) if a],
        "zero_between": zero,
        "comparison_at_catch_up": None
        if catch_up is None
        else cells[catch_up]["comparison"],
    }


# --------------------------------------------------------------------------
# Yosinski


def analyse_yosinski(rows: list[dict], blocks: int) -> dict[str, Any]:
    """Per variant and cut: accuracy and its paired comparison with base B.

    Each variant's cuts are one Bonferroni family against base B; `average`
    compares each seed's mean over the cuts with base B (one comparison).
    Every verdict a rule states is read from these cells.
    """
    base = scores(rows, variant="baseB")
    base_mean, base_std = _mean_std(list(base.values()))
    cuts = sorted({int(r["n"]) for r in rows if r["variant"] != "baseB"})
    cells, average = {}, {}
    for variant in VARIANTS:
        arms = {str(n): scores(rows, variant=variant, n=n) for n in cuts}
        if not any(arms.values()):
            continue
        family = compare_to_baseline({**arms, "baseB": base}, "baseB")
        for n, c in zip(cuts, family, strict=True):
            mean, std = _mean_std(list(arms[str(n)].values()))
            cells[(variant, n)] = {
                "variant": variant,
                "n": n,
                "accuracy_mean": mean,
                "accuracy_std": std,
                "vs_base_mean": c.mean,
                "vs_base_std": c.std,
                "comparison": {**c.to_dict(), "name_a": f"{variant} n={n}"},
                "verdict": c.verdict,
            }
        seeds = set.intersection(*(set(a) for a in arms.values()))
        mean_over_cuts = {s: float(np.mean([arms[str(n)][s] for n in cuts]))
                          for s in seeds}  # fmt: skip
        average[variant] = compare(
            mean_over_cuts, base, name_a=f"{variant} (mean over cuts)", name_b="baseB"
        ).to_dict()
    return {
        "base": {"accuracy_mean": base_mean, "accuracy_std": base_std},
        "cells": cells,
        "average": average,
        "cuts": cuts,
    }


def variant_trend(yos: dict[str, Any], variant: str) -> Comparison:
    """Per seed, the slope of `variant - base B` over every cut (not per doubling)."""
    series = {}
    for n in yos["cuts"]:
        c = yos["cells"][(variant, n)]["comparison"]
        series[n] = dict(zip(c["seeds"], c["per_seed"], strict=True))
    return paired_trend(series, f"{variant} - baseB per cut", log_x=False)
