"""The transfer report's figures (matplotlib; no training)."""

from __future__ import annotations

import numpy as np
from transfer_analysis import TRANSFER
from transfer_rules import gap

#: The strategy the Q1 learning-curve figures show: the library's recipe.
MAIN_STRATEGY = "two_phase"


def _figure(cols: int, rows: int = 1, width: float = 5.4, height: float = 4.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(rows, cols)).ravel()


def _head_phase_steps(row: dict, config: dict) -> int:
    """Step at which `two_phase` starts fine-tuning (the rule of `runs.train_run`)."""
    epochs, per_epoch = row["epochs"], row["steps"] // row["epochs"]
    head = min(max(1, round(epochs * config["head_fraction"])), max(1, epochs - 1))
    return head * per_epoch


def figure_transfer_vs_scratch(task, sweep, plan, path):
    from tlrecipes.lab import ScratchComparison, plot_transfer_vs_scratch

    sizes = [task["small"], *[n for n in task["large"] if n != task["small"]]]
    fig, axes = _figure(len(sizes))
    for ax, n in zip(axes, sizes, strict=True):
        cell = sweep["benefits"][(MAIN_STRATEGY, n)]
        rows = [
            sweep["index"][(s, n, seed)]
            for seed in plan["seeds"]
            for s in (MAIN_STRATEGY, "scratch")
        ]
        comparison = ScratchComparison(rows, cell["per_seed"], cell)
        plot_transfer_vs_scratch(
            comparison,
            ax=ax,
            title=(
                f"{task['name']}, {n}/class: {MAIN_STRATEGY} vs scratch\n"
                f"final gap {gap(cell, 'final_difference')}"
                f" pts over {len(plan['seeds'])} seeds"
            ),
        )
        if plan["config"].get("val_per_class"):  # the curves are read on it
            ax.set_ylabel("validation accuracy")
        start = _head_phase_steps(rows[0], plan["config"])
        ax.axvline(start, color="#7b1fa2", linestyle="--", lw=1)
        ax.text(
            start,
            ax.get_ylim()[0],
            " fine-tuning starts",
            color="#7b1fa2",
            fontsize=8,
            rotation=90,
            va="bottom",
            ha="right",
        )
    fig.savefig(path, dpi=110)


def figure_size_sweep(task, rows, sweep, path):
    from tlrecipes.lab import plot_size_sweep

    fig = plot_size_sweep(
        rows,
        title=f"{task['name']}: test accuracy vs images per class (mean ± std)",
    )
    catch_up = sweep["crossover"]["best"]["catch_up"]
    if catch_up is not None and not sweep["crossover"]["best"]["never_ahead"]:
        ax = fig.axes[0]
        ax.axvline(catch_up, color="#d62728", lw=1, linestyle=":")
        ax.text(
            catch_up,
            ax.get_ylim()[0],
            " scratch caught up",
            rotation=90,
            color="#d62728",
            fontsize=8,
            va="bottom",
        )
    fig.savefig(path, dpi=110)


def figure_benefits(task, sweep, plan, path):
    measures = (
        ("jumpstart", "jumpstart (first point)"),
        ("auc_difference", "area: average gap over training"),
        ("final_difference", "final gap (asymptote)"),
    )
    fig, axes = _figure(3, width=4.6, height=3.8)
    sizes = task["sizes"]
    for ax, (key, label) in zip(axes, measures, strict=True):
        for i, strategy in enumerate(TRANSFER):
            cells = [sweep["benefits"][(strategy, n)] for n in sizes]
            mean = np.array([100 * c[f"{key}_mean"] for c in cells])
            std = np.array([100 * c[f"{key}_std"] for c in cells])
            x = np.array(sizes, float) * (1 + 0.03 * (i - 2))  # dodge
            ax.errorbar(
                x, mean, yerr=std, marker="o", ms=3, capsize=2, label=strategy, lw=1
            )
        ax.axhline(0, color="black", lw=1)
        ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(n) for n in sizes], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("training images per class (log)")
        ax.set_ylabel("transfer - scratch (points)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{task['name']}: benefit over the scratch twin, paired by seed")
    fig.savefig(path, dpi=110)


def figure_transferability(task, rows, path):
    from tlrecipes.lab import plot_transferability

    fig = plot_transferability(
        rows,
        title=(
            f"{task['name']}: transferability by block "
            f"({task['yosinski_size']}/class of B)"
        ),
    )
    fig.savefig(path, dpi=110)
