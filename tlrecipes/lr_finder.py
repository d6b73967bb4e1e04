"""A learning-rate finder: Smith's LR range test, as fastai's `lr_find` runs it.

Train for a few hundred steps while the rate grows exponentially, plot the
smoothed loss against the rate, and read off a rate from where the loss falls
fastest. The model's weights and optimizer are put back afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from tlrecipes.checkpoint import arrays_of, assign
from tlrecipes.optimizers import make_optimizer
from tlrecipes.training import compile_args
from tlrecipes.validation import (
    check_positive_int,
    check_positive_number,
    validate_fit_data,
)

__all__ = ["lr_find", "LRFinderResult", "LR_FIND_RULES"]

#: Rules `lr_find` can suggest a learning rate by.
LR_FIND_RULES = ("valley", "steepest", "min/10")
#: Fewest steps a sweep can have.
MIN_STEPS = 5


@dataclass
class LRFinderResult:
    """What `lr_find` measured and the rate it suggests.

    Attributes:
        learning_rates: The rate of each step that ran.
        losses: The training loss of each step's batch.
        smoothed: The losses after bias-corrected exponential smoothing.
        suggestion: The suggested learning rate.
        rule: The rule that chose it (one of `LR_FIND_RULES`).
        suggestions: The rate every rule gives, `{rule: rate}`.
        stopped_early: True when the sweep stopped because the loss diverged.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    rule: str
    suggestions: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False

    def __repr__(self) -> str:
        return (
            f"LRFinderResult(suggestion={self.suggestion:.3g}, rule={self.rule!r}, "
            f"steps={len(self.learning_rates)}, range=[{self.learning_rates[0]:.3g}, "
            f"{self.learning_rates[-1]:.3g}])"
        )

    def plot(self, ax: Any = None, path: Any = None) -> Any:
        """Plots the raw and smoothed loss against the rate (log scale).

        Args:
            ax: A matplotlib `Axes` to draw on. Defaults to None: a new figure.
            path: Where to save the figure (PNG, SVG, ...). Defaults to None.

        Returns:
            The `matplotlib.figure.Figure`.
        """
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(6, 4), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ax.plot(self.learning_rates, self.losses, color="0.75", lw=1, label="loss")
        ax.plot(self.learning_rates, self.smoothed, color="C0", lw=2, label="smoothed")
        for i, (rule, rate) in enumerate(self.suggestions.items()):
            style = "-" if rule == self.rule else ":"
            ax.axvline(rate, color=f"C{i + 1}", ls=style, label=f"{rule}: {rate:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        top = np.nanmax(self.smoothed[: max(1, int(np.nanargmin(self.smoothed)) + 1)])
        low = np.nanmin(self.smoothed)
        ax.set_ylim(low - 0.1 * (top - low + 1e-12), top + 0.5 * (top - low + 1e-12))
        ax.set_title(f"LR finder: suggests {self.suggestion:.2g} ({self.rule})")
        ax.legend(fontsize="small")
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def _valley(smoothed: np.ndarray) -> int:
    """fastai's `valley`: two thirds into the longest decreasing stretch."""
    n = len(smoothed)
    lengths = [1] * n
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
        if lengths[end] < lengths[i]:
            end = i
            start = end - lengths[end]
    sections = (end - start) / 3
    return int(min(n - 1, max(0, start + int(sections) + int(sections / 2))))


def _suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict[str, float]:
    lowest = int(np.argmin(smoothed))
    slopes = np.gradient(smoothed, np.log(lrs)) if len(lrs) > 1 else np.zeros(1)
    steepest = int(np.argmin(slopes[: lowest + 1]))
    return {
        "valley": float(lrs[_valley(smoothed)]),
        "steepest": float(lrs[steepest]),
        "min/10": float(max(lrs[lowest] / 10.0, lrs[0])),
    }


def _batches(x: Any, y: Any, batch_size: int, seed: int):
    if isinstance(x, keras.utils.PyDataset):
        while True:
            for i in range(len(x)):
                batch = x[i]
                yield batch[0], batch[1] if len(batch) > 1 else None
    if not hasattr(x, "__len__") or not hasattr(x, "shape"):
        raise TypeError(
            "`lr_find` takes NumPy arrays or a keras.utils.PyDataset. Received: "
            f"x={type(x).__name__}. Fix: pass arrays (x, y), or a PyDataset."
        )
    x = np.asarray(x)
    y = None if y is None else np.asarray(y)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for i in range(
            0, len(x) - batch_size + 1 if len(x) >= batch_size else 1, batch_size
        ):
            index = order[i : i + batch_size]
            yield x[index], None if y is None else y[index]


def lr_find(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 32,
    optimizer: str | keras.optimizers.Optimizer | None = None,
    rule: str = "valley",
    beta: float = 0.98,
    stop_factor: float = 4.0,
    seed: int = 0,
) -> LRFinderResult:
    """Finds a learning rate with an exponential sweep (Smith's LR range test).

    Trains the model's trainable layers for `num_steps` batches while the
    learning rate grows exponentially from `start_lr` to `end_lr`, records
    each batch's loss, smooths it (bias-corrected exponential moving average,
    `beta`), and stops once the smoothed loss exceeds `stop_factor` times its
    minimum (it has diverged). A good rate is where the loss still falls
    fast, before the minimum; the rules (fastai's):

    - `"valley"`: two thirds of the way down the longest stretch over which
      the smoothed loss keeps falling (fastai's default since 2021: robust to
      noise).
    - `"steepest"`: where the smoothed loss falls fastest against log(rate),
      up to its minimum.
    - `"min/10"`: the rate at the minimum divided by 10 (the classic rule).

    Afterwards every model variable (weights, BatchNorm statistics, seed
    states) is put back bit for bit, and so is the optimizer: a compiled
    model is recompiled with its own optimizer object, whose variables
    (moments, step counter) are restored. An uncompiled model is left
    compiled with a fresh optimizer at the suggested rate. Run it with the
    layers frozen as they will be when training (e.g. after phase 1, with the
    base unfrozen, to choose `fine_tune_lr`).

    Args:
        model: The model; its loss and metrics are reused when compiled,
            otherwise inferred from the output layer.
        x: Training images (NumPy array) or a `keras.utils.PyDataset`.
        y: Labels when `x` is an array. Defaults to None.
        start_lr: First rate of the sweep. Defaults to 1e-7.
        end_lr: Last rate of the sweep. Defaults to 10.
        num_steps: Batches in the sweep; a few hundred give a smooth curve.
            Defaults to 100.
        batch_size: Batch size for arrays. Defaults to 32.
        optimizer: Optimizer name or instance (its settings are copied).
            Defaults to None: the model's own kind when compiled, else Adam.
        rule: Which rule's rate becomes `suggestion`. Defaults to `"valley"`.
        beta: Smoothing of the loss. Defaults to 0.98.
        stop_factor: Stop when the smoothed loss exceeds this times its
            minimum. Defaults to 4.
        seed: Seed of the batch order. Defaults to 0.

    Returns:
        An `LRFinderResult` (`suggestion`, `rule`, all rules' `suggestions`,
        the curve, and `.plot()`).

    Raises:
        ValueError: For a rate range that is not increasing and positive,
            fewer than 5 steps, an unknown `rule`, or bad data (the checks of
            `two_phase_fit`), before any weight moves.

    Example:

    >>> from tlrecipes.lr_finder import lr_find
    >>> base = keras.Sequential([keras.Input((8, 8, 1))] + [
    ...     keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")
    ...     for i in range(1, 2)], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> x, y = np.random.rand(64, 8, 8, 1).astype("float32"), np.arange(64) % 3
    >>> result = lr_find(model, x, y, num_steps=20, end_lr=1.0)
    >>> 1e-7 <= result.suggestion <= 1.0, result.rule
    (True, 'valley')
    """
    start_lr = check_positive_number(start_lr, "start_lr", "e.g. start_lr=1e-7.")
    end_lr = check_positive_number(end_lr, "end_lr", "e.g. end_lr=10.")
    if end_lr <= start_lr:
        raise ValueError(
            "Received an invalid learning-rate range, expected start_lr < end_lr. "
            f"Received: start_lr={start_lr!r}, end_lr={end_lr!r}. Fix: e.g. "
            "start_lr=1e-7, end_lr=10."
        )
    num_steps = check_positive_int(num_steps, "num_steps", "e.g. num_steps=100.")
    if num_steps < MIN_STEPS:
        raise ValueError(
            f"Received an invalid value for `num_steps`, expected an integer >= "
            f"{MIN_STEPS}. Received: num_steps={num_steps!r}. Fix: e.g. num_steps=100."
        )
    if rule not in LR_FIND_RULES:
        raise ValueError(
            f"Received an invalid value for `rule`, expected one of {LR_FIND_RULES}. "
            f"Received: rule={rule!r}. Fix: use rule='valley'."
        )
    compiled = compile_args(model, y)
    validate_fit_data(model, x, y, None, compiled["loss"])  # bad input never trains
    was_compiled = (
        bool(getattr(model, "compiled", False)) and model.optimizer is not None
    )
    own = model.optimizer if was_compiled else None
    own_state = arrays_of(own.variables) if own is not None and own.built else None
    kind = optimizer if optimizer is not None else (own if own is not None else "adam")
    model_state = arrays_of(model.variables)

    sweep = make_optimizer(kind, float(start_lr))  # a float rate: a Variable
    model.compile(optimizer=sweep, **compiled)
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, stopped = 0.0, math.inf, False
    batches = _batches(x, y, int(batch_size), seed)
    try:
        for i, lr in enumerate(lrs):
            sweep.learning_rate = float(lr)
            xb, yb = next(batches)
            logs = model.train_on_batch(xb, yb, return_dict=True)
            loss = float(keras.ops.convert_to_numpy(logs["loss"]))
            losses.append(loss)
            if not math.isfinite(loss):
                smoothed.append(math.inf)
                stopped = True
                break
            average = beta * average + (1 - beta) * loss
            smoothed.append(average / (1 - beta ** (i + 1)))
            best = min(best, smoothed[-1])
            if i > 5 and smoothed[-1] > stop_factor * best:
                stopped = True
                break
    finally:
        assign(model.variables, model_state, "model")
        if own is not None:
            model.compile(optimizer=own, **compiled)
            if own_state is not None:
                assign(own.variables, own_state, "optimizer")
    tested = lrs[: len(losses)]
    curve = np.asarray(smoothed, dtype="float64")
    finite = np.isfinite(curve)
    if finite.sum() < 2:
        raise ValueError(
            f"The loss was not finite from the first steps of the sweep "
            f"(start_lr={start_lr}). Fix: lower start_lr, or check the inputs "
            "and labels (tlrecipes.validation)."
        )
    suggestions = _suggest(tested[finite], curve[finite])
    result = LRFinderResult(
        learning_rates=tested,
        losses=np.asarray(losses, dtype="float64"),
        smoothed=curve,
        suggestion=suggestions[rule],
        rule=rule,
        suggestions=suggestions,
        stopped_early=stopped,
    )
    if own is None:
        model.compile(optimizer=make_optimizer(kind, result.suggestion), **compiled)
    return result
