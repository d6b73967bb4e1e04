"""Comparing arms paired by seed: the one comparison every report and notebook uses.

Every piece of advice here is a difference between two arms (two strategies,
two cut depths, transfer against a from-scratch twin) measured over seeds. A
seed fixes the split, the initial weights and the shuffling, so arms `a` and
`b` on seed 3 share the same luck and their per-seed difference cancels it.
The protocol:

1. **Same seeds for every arm**, at least `MIN_SEEDS_CPU` (5) on a CPU and
   `MIN_SEEDS_GPU` (10) on a GPU (`min_seeds`; `check_seeds` warns below).
2. **Pick on validation** the best strategy or depth: `pick_best`.
3. **Compare on test**: `compare(test[best], test[baseline])` measures the
   pick on scores the picking never saw. Picking and comparing on the same
   scores flatters the winner (the largest of several noisy means is biased
   upwards). Without a validation split, compare every candidate with
   `compare_to_baseline`: its correction also covers picking among them.
4. **Several arms against one baseline**: `compare_to_baseline` widens each
   interval (Bonferroni, level `1 - (1 - confidence) / k` for `k` arms) so
   that all `k` hold together with the stated confidence.
5. **The verdict follows from the interval alone**: "ahead" when its low end
   is above 0, "behind" when its high end is below 0, else "tie"; no rule of
   thumb ("mean above one standard deviation").

The interval is the paired Student t interval on the differences `a - b`,
`mean ± t(1 - alpha / 2, n - 1) * sd / sqrt(n)` (`sd` with ddof 1);
`summary_table` renders comparisons as Markdown. Needs numpy and scipy only.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "Comparison",
    "MIN_SEEDS_CPU",
    "MIN_SEEDS_GPU",
    "SeedWarning",
    "check_seeds",
    "compare",
    "compare_to_baseline",
    "min_seeds",
    "pick_best",
    "summary_table",
]

#: Fewest seeds for a comparison run on a CPU.
MIN_SEEDS_CPU = 5
#: Fewest seeds for a comparison run on a GPU or TPU.
MIN_SEEDS_GPU = 10
#: How every `Comparison` computes its interval.
METHOD = "paired t"

#: Per-seed scores: `{seed: score}` or a sequence of `(seed, score)` pairs.
Scores = Mapping[int, float] | Sequence[tuple[int, float]]


class SeedWarning(UserWarning):
    """A comparison has fewer seeds than the minimum for its device."""


@dataclass(frozen=True)
class Comparison:
    """Arm `a` measured against arm `b`: the difference `a - b`, paired by seed.

    Built by `compare`. Fields are plain numbers and tuples (`to_dict` for JSON).

    Attributes:
        name_a: The arm measured. name_b: the arm it is measured against.
        mean: Mean of the per-seed differences. std: their standard
            deviation (ddof 1).
        low: Low end of the interval on the mean. high: its high end.
        p_value: Two-sided paired t p-value of "no difference", uncorrected
            (`p_adjusted` multiplies it by `comparisons`).
        n: Number of paired seeds. seeds: them, ascending. per_seed: the
            difference on each, same order.
        dropped_seeds: Seeds present in one arm only, ascending.
        confidence: Confidence of the family of `comparisons` intervals.
        comparisons: Family size (Bonferroni); 1 for a single comparison.
        level: Level of this interval, `1 - (1 - confidence) / comparisons`.
        method: How the interval was computed (`"paired t"`).
    """

    name_a: str
    name_b: str
    mean: float
    std: float
    low: float
    high: float
    p_value: float
    n: int
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    dropped_seeds: tuple[int, ...]
    confidence: float
    comparisons: int
    level: float
    method: str = METHOD

    @property
    def name(self) -> str:
        """`"a - b"`: what this comparison measures."""
        return f"{self.name_a} - {self.name_b}"

    @property
    def verdict(self) -> str:
        """The verdict: "ahead" if `low > 0`, "behind" if `high < 0`, else "tie"."""
        return "ahead" if self.low > 0 else "behind" if self.high < 0 else "tie"

    @property
    def p_adjusted(self) -> float:
        """`min(1, p_value * comparisons)`: below `1 - confidence` iff not a tie."""
        return min(1.0, self.p_value * self.comparisons)

    @property
    def points(self) -> str:
        """In points (x100, 1 digit), for tables: `+3.4 (95% CI +1.0 to +5.8)`."""
        return f"{_signed(self.mean, 100.0, 1)} ({self._interval(100.0, 1)})"

    def __str__(self) -> str:
        dropped = ", ".join(map(str, self.dropped_seeds))
        dropped = f"; dropped seeds {dropped}" if dropped else ""
        return (
            f"{self.name}: {_signed(self.mean, 1.0, 3)} ({self._interval(1.0, 3)}; "
            f"{self.n} seeds{dropped}) -> {self.verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values, plus `name`, `verdict`, `p_adjusted`."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        out.update(name=self.name, verdict=self.verdict, p_adjusted=self.p_adjusted)
        return out

    def _interval(self, scale: float, digits: int) -> str:
        k = self.comparisons
        label = f"{_percent(self.confidence)} CI" + (
            f", Bonferroni x{k}:" if k > 1 else ""
        )
        low, high = _signed(self.low, scale, digits), _signed(self.high, scale, digits)
        return f"{label} {low} to {high}"


def compare(
    a: Scores,
    b: Scores,
    *,
    name_a: str = "a",
    name_b: str = "b",
    confidence: float = 0.95,
    comparisons: int = 1,
) -> Comparison:
    """Compares arm `a` with arm `b` over the seeds both ran: `a - b`, paired.

    Seeds present in one arm only are not averaged in: they are listed in
    `dropped_seeds`. The interval is the paired Student t interval at level
    `1 - (1 - confidence) / comparisons`, so a family of `comparisons`
    intervals holds together with `confidence`. If every per-seed difference
    is equal, the interval is that value (p-value 0, or 1 when it is 0).

    Args:
        a: Per-seed scores of the arm measured: `{seed: score}` or a sequence
            of `(seed, score)` pairs; seeds are integers (or strings of
            digits, as JSON keys come back).
        b: Per-seed scores of the arm it is measured against, same form.
        name_a: Name of arm `a`. Defaults to `"a"`.
        name_b: Name of arm `b`. Defaults to `"b"`.
        confidence: Confidence of the family of intervals, in (0, 1).
            Defaults to 0.95.
        comparisons: Size of the family (Bonferroni): the number of arms
            compared against one baseline, or of candidates when the best was
            picked on these same scores. Defaults to 1.

    Returns:
        A `Comparison`: mean, standard deviation, interval, p-value, seeds,
        per-seed differences, dropped seeds and verdict.

    Raises:
        ValueError: If a score is NaN or infinite (the seed is named), a seed
            is repeated or not an integer, fewer than 2 seeds are shared, or
            `confidence` or `comparisons` is out of range.

    Example:

    >>> from tlrecipes.lab.comparison import compare
    >>> two_phase = {0: 0.81, 1: 0.84, 2: 0.80, 3: 0.83, 4: 0.82}
    >>> scratch = {0: 0.78, 1: 0.80, 2: 0.79, 3: 0.79, 4: 0.80}
    >>> result = compare(two_phase, scratch, name_a="two_phase", name_b="scratch")
    >>> print(result)
    two_phase - scratch: +0.028 (95% CI +0.012 to +0.044; 5 seeds) -> ahead
    >>> result.points
    '+2.8 (95% CI +1.2 to +4.4)'
    >>> compare([(1, 0.5), (0, 0.6), (9, 0.1)], {0: 0.6, 1: 0.5}).dropped_seeds
    (9,)
    """
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise _invalid(
            "`confidence`",
            "a number strictly between 0 and 1",
            f"confidence={confidence!r}",
            "pass 0.95 for a 95% interval.",
        )
    if not _is_int(comparisons) or comparisons < 1:
        raise _invalid(
            "`comparisons`",
            "a positive integer",
            f"comparisons={comparisons!r}",
            "pass the number of arms compared against the baseline (1 alone).",
        )
    scores_a, scores_b = _scores(a, "a", name_a), _scores(b, "b", name_b)
    seeds = sorted(scores_a.keys() & scores_b.keys())
    if len(seeds) < 2:
        raise _invalid(
            "`a` and `b`",
            "scores sharing at least 2 seeds",
            f"{name_a!r} has seeds {sorted(scores_a)}, {name_b!r} has seeds "
            f"{sorted(scores_b)} ({len(seeds)} shared)",
            f"run both arms on the same seeds, at least {MIN_SEEDS_CPU} on a CPU "
            f"and {MIN_SEEDS_GPU} on a GPU.",
        )
    diffs = np.array([scores_a[s] - scores_b[s] for s in seeds], dtype=np.float64)
    n, mean, std = len(seeds), float(np.mean(diffs)), float(np.std(diffs, ddof=1))
    alpha = (1.0 - float(confidence)) / int(comparisons)
    se = std / math.sqrt(n)
    if se > 0:
        half = float(stats.t.isf(alpha / 2, n - 1)) * se
        p_value = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    else:
        half, p_value = 0.0, (1.0 if mean == 0 else 0.0)
    return Comparison(
        name_a=str(name_a),
        name_b=str(name_b),
        mean=mean,
        std=std,
        low=mean - half,
        high=mean + half,
        p_value=p_value,
        n=n,
        seeds=tuple(seeds),
        per_seed=tuple(float(d) for d in diffs),
        dropped_seeds=tuple(sorted(scores_a.keys() ^ scores_b.keys())),
        confidence=float(confidence),
        comparisons=int(comparisons),
        level=1.0 - alpha,
    )


def compare_to_baseline(
    arms: Mapping[str, Scores],
    baseline: str,
    *,
    confidence: float = 0.95,
    comparisons: int | None = None,
) -> list[Comparison]:
    """Compares every arm with one baseline, each interval widened (Bonferroni).

    With `k` arms compared, each interval is at level `1 - (1 - confidence) /
    k`, so all `k` hold together with `confidence`. Uncorrected, five arms no
    better than the baseline would give a spurious verdict a fifth of the time.

    Args:
        arms: Per-seed scores by arm name (see `compare`), baseline included.
        baseline: Name of the arm every other arm is measured against.
        confidence: Confidence of the whole family. Defaults to 0.95.
        comparisons: Family size when it spans more than this call (several
            cases in one report); at least the arms compared here. Defaults
            to None: `len(arms) - 1`.

    Returns:
        One `Comparison` (`arm - baseline`) per other arm, in `arms`' order.

    Raises:
        ValueError: If `baseline` is not in `arms`, no other arm is given,
            `comparisons` is below the arms compared, or `compare` refuses.

    Example:

    >>> from tlrecipes.lab.comparison import compare_to_baseline
    >>> arms = {
    ...     "scratch": {0: 0.70, 1: 0.72, 2: 0.71, 3: 0.69, 4: 0.70},
    ...     "head_only": {0: 0.78, 1: 0.79, 2: 0.80, 3: 0.77, 4: 0.78},
    ...     "two_phase": {0: 0.71, 1: 0.70, 2: 0.73, 3: 0.69, 4: 0.71},
    ... }
    >>> for c in compare_to_baseline(arms, "scratch"):
    ...     print(c.name, c.verdict, f"{c.level:.4f}")
    head_only - scratch ahead 0.9750
    two_phase - scratch tie 0.9750
    """
    mapping = isinstance(arms, Mapping)
    others = [name for name in arms if name != baseline] if mapping else []
    if not mapping or baseline not in arms or not others:
        raise _invalid(
            "`arms` or `baseline`",
            "{name: per-seed scores} holding the baseline and another arm",
            f"baseline={baseline!r}, arms={list(arms) if mapping else arms!r}",
            "name the baseline and the arms to measure against it.",
        )
    if comparisons is None:
        comparisons = len(others)
    elif _is_int(comparisons) and comparisons < len(others):
        raise _invalid(
            "`comparisons`",
            f"at least the number of arms compared ({len(others)})",
            f"comparisons={comparisons}",
            "leave comparisons=None, or pass the size of the whole family.",
        )
    return [
        compare(
            arms[name],
            arms[baseline],
            name_a=str(name),
            name_b=str(baseline),
            confidence=confidence,
            comparisons=comparisons,
        )
        for name in others
    ]


def pick_best(
    validation: Mapping[str, Scores], *, higher_is_better: bool = True
) -> str:
    """The arm with the best mean validation score, over seeds every arm ran.

    Pick here, on validation; then measure the pick on test with `compare`.
    Means use only the seeds all arms share, so an arm that crashed on a hard
    seed is not favoured. **Ties** (means equal within 1e-12, relative) go to
    the arm listed first: list arms from the simplest or cheapest to the most
    complex, and a tie picks the simplest.

    Args:
        validation: Per-seed validation scores by arm name (see `compare`).
        higher_is_better: Whether higher is better (accuracy); False for a
            loss. Defaults to True.

    Returns:
        The name of the best arm.

    Raises:
        ValueError: If `validation` is empty, its arms share no seed, or a
            score is NaN.

    Example:

    >>> from tlrecipes.lab.comparison import pick_best
    >>> pick_best({
    ...     "block1": {0: 0.61, 1: 0.63},
    ...     "block2": {0: 0.70, 1: 0.68},
    ...     "block3": {0: 0.70, 1: 0.68},
    ... })
    'block2'
    """
    if not isinstance(validation, Mapping) or not validation:
        raise _invalid(
            "`validation`",
            "a non-empty mapping {arm name: per-seed scores}",
            f"validation={validation!r}",
            "pass the validation scores of every arm.",
        )
    scores = {name: _scores(s, "validation", name) for name, s in validation.items()}
    common = set.intersection(*(set(s) for s in scores.values()))
    if not common:
        raise _invalid(
            "`validation`",
            "arms sharing at least one seed",
            ", ".join(f"{n!r} has seeds {sorted(s)}" for n, s in scores.items()),
            "run every arm on the same seeds.",
        )
    sign = 1.0 if higher_is_better else -1.0
    means = {n: sign * math.fsum(s[i] for i in common) for n, s in scores.items()}
    best = next(iter(means))
    for name, mean in means.items():
        if mean > means[best] + 1e-12 * max(1.0, abs(means[best])):
            best = name
    return str(best)


def min_seeds(device: str) -> int:
    """The fewest seeds for a comparison run on `device`: 5 on a CPU, 10 else.

    On a CPU runs are slow and 5 seeds is what a reader can afford to rerun;
    on a GPU or TPU seeds are cheap, and 10 give a much tighter interval.

    Args:
        device: `"cpu"`, `"gpu"`, `"tpu"`, or a description as
            `provenance.device_description()` writes it: one starting with
            "CPU" is a CPU, any other an accelerator.

    Returns:
        `MIN_SEEDS_CPU` or `MIN_SEEDS_GPU`.

    Raises:
        ValueError: If `device` is not a non-empty string.

    Example:

    >>> from tlrecipes.lab.comparison import min_seeds
    >>> min_seeds("CPU: AMD EPYC, 2 cores (tensorflow 2.21.0)"), min_seeds("gpu")
    (5, 10)
    """
    if not isinstance(device, str) or not device.strip():
        raise _invalid(
            "`device`",
            "'cpu', 'gpu', 'tpu' or a device description",
            f"device={device!r}",
            "pass provenance()['device'] of the run.",
        )
    return MIN_SEEDS_CPU if device.strip().lower().startswith("cpu") else MIN_SEEDS_GPU


def check_seeds(
    comparisons: Comparison | Iterable[Comparison], device: str, *, strict: bool = False
) -> list[Comparison]:
    """Flags comparisons with fewer seeds than `min_seeds(device)`.

    It warns (`SeedWarning`) by default: quick modes (tests, CI, a first look)
    run 2 or 3 seeds on purpose and their numbers are worth printing, flagged.
    Code that publishes advice passes `strict=True`, which refuses instead.

    Args:
        comparisons: One `Comparison` or several.
        device: The device they ran on (see `min_seeds`).
        strict: Raise instead of warning. Defaults to False.

    Returns:
        The comparisons with too few seeds (empty when all have enough).

    Raises:
        ValueError: If `strict` and a comparison has too few seeds.

    Example:

    >>> import warnings
    >>> from tlrecipes.lab.comparison import check_seeds, compare
    >>> c = compare({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.8, 2: 0.6})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     short = check_seeds(c, "cpu")
    >>> len(short), caught[0].category.__name__
    (1, 'SeedWarning')
    """
    items = [comparisons] if isinstance(comparisons, Comparison) else list(comparisons)
    needed = min_seeds(device)
    short = [c for c in items if c.n < needed]
    if short:
        message = (
            f"{', '.join(f'{c.name} ({c.n})' for c in short)} ran fewer seeds than "
            f"the {needed} required on {device!r}. Fix: rerun with at least "
            f"{needed} seeds ({MIN_SEEDS_CPU} on a CPU, {MIN_SEEDS_GPU} on a GPU)"
        )
        if strict:
            raise ValueError(f"Received too few seeds (strict=True): {message}.")
        warnings.warn(f"{message}.", SeedWarning, stacklevel=2)
    return short


def summary_table(
    comparisons: Iterable[Comparison], *, scale: float = 100.0, digits: int = 1
) -> str:
    """A Markdown table: arm, baseline, difference, interval, seeds, verdict.

    The table of reports and of the notebooks' "What this run showed" cells.
    A note under it states the Bonferroni correction and any dropped seeds, so
    the table reads on its own.

    Args:
        comparisons: The comparisons, one row each, in order.
        scale: Factor on the differences; 100 gives accuracy points.
            Defaults to 100.0.
        digits: Digits after the decimal point. Defaults to 1.

    Returns:
        The Markdown text, without a trailing newline.

    Raises:
        ValueError: If `comparisons` is empty or holds anything but
            `Comparison`s.

    Example:

    >>> from tlrecipes.lab.comparison import compare, summary_table
    >>> c = compare({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.8, 2: 0.6},
    ...             name_a="two_phase", name_b="scratch")
    >>> print(summary_table([c]))
    | arm | baseline | difference (points) | 95% interval | seeds | verdict |
    |---|---|---:|---:|---:|---|
    | two_phase | scratch | +6.7 | -7.7 to +21.0 | 3 | tie |
    """
    rows = list(comparisons)
    if not rows or not all(isinstance(c, Comparison) for c in rows):
        raise _invalid(
            "`comparisons`",
            "a non-empty list of Comparison",
            f"comparisons={rows!r}",
            "pass what `compare` or `compare_to_baseline` returned.",
        )
    unit = {100.0: " (points)", 1.0: ""}.get(scale, f" (x{scale:g})")
    same = len({c.confidence for c in rows}) == 1
    interval = f"{_percent(rows[0].confidence)} interval" if same else "interval"
    families = sorted({(c.comparisons, c.level, c.confidence) for c in rows})
    lines = [
        f"| arm | baseline | difference{unit} | {interval} | seeds | verdict |",
        "|---|---|---:|---:|---:|---|",
    ]
    notes = [
        f"Intervals corrected for {k} comparisons (Bonferroni): each at the "
        f"{_percent(level)} level, so the {k} hold together at {_percent(conf)}."
        for k, level, conf in families
        if k > 1
    ]
    for c in rows:
        cell = f"{_signed(c.low, scale, digits)} to {_signed(c.high, scale, digits)}"
        cell += "" if same else f" ({_percent(c.confidence)})"
        seeds = f"{c.n} ({len(c.dropped_seeds)} dropped)" if c.dropped_seeds else c.n
        lines.append(
            f"| {_cell(c.name_a)} | {_cell(c.name_b)} | "
            f"{_signed(c.mean, scale, digits)} | {cell} | {seeds} | {c.verdict} |"
        )
        if c.dropped_seeds:
            notes.append(
                f"{c.name}: seed(s) {', '.join(map(str, c.dropped_seeds))} ran in "
                "one arm only and were dropped."
            )
    return "\n".join(lines + ([""] + notes if notes else []))


# --------------------------------------------------------------------------
# Helpers


def _invalid(argument: str, expected: str, received: str, fix: str) -> ValueError:
    return ValueError(
        f"Received an invalid value for {argument}, expected {expected}. "
        f"Received: {received}. Fix: {fix}"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _scores(scores: object, argument: str, name: object) -> dict[int, float]:
    """Per-seed scores as `{int seed: float score}`, refusing what cannot pair."""
    where = f"`{argument}` ({name!r})"
    try:
        if isinstance(scores, (str, bytes)):
            raise TypeError
        items = list(scores.items() if isinstance(scores, Mapping) else scores)
        items = [(seed, score) for seed, score in items]
    except (TypeError, ValueError):
        raise _invalid(
            where,
            "per-seed scores, {seed: score} or a sequence of (seed, score) pairs",
            repr(scores),
            "pass e.g. {0: 0.81, 1: 0.84}.",
        ) from None
    out: dict[int, float] = {}
    for raw_seed, raw_score in items:
        ok = _is_int(raw_seed) or str(raw_seed).strip().lstrip("-").isdigit()
        if not ok or int(raw_seed) in out:
            raise _invalid(
                where,
                "each seed once, as an integer",
                f"seed {raw_seed!r}" + (" twice" if ok else ""),
                "key the scores by the integer seed of each run, one score a seed.",
            )
        try:
            score = float(raw_score)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            raise _invalid(
                where,
                "a finite score for every seed",
                f"seed {int(raw_seed)} scored {raw_score!r}",
                f"rerun seed {int(raw_seed)} (a NaN usually means the run diverged "
                "or crashed), or leave that seed out of both arms.",
            )
        out[int(raw_seed)] = score
    return out


def _signed(value: float, scale: float, digits: int) -> str:
    return f"{value * scale:+.{digits}f}"  # keeps the sign: -0.000 is below zero


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")
