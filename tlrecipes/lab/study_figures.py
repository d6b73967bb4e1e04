"""The study's figures: benefit curves, learning curves, gains, accuracy by size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlrecipes.lab.study_summary import case_name, strategy_label

__all__ = ["write_figures"]


def _grid(cases: Sequence[dict[str, Any]], plan: dict[str, Any]) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    rows, cols = len(plan["sizes"]), len(plan["tasks"])
    fig = Figure(figsize=(5.6 * cols, 3.9 * rows), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _axes_of(axes: Any, case: dict[str, Any], plan: dict[str, Any]) -> Any:
    return axes[plan["sizes"].index(case["n_per_class"])][
        plan["tasks"].index(case["task"])
    ]


def write_figures(
    cases: list[dict], rows: list[dict], plan: dict, out: Path
) -> list[Path]:
    """Draws the study's figures into `out`; returns their paths."""
    from tlrecipes.lab.plots import plot_size_sweep, plot_transfer_vs_scratch

    paths = []
    # 1. The measured best transfer strategy (step-budgeted) against scratch.
    fig, axes = _grid(cases, plan)
    for case in cases:
        ax = _axes_of(axes, case, plan)
        stats = case["strategies"]
        budgeted = [k for k in stats if k not in ("scratch", "keras_guide")]
        if "scratch" not in stats or not budgeted:
            ax.set_axis_off()
            continue
        name = max(budgeted, key=lambda k: stats[k]["accuracy_mean"])
        plot_transfer_vs_scratch(
            np.array(stats[name]["curve_accuracy"]),
            np.array(stats["scratch"]["curve_accuracy"]),
            steps=stats[name]["curve_steps"],
            labels=(name, "scratch"),
            ax=ax,
        )
        ax.set_title(f"{case_name(case)}\n{ax.get_title()}", fontsize=8)
        ax.set_xlabel("optimisation steps")
    paths.append(out / "benefit_curves.png")
    fig.savefig(paths[-1], dpi=100)
    # 2. Every strategy's mean learning curve.
    fig, axes = _grid(cases, plan)
    for case in cases:
        ax = _axes_of(axes, case, plan)
        for name, s in case["strategies"].items():
            curve = np.array(s["curve_accuracy"])
            style = {"color": "black", "linestyle": "--"} if name == "scratch" else {}
            ax.plot(
                s["curve_steps"],
                curve.mean(axis=0),
                marker="o",
                ms=3,
                label=name,
                **style,
            )
        ax.set_title(case_name(case), fontsize=9)
        ax.set_xlabel("optimisation steps")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    paths.append(out / "learning_curves.png")
    fig.savefig(paths[-1], dpi=100)
    # 3. Gain over scratch per strategy, with its spread over seeds.
    fig, axes = _grid(cases, plan)
    for case in cases:
        ax = _axes_of(axes, case, plan)
        names = [k for k in case["strategies"] if k != "scratch"]
        gains = [case["strategies"][k]["gain_mean"] * 100 for k in names]
        spread = [case["strategies"][k]["gain_std"] * 100 for k in names]
        colors = ["#2a7d2a" if k in case["advised"] else "#1f77b4" for k in names]
        ax.bar(names, gains, yerr=spread, color=colors, capsize=3)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{case_name(case)} (green: advised)", fontsize=9)
        ax.set_ylabel("accuracy gain over scratch (points)")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    paths.append(out / "gain_over_scratch.png")
    fig.savefig(paths[-1], dpi=100)
    # 4. Accuracy against size, per task (when several sizes ran).
    if len(plan["sizes"]) > 1:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.8 * len(plan["tasks"]), 4.0), layout="constrained")
        axes = fig.subplots(1, len(plan["tasks"]), squeeze=False)[0]
        for ax, task in zip(axes, plan["tasks"], strict=True):
            task_rows = [
                {**r, "strategy": strategy_label(r["strategy"])}
                for r in rows
                if r["task"] == task
            ]
            plot_size_sweep(task_rows, ax=ax, title=task)
        paths.append(out / "accuracy_vs_size.png")
        fig.savefig(paths[-1], dpi=100)
    return paths
