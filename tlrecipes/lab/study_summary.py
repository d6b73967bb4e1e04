"""The study's numbers per case, and the 2x2 table as text (no training).

`summarise` turns the study's rows into one summary per (task, size), the
cells of the source tutorial's table: every strategy's accuracy and gain
over scratch (mean and spread over seeds), the measured best, the advised
strategies and whether they agree. `summary_text` prints that table for the
terminal; `tlrecipes.lab.study_report` writes it as REPORT.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tlrecipes.lab.comparison import compare, compare_to_baseline, pick_best

__all__ = [
    "advised_cell",
    "best_cell",
    "case_name",
    "gain_text",
    "percent_text",
    "signed_text",
    "strategy_label",
    "summarise",
    "summary_text",
    "verdict",
]


#: (size, relation) -> strategies the source tutorial recommends; the first
#: is the tutorial's own words, the second (if any) the CS231n alternative.
_ADVICE = {
    ("small", "similar"): ("feature_extractor",),
    ("small", "different"): ("scratch", "earlier_block"),
    ("large", "similar"): ("two_phase",),
    ("large", "different"): ("fine_tune_all",),
}
_ADVICE_WORDS = {
    ("small", "similar"): "use the pretrained model as a feature extractor",
    ("small", "different"): (
        "do not use the pretrained model (CS231n: features from an earlier layer)"
    ),
    ("large", "similar"): "fine-tune: new head first, then unfreeze at a low LR",
    ("large", "different"): (
        "train from scratch, but initialise with the pretrained weights"
    ),
}


def _size_case(n: int, sizes: Sequence[int]) -> str:
    from tlrecipes.lab.advice import SMALL_MAX_PER_CLASS

    if len(sizes) > 1 and n == min(sizes):
        return "small"
    if len(sizes) > 1 and n == max(sizes):
        return "large"
    return "small" if n <= SMALL_MAX_PER_CLASS else "large"


def strategy_label(strategy: str) -> str:
    """A strategy's name in the tables: `keras_guide_<e1>_<e2>` is `keras_guide`."""
    return "keras_guide" if strategy.startswith("keras_guide") else strategy


def percent_text(mean: float | None, std: float | None = None) -> str:
    """Accuracy or gain in percent (points), with its spread."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    text = f"{mean * 100:.1f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std * 100:.1f}"
    return text


def signed_text(mean: float, std: float) -> str:
    """A gain in points with its sign and spread."""
    if not math.isfinite(mean):
        return "n/a"
    spread = f" ± {std * 100:.1f}" if math.isfinite(std) else ""
    return f"{mean * 100:+.1f}{spread}"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    data = np.asarray([v for v in values if v is not None], dtype="float64")
    if not len(data):
        return math.nan, math.nan
    return float(data.mean()), float(data.std(ddof=1)) if len(data) > 1 else math.nan


def summarise(rows: Sequence[dict[str, Any]], plan: dict[str, Any]) -> list[dict]:
    """One dict per (task, size): every strategy's accuracy, gain, best, advice."""
    from tlrecipes.lab.tasks import get_task

    cases = []
    for task in plan["tasks"]:
        relation = get_task(task).relation
        for size in plan["sizes"]:
            cell = [r for r in rows if r["task"] == task and r["n_per_class"] == size]
            acc = {}  # label -> {seed: accuracy}
            for row in cell:
                acc.setdefault(strategy_label(row["strategy"]), {})[row["seed"]] = row
            scratch = {
                seed: r["accuracy"] for seed, r in acc.get("scratch", {}).items()
            }
            stats = {}
            for label, by_seed in acc.items():
                seeds = sorted(by_seed)
                a_mean, a_std = _mean_std([by_seed[s]["accuracy"] for s in seeds])
                gains = [
                    by_seed[s]["accuracy"] - scratch[s] for s in seeds if s in scratch
                ]
                g_mean, g_std = _mean_std(gains)
                curves = np.array([by_seed[s]["curve_accuracy"] for s in seeds])
                stats[label] = {
                    "strategy": by_seed[seeds[0]]["strategy"],
                    "accuracy_mean": a_mean,
                    "accuracy_std": a_std,
                    "gain_mean": g_mean,
                    "gain_std": g_std,
                    "seeds": seeds,
                    "accuracy": [by_seed[s]["accuracy"] for s in seeds],
                    "steps": by_seed[seeds[0]]["steps"],
                    "epochs": by_seed[seeds[0]]["epochs"],
                    "seconds_mean": _mean_std([by_seed[s]["seconds"] for s in seeds])[
                        0
                    ],
                    "curve_steps": by_seed[seeds[0]]["curve_steps"],
                    "curve_accuracy": curves.tolist(),
                }
            size_case = _size_case(size, plan["sizes"])
            advised = [s for s in _ADVICE[(size_case, relation)] if s in stats]
            test = {k: {s: acc[k][s]["accuracy"] for s in acc[k]} for k in acc}
            best, selected_on = _pick(acc)
            transfer = [k for k in stats if k != "scratch"]
            best_transfer = None
            if transfer:
                best_transfer, _ = _pick({k: acc[k] for k in transfer})
            # An interval needs 2 seeds; with 1 (a --quick run) none is given.
            paired = len(set(test.get("scratch", {}))) >= 2
            if paired and transfer:  # one family per case
                for c in compare_to_baseline(
                    {k: test[k] for k in [*transfer, "scratch"]}, "scratch"
                ):
                    stats[c.name_a]["vs_scratch"] = c.to_dict()
            comparisons = []
            for name in advised:
                if best is None or name == best:
                    continue
                if paired:
                    c = compare(test[best], test[name], name_a=best, name_b=name)
                    comparisons.append(
                        {"advised": name, "points": c.points, **c.to_dict()}
                    )
                    continue
                diff = [test[best][s] - test[name][s] for s in test[best]]
                comparisons.append(
                    {
                        "advised": name,
                        "points": signed_text(float(np.mean(diff)), math.nan),
                        "verdict": "no interval from one seed",
                    }
                )
            cases.append(
                {
                    "task": task,
                    "relation": relation,
                    "n_per_class": size,
                    "size": size_case,
                    "advice": _ADVICE_WORDS[(size_case, relation)],
                    "advised": advised,
                    "best": best,
                    "selected_on": selected_on,
                    "best_transfer": best_transfer,
                    "agrees": best in advised,
                    "comparisons": comparisons,
                    "strategies": stats,
                }
            )
    return cases


