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

__all__ = [
    "advised_cell",
    "best_cell",
    "case_name",
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
            best = (
                max(stats, key=lambda k: stats[k]["accuracy_mean"]) if stats else None
            )
            transfer = [k for k in stats if k != "scratch"]
            best_transfer = (
                max(transfer, key=lambda k: stats[k]["accuracy_mean"])
                if transfer
                else None
            )
            comparisons = []
            for name in advised:
                if best is None or name == best:
                    continue
                seeds = [s for s in acc[best] if s in acc[name]]
                diff = [
                    acc[best][s]["accuracy"] - acc[name][s]["accuracy"] for s in seeds
                ]
                d_mean, d_std = _mean_std(diff)
                comparisons.append(
                    {
                        "advised": name,
                        "difference_mean": d_mean,
                        "difference_std": d_std,
                        "within_spread": len(diff) > 1 and abs(d_mean) <= d_std,
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
                    "best_transfer": best_transfer,
                    "agrees": best in advised,
                    "comparisons": comparisons,
                    "strategies": stats,
                }
            )
    return cases


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
            gain += f" (best transfer, {bt}: "
            gain += f"{signed_text(stats[bt]['gain_mean'], stats[bt]['gain_std'])})"
        return (
            "scratch ("
            + percent_text(stats[best]["accuracy_mean"], stats[best]["accuracy_std"])
            + ")",
            gain,
        )
    s = stats[best]
    return (
        f"{best} ({percent_text(s['accuracy_mean'], s['accuracy_std'])})",
        signed_text(s["gain_mean"], s["gain_std"]),
    )


def advised_cell(case: dict[str, Any]) -> str:
    """The advised strategies of a case, measured."""
    parts = []
    for name in case["advised"]:
        s = case["strategies"][name]
        gain = (
            ""
            if name == "scratch"
            else f", gain {signed_text(s['gain_mean'], s['gain_std'])}"
        )
        parts.append(
            f"{name}: {percent_text(s['accuracy_mean'], s['accuracy_std'])}{gain}"
        )
    return "; ".join(parts) or "not run"


def verdict(case: dict[str, Any]) -> str:
    """Whether the measured best agrees with the advice, and by how much not."""
    if case["best"] is None:
        return ""
    if case["agrees"]:
        return f"agrees: the advised {case['best']} measured best"
    stats = case["strategies"]
    bits = []
    for c in case["comparisons"]:
        spread = " (within the spread over seeds)" if c["within_spread"] else ""
        bits.append(
            f"{case['best']} beat the advised {c['advised']} by "
            f"{signed_text(c['difference_mean'], c['difference_std'])} points{spread}"
        )
    best = stats[case["best"]]
    return (
        f"disagrees: {case['best']} measured best at "
        f"{percent_text(best['accuracy_mean'], best['accuracy_std'])}; "
        + "; ".join(bits)
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
