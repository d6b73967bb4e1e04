"""Figures for transfer-learning results, readable at a glance.

Four figures, each a function that returns a `matplotlib.figure.Figure` and,
given `path`, saves it as a PNG:

- `plot_learning_curves`: loss and accuracy per epoch, with a line where
  fine-tuning starts (from `two_phase_fit`'s history);
- `plot_transfer_vs_scratch`: a transfer model's learning curve against its
  from-scratch twin, with the three benefits (jumpstart, area, final gap)
  drawn on the curves;
- `plot_transferability`: Yosinski et al.'s figure, accuracy against the number
  of copied blocks n for AnB, AnB+, BnB and BnB+, with base B as a line;
- `plot_size_sweep`: Soekhoe et al.'s figure, accuracy against training images
  per class (log scale), one line per strategy with its spread over seeds.

The data itself is drawn by `plot_examples` (`tlrecipes.lab.data_figures`).

Figures are built with `matplotlib.figure.Figure`, not `pyplot`: nothing is
shown or kept in a global figure list, so the functions work on headless
machines (Agg) and in long sweeps without leaking memory. In Jupyter a
returned figure displays itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tlrecipes.lab.experiments import VARIANTS, ScratchComparison
from tlrecipes.lab.results import aggregate, transfer_benefit

__all__ = [
    "plot_learning_curves",
    "plot_transfer_vs_scratch",
    "plot_transferability",
    "plot_size_sweep",
]

_TRANSFER_COLOR = "#1f77b4"
_SCRATCH_COLOR = "#555555"
_VARIANT_STYLE = {  # Yosinski et al.'s figure 2: B in blue, A in red, "+" lighter
    "BnB": {"color": "#1f4e9c", "marker": "o", "linestyle": "-"},
    "BnB+": {"color": "#6fa8dc", "marker": "o", "linestyle": "--"},
    "AnB": {"color": "#b3261e", "marker": "D", "linestyle": "-"},
    "AnB+": {"color": "#e8857a", "marker": "D", "linestyle": "--"},
}


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def _history_dict(history: Any) -> dict[str, list[float]]:
    if isinstance(history, Mapping):
        return {k: list(v) for k, v in history.items()}
    if hasattr(history, "history") and isinstance(history.history, Mapping):
        return {k: list(v) for k, v in history.history.items()}
    raise TypeError(
        "`history` must be the History returned by fit / two_phase_fit, or its "
        f"`.history` dict. Received: history={type(history).__name__}."
    )


def plot_learning_curves(
    history: Any,
    *,
    metrics: Sequence[str] = ("loss", "accuracy"),
    fine_tune_start: int | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plots training and validation curves per epoch, marking where fine-tuning starts.

    The Keras guide's own output shows validation accuracy dropping in the
    first fine-tuning epoch; only a plot with the phase boundary on it makes
    such a drop (or a loss spike from too high a learning rate) obvious.

    Args:
        history: A `TwoPhaseHistory` (from `two_phase_fit`), a Keras
            `History`, or a dict of per-epoch lists such as `history.history`.
        metrics: Metrics to plot, one panel each; `val_<metric>` is drawn in
            the same panel when present. Missing ones are skipped. Defaults to
            `("loss", "accuracy")`.
        fine_tune_start: Index of the first fine-tuning epoch. Defaults to
            None: `history.fine_tune_start_epoch` when there is one (no marker
            otherwise).
        title: Figure title. Defaults to None (none).
        path: Where to save a PNG. Defaults to None (not saved).

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: If none of `metrics` is in the history (the message lists
            the keys it has).
        TypeError: If `history` is neither a History nor a dict.

    Example:

    >>> history = {"loss": [1.0, 0.7, 0.5, 0.4], "accuracy": [0.5, 0.7, 0.8, 0.85],
    ...            "val_accuracy": [0.5, 0.65, 0.7, 0.72]}
    >>> fig = plot_learning_curves(history, fine_tune_start=2)
    >>> len(fig.axes)
    2
    """
    data = _history_dict(history)
    if fine_tune_start is None:
        fine_tune_start = getattr(history, "fine_tune_start_epoch", None)
    present = [m for m in metrics if m in data or f"val_{m}" in data]
    if not present:
        raise ValueError(
            f"None of metrics={list(metrics)} is in the history. It has: "
            f"{sorted(data)}. Fix: pass metrics=[...] with some of these names."
        )
    fig = Figure(figsize=(4.2 * len(present), 3.4), layout="constrained")
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    epochs_total = max(len(v) for v in data.values())
    for ax, metric in zip(axes, present, strict=True):
        for key, label, style in (
            (metric, "training", "-"),
            (f"val_{metric}", "validation", "--"),
        ):
            if key in data:
                values = np.asarray(data[key], dtype=float)
                ax.plot(
                    np.arange(1, len(values) + 1),
                    values,
                    style,
                    marker="o",
                    ms=3,
                    label=label,
                )
        if fine_tune_start and 0 < fine_tune_start < epochs_total:
            boundary = fine_tune_start + 0.5
            ax.axvline(boundary, color="#888888", linestyle=":", linewidth=1.5)
            ax.axvspan(0.5, boundary, color="#f2f2f2", zorder=0)
            # Phase names just above the frame, where no data point can hide them.
            for x, text, ha in (
                (boundary, "  fine-tuning starts \u2192", "left"),
                (boundary, "\u2190 head only  ", "right"),
            ):
                ax.text(
                    x,
                    1.01,
                    text,
                    transform=ax.get_xaxis_transform(),
                    va="bottom",
                    ha=ha,
                    fontsize=8,
                    color="#555555",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xlim(0.5, epochs_total + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _mean_std(curves: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(curves, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(
            f"`{name}` must be one curve (1-D) or one curve per seed (2-D: seeds x "
            f"points). Received shape {array.shape}."
        )
    std = array.std(axis=0, ddof=1) if len(array) > 1 else np.zeros(array.shape[1])
    return array.mean(axis=0), std


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def plot_transfer_vs_scratch(
    transfer: Any,
    scratch: Any = None,
    *,
    steps: Sequence[float] | None = None,
    threshold: float | None = None,
    labels: tuple[str, str] = ("transfer", "scratch"),
    title: str | None = None,
    ax: Axes | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plots a transfer curve against its from-scratch twin, benefits annotated.

    Draws both learning curves (mean and spread when several seeds are given)
    and marks Torrey & Shavlik's three benefits on them: the jumpstart (gap at
    the first point), the area between the curves (average gap over
    training), the final gap, and where each curve first reaches the
    threshold (by default the scratch twin's final accuracy).

    Args:
        transfer: The transfer model's accuracy curve: 1-D, or 2-D with one row
            per seed. Or a `ScratchComparison` (from `transfer_vs_scratch`),
            which supplies both curves and their steps; leave `scratch` None.
        scratch: The scratch twin's curve(s), same shape. Defaults to None
            (only with a `ScratchComparison`).
        steps: Where the points were taken (x axis). Defaults to None: the
            comparison's optimisation steps, else 1..n. A comparison run with
            a validation split (`TrainConfig.val_per_class`) read its curves
            on validation, and the y axis says so.
        threshold: Accuracy for the time-to-threshold markers. Defaults to
            None: the scratch mean curve's final value.
        labels: Legend names of the two curves. Defaults to
            `("transfer", "scratch")`.
        title: Axes title. Defaults to None: the benefits in one line.
        ax: Axes to draw on. Defaults to None (a new figure).
        path: Where to save a PNG. Defaults to None (not saved).

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: If the curves differ in length or are malformed, or
            `scratch` is missing.

    Example:

    >>> fig = plot_transfer_vs_scratch([0.5, 0.7, 0.8, 0.8], [0.3, 0.5, 0.6, 0.7])
    >>> fig.axes[0].get_xlabel()
    'epoch'
    """
    xlabel, ylabel = "epoch", "test accuracy"
    if isinstance(transfer, ScratchComparison):
        comparison = transfer
        if any(r.get("selected_on") == "validation" for r in comparison.rows):
            ylabel = "validation accuracy"  # the curves were read on validation
        strategy = comparison.summary["strategy"]
        run_steps, transfer = comparison.curves(strategy)
        _, scratch = comparison.curves("scratch")
        steps = run_steps if steps is None else steps
        labels = (strategy, "scratch") if labels == ("transfer", "scratch") else labels
        xlabel = "optimisation step"
    if scratch is None:
        raise ValueError(
            "`scratch` is missing. Fix: pass the scratch twin's curve(s), or a "
            "ScratchComparison as the only curve argument."
        )
    t_mean, t_std = _mean_std(transfer, "transfer")
    s_mean, s_std = _mean_std(scratch, "scratch")
    if steps is None:
        x = np.arange(1, len(t_mean) + 1, dtype=float)
    else:
        x = np.asarray(steps, dtype=float)
        xlabel = "optimisation step" if xlabel == "epoch" and x[-1] > len(x) else xlabel
    benefit = transfer_benefit(t_mean, s_mean, steps=x, threshold=threshold)

    fig, ax = _axes(ax, (6.4, 4.2))
    for mean, std, label, color in (
        (t_mean, t_std, labels[0], _TRANSFER_COLOR),
        (s_mean, s_std, labels[1], _SCRATCH_COLOR),
    ):
        ax.plot(x, mean, marker="o", ms=3, color=color, label=label)
        if std.any():
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, lw=0)
    # Slope: the area between the curves, green where transfer is ahead.
    ax.fill_between(
        x,
        s_mean,
        t_mean,
        where=t_mean >= s_mean,
        interpolate=True,
        color="#2ca02c",
        alpha=0.18,
    )
    ax.fill_between(
        x,
        s_mean,
        t_mean,
        where=t_mean < s_mean,
        interpolate=True,
        color="#d62728",
        alpha=0.18,
    )
    span = x[-1] - x[0] if len(x) > 1 else 1.0
    arrow = {"arrowstyle": "<->", "color": "black", "lw": 1.2}
    # Start: jumpstart at the first point; asymptote: gap at the last point.
    for xi, a, b, text, ha in (
        (
            x[0],
            s_mean[0],
            t_mean[0],
            f"jumpstart {_signed(benefit['jumpstart'])}",
            "left",
        ),
        (
            x[-1],
            s_mean[-1],
            t_mean[-1],
            f"final {_signed(benefit['final_difference'])}",
            "right",
        ),
    ):
        if a != b:
            ax.annotate("", xy=(xi, b), xytext=(xi, a), arrowprops=arrow)
        offset = 0.02 * span if ha == "left" else -0.02 * span
        ax.text(xi + offset, (a + b) / 2, text, ha=ha, va="center", fontsize=8)
    middle = len(x) // 2
    ax.text(
        x[middle],
        (t_mean[middle] + s_mean[middle]) / 2,
        f"area {_signed(benefit['auc_difference'])}\n(average gap)",
        ha="center",
        va="center",
        fontsize=8,
        color="#1b5e20" if benefit["auc_difference"] >= 0 else "#8e0000",
    )
    level = benefit["threshold"]
    reach = []
    for key, mean, color in (
        ("transfer_to_threshold", t_mean, _TRANSFER_COLOR),
        ("scratch_to_threshold", s_mean, _SCRATCH_COLOR),
    ):
        at = benefit[key]
        if not math.isnan(at):
            ax.plot([at], [mean[np.flatnonzero(x == at)[0]]], "*", ms=11, color=color)
            reach.append(f"{at:g}")
        else:
            reach.append("never")
    ax.axhline(
        level,
        color="#999999",
        linestyle=":",
        lw=1,
        label=f"threshold {level:.3f}: reached at {reach[0]} vs {reach[1]}",
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(
        title
        or (
            f"{labels[0]} vs {labels[1]}: jumpstart {_signed(benefit['jumpstart'])}, "
            f"area {_signed(benefit['auc_difference'])}, "
            f"final {_signed(benefit['final_difference'])}"
        ),
        fontsize=9,
    )
    return _finish(fig, path)


def plot_transferability(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    ax: Axes | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plots Yosinski et al.'s figure: accuracy on B against copied blocks n.

    One line per variant (AnB and AnB+ in red, BnB and BnB+ in blue, the
    fine-tuned "+" variants dashed), the mean over seeds with standard
    deviation error bars, and base B (trained on B from scratch) as a
    horizontal line with its spread shaded. Read it as Yosinski et al. do: AnB
    falling below base B shows where features become specific to A; BnB
    dipping shows co-adapted layers that cannot be split; AnB+ above base B
    is transfer improving generalisation.

    Args:
        rows: The rows of `transferability_by_layer` (or `load_rows` of its
            saved CSV): each with `variant`, `n` and `accuracy`.
        title: Axes title. Defaults to None: "Transferability by layer".
        ax: Axes to draw on. Defaults to None (a new figure).
        path: Where to save a PNG. Defaults to None (not saved).

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: If no row has a known variant.

    Example:

    >>> rows = [{"variant": v, "n": n, "seed": 0, "accuracy": 0.6 + 0.01 * n}
    ...         for v in ("AnB", "BnB") for n in (1, 2, 3)]
    >>> rows.append({"variant": "baseB", "n": None, "seed": 0, "accuracy": 0.62})
    >>> fig = plot_transferability(rows)
    >>> fig.axes[0].get_xlabel()
    'blocks copied from the source network, n'
    """
    variant_rows = [r for r in rows if r.get("variant") in VARIANTS]
    if not variant_rows:
        raise ValueError(
            f"No row has a variant in {list(VARIANTS)}. Fix: pass the rows of "
            "transferability_by_layer (each with 'variant', 'n' and 'accuracy')."
        )
    fig, ax = _axes(ax, (6.0, 4.2))
    base_rows = [r for r in rows if r.get("variant") == "baseB"]
    if base_rows:
        base = aggregate(base_rows)[0]
        mean, std = base["accuracy_mean"], base["accuracy_std"]
        ax.axhline(mean, color="black", lw=1.2, label=f"base B ({mean:.3f})")
        if std:
            ax.axhspan(mean - std, mean + std, color="black", alpha=0.08, lw=0)
    summary = aggregate(variant_rows, by=("variant", "n"))
    offsets = dict(zip(VARIANTS, (-0.09, -0.03, 0.03, 0.09), strict=True))
    cuts = sorted({int(s["n"]) for s in summary})
    for variant in VARIANTS:
        points = sorted(
            (s for s in summary if s["variant"] == variant), key=lambda s: s["n"]
        )
        if not points:
            continue
        ax.errorbar(
            [int(p["n"]) + offsets[variant] for p in points],
            [p["accuracy_mean"] for p in points],
            yerr=[p["accuracy_std"] for p in points],
            capsize=3,
            ms=5,
            label=variant,
            **_VARIANT_STYLE[variant],
        )
    ax.set_xticks(cuts)
    ax.set_xlabel("blocks copied from the source network, n")
    ax.set_ylabel("test accuracy on B")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "Transferability by layer", fontsize=10)
    return _finish(fig, path)


def plot_size_sweep(
    rows: Sequence[Mapping[str, Any]],
    *,
    value: str = "accuracy",
    title: str | None = None,
    ax: Axes | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plots Soekhoe et al.'s figure: accuracy against training images per class.

    One line per strategy (the mean over seeds) with its standard deviation
    shaded, on a log x axis so 5 and 1,000 images per class both read. From
    scratch is drawn black and dashed: where a transfer line runs above it,
    transfer helps; where the lines meet, the benefit has faded.

    Args:
        rows: The rows of `size_sweep` (or `load_rows` of its saved CSV): each
            with `strategy`, `n_per_class` and `value`.
        value: The column to plot. Defaults to `"accuracy"`.
        title: Axes title. Defaults to None: "Accuracy vs target dataset size".
        ax: Axes to draw on. Defaults to None (a new figure).
        path: Where to save a PNG. Defaults to None (not saved).

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: If `rows` is empty.
        KeyError: If rows lack `strategy`, `n_per_class` or `value`.

    Example:

    >>> rows = [{"strategy": s, "n_per_class": n, "seed": 0, "accuracy": a}
    ...         for s, base in (("scratch", 0.4), ("two_phase", 0.6))
    ...         for n, a in ((5, base), (50, base + 0.2))]
    >>> fig = plot_size_sweep(rows)
    >>> fig.axes[0].get_xscale()
    'log'
    """
    if not rows:
        raise ValueError("`rows` is empty. Fix: pass the rows returned by size_sweep.")
    summary = aggregate(rows, by=("strategy", "n_per_class"), values=value)
    fig, ax = _axes(ax, (7.6, 4.2))
    strategies = list(dict.fromkeys(s["strategy"] for s in summary))
    for strategy in strategies:
        points = sorted(
            (s for s in summary if s["strategy"] == strategy),
            key=lambda s: float(s["n_per_class"]),
        )
        n = np.array([float(p["n_per_class"]) for p in points])
        mean = np.array([p[f"{value}_mean"] for p in points])
        std = np.array([p[f"{value}_std"] for p in points])
        style = (
            {"color": "black", "linestyle": "--", "marker": "s"}
            if strategy == "scratch"
            else {"marker": "o"}
        )
        (line,) = ax.plot(n, mean, ms=4, label=strategy, **style)
        if std.any():
            ax.fill_between(
                n, mean - std, mean + std, color=line.get_color(), alpha=0.15, lw=0
            )
    sizes = sorted({float(s["n_per_class"]) for s in summary})
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{s:g}" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel(f"test {value}" if value == "accuracy" else value)
    ax.grid(alpha=0.3)
    # Outside the axes: with six strategies, any inside spot hides a line.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title or "Accuracy vs target dataset size", fontsize=10)
    return _finish(fig, path)