def _pick(acc: dict[str, dict[int, dict]]) -> tuple[str | None, str]:
    """The best arm, picked on validation when every run has it, else on test."""
    if not acc:
        return None, "validation"
    rows = [row for by_seed in acc.values() for row in by_seed.values()]
    on = "val_accuracy" if all("val_accuracy" in r for r in rows) else "accuracy"
    scores = {k: {s: r[on] for s, r in by_seed.items()} for k, by_seed in acc.items()}
    return pick_best(scores), "validation" if on == "val_accuracy" else "test"


def case_name(case: dict[str, Any]) -> str:
    """A case in words: size (images per class), relation (task)."""
    return (
        f"{case['size']} ({case['n_per_class']}/class), {case['relation']} "
        f"({case['task']})"
    )


def best_cell(case: dict[str, Any]) -> tuple[str, str]:
    """The table's 'measured best' and 'gain over scratch' cells of a case."""
    stats = case["strategies"]
    best = case["best"]
    if best is None:
        return "n/a", "n/a"
    if best == "scratch":
        bt = case["best_transfer"]
        gain = "0"
        if bt:
            gain += f" (best transfer, {bt}: {gain_text(stats[bt])})"
        return (
            "scratch ("
            + percent_text(stats[best]["accuracy_mean"], stats[best]["accuracy_std"])
            + ")",
            gain,
        )
    s = stats[best]
    return (
        f"{best} ({percent_text(s['accuracy_mean'], s['accuracy_std'])})",
        gain_text(s),
    )


def advised_cell(case: dict[str, Any]) -> str:
    """The advised strategies of a case, measured."""
    parts = []
    for name in case["advised"]:
        s = case["strategies"][name]
        gain = "" if name == "scratch" else f", gain {gain_text(s)}"
        parts.append(
            f"{name}: {percent_text(s['accuracy_mean'], s['accuracy_std'])}{gain}"
        )
    return "; ".join(parts) or "not run"


def verdict(case: dict[str, Any]) -> str:
    """Whether the strategy picked on validation is the advised one, and by how much.

    The pick is made on validation (`pick_best`); the difference from each
    advised strategy is measured on test, paired by seed (`compare`), and its
    verdict word follows from the 95% interval alone.
    """
    if case["best"] is None:
        return ""
    on = case.get("selected_on", "test")
    if case["agrees"]:
        return f"agrees: the advised {case['best']} scored best on {on}"
    bits = [
        f"on test, {case['best']} - {c['advised']}: {c['points']} points -> "
        f"{c['verdict']}"
        for c in case["comparisons"]
    ]
    return f"disagrees: {case['best']} scored best on {on}; " + "; ".join(bits)


def gain_text(stats: dict[str, Any]) -> str:
    """A strategy's gain over scratch: mean, 95% interval and verdict if measured."""
    c = stats.get("vs_scratch")
    if c is None:
        return signed_text(stats["gain_mean"], stats["gain_std"])
    k = c["comparisons"]
    family = f", Bonferroni x{k}" if k > 1 else ""
    return (
        f"{c['mean'] * 100:+.1f} ({c['confidence']:.0%} CI{family} "
        f"{c['low'] * 100:+.1f} to {c['high'] * 100:+.1f}, {c['verdict']})"
    )


def summary_text(cases: Sequence[dict[str, Any]], plan: dict[str, Any]) -> str:
    """The 2x2 table as plain text, for the terminal."""
    lines = [
        "",
        "Test accuracy in %, mean ± std over "
        f"{len(plan['seeds'])} seed(s); gain = strategy minus scratch, paired by seed.",
    ]
    for case in cases:
        best, gain = best_cell(case)
        lines += [
            f"- {case_name(case)}",
            f"    tutorial: {case['advice']}",
            f"    advised measured: {advised_cell(case)}",
            f"    measured best: {best}; gain over scratch {gain}",
            f"    -> {verdict(case)}",
        ]
    return "\n".join(lines)
