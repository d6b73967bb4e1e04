"""The notebooks' closing cell, "What this run showed": one line per comparison.

Every notebook ends, before its exercises, with the key comparisons of the
run it holds, computed from results already in memory: `scores_by_seed` turns
result rows into the `{arm: {seed: score}}` form `compare` takes,
`compare_or_note` and `compare_to_baseline_or_note` compare (paired by seed,
95% interval, verdict; see `tlrecipes.lab.comparison`), and
`what_this_run_showed` prints one line each. A quick-mode run has a single
seed: there is a difference but no interval, and the line says so instead of
raising.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from tlrecipes.lab.comparison import (
    MIN_SEEDS_CPU,
    MIN_SEEDS_GPU,
    Comparison,
    Scores,
    compare,
    compare_to_baseline,
)

__all__ = [
    "compare_or_note",
    "compare_to_baseline_or_note",
    "scores_by_seed",
    "what_this_run_showed",
]


#: A line of `what_this_run_showed`: a comparison, or a note where none could be made.
Line = Comparison | str


def scores_by_seed(
    rows: Iterable[Mapping[str, Any]],
    *,
    arm: str = "strategy",
    score: str = "accuracy",
    **where: Any,
) -> dict[str, dict[int, float]]:
    """Per-seed scores by arm, from result rows: what `compare` and co. take.

    Args:
        rows: Result rows (dicts) holding `"seed"`, the `arm` key and `score`,
            as `size_sweep` returns them.
        arm: Key naming a row's arm. Defaults to `"strategy"`.
        score: Key of the score. Defaults to `"accuracy"`.
        **where: Keep only rows whose keys equal these values (e.g.
            `n_per_class=10`).

    Returns:
        `{arm: {seed: score}}`, arms in the order rows first name them.

    Raises:
        ValueError: If a kept row lacks `"seed"`, `arm` or `score`, or an arm
            holds a seed twice.

    Example:

    >>> from tlrecipes.lab.run_summary import scores_by_seed
    >>> rows = [{"strategy": "scratch", "seed": 0, "accuracy": 0.7, "n": 5},
    ...         {"strategy": "two_phase", "seed": 0, "accuracy": 0.8, "n": 5},
    ...         {"strategy": "two_phase", "seed": 0, "accuracy": 0.9, "n": 50}]
    >>> scores_by_seed(rows, n=5)
    {'scratch': {0: 0.7}, 'two_phase': {0: 0.8}}
    """
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        if any(row.get(key) != value for key, value in where.items()):
            continue
        missing = [k for k in ("seed", arm, score) if k not in row]
        if missing:
            raise _invalid(
                "`rows`",
                f"rows holding 'seed', {arm!r} and {score!r}",
                f"a row without {missing}: {dict(row)!r}",
                "pass size_sweep's rows, or name the keys with arm= and score=.",
            )
        scores = out.setdefault(str(row[arm]), {})
        if int(row["seed"]) in scores:
            raise _invalid(
                "`rows`",
                "one row per arm and seed",
                f"arm {row[arm]!r} holds seed {row['seed']} twice",
                "filter the rows with keyword arguments, e.g. n_per_class=10.",
            )
        scores[int(row["seed"])] = float(row[score])
    return out


def compare_or_note(
    a: Scores,
    b: Scores,
    *,
    name_a: str = "a",
    name_b: str = "b",
    confidence: float = 0.95,
    comparisons: int = 1,
) -> Line:
    """`compare(a, b, ...)`, or a one-line note when fewer than 2 seeds pair.

    A quick-mode run of a notebook trains one seed: there is a difference
    but no interval and no verdict. This returns that difference as a note
    instead of raising, so the same cell runs in quick and full mode.

    Args:
        a, b, name_a, name_b, confidence, comparisons: As `compare`.

    Returns:
        A `Comparison` when `a` and `b` share at least 2 seeds, else a `str`.

    Raises:
        ValueError: As `compare`, except for too few shared seeds.

    Example:

    >>> from tlrecipes.lab.run_summary import compare_or_note
    >>> print(compare_or_note({0: 0.8}, {0: 0.7}, name_a="ft", name_b="scratch"))
    ft - scratch: +0.100 on seed 0 only (quick mode: 1 seed, no interval, no verdict)
    """
    scores_a, scores_b = _as_scores(a, name_a), _as_scores(b, name_b)
    seeds = sorted(scores_a.keys() & scores_b.keys())
    if len(seeds) >= 2:
        return compare(  # with all of compare's checks on the scores
            a,
            b,
            name_a=name_a,
            name_b=name_b,
            confidence=confidence,
            comparisons=comparisons,
        )
    if not seeds:
        return f"{name_a} - {name_b}: no seed in common, nothing to compare"
    seed = seeds[0]
    difference = f"{scores_a[seed] - scores_b[seed]:+.3f}"
    return (
        f"{name_a} - {name_b}: {difference} on seed {seed} only "
        "(quick mode: 1 seed, no interval, no verdict)"
    )


def compare_to_baseline_or_note(
    arms: Mapping[str, Scores],
    baseline: str,
    *,
    confidence: float = 0.95,
    comparisons: int | None = None,
) -> list[Line]:
    """`compare_to_baseline`, with a note (`compare_or_note`) below 2 seeds.

    Args:
        arms, baseline, confidence, comparisons: As `compare_to_baseline`.

    Returns:
        One line per arm other than the baseline, in `arms`' order, each
        interval Bonferroni-corrected for the whole family.

    Raises:
        ValueError: As `compare_to_baseline`, except for too few seeds.

    Example:

    >>> from tlrecipes.lab.run_summary import compare_to_baseline_or_note
    >>> arms = {"scratch": {0: 0.7}, "head_only": {0: 0.8}, "two_phase": {0: 0.75}}
    >>> [str(line)[:26] for line in compare_to_baseline_or_note(arms, "scratch")]
    ['head_only - scratch: +0.10', 'two_phase - scratch: +0.05']
    """
    mapping = isinstance(arms, Mapping)
    others = [name for name in arms if name != baseline] if mapping else []
    too_few = _is_int(comparisons) and comparisons < len(others)
    if not others or baseline not in arms or too_few:
        compare_to_baseline(arms, baseline, comparisons=comparisons)  # raises, clearly
    family = len(others) if comparisons is None else comparisons
    return [
        compare_or_note(
            arms[name],
            arms[baseline],
            name_a=str(name),
            name_b=str(baseline),
            confidence=confidence,
            comparisons=family,
        )
        for name in others
    ]


def what_this_run_showed(lines: Iterable[Line | Iterable[Line]]) -> str:
    """The text of a notebook's "What this run showed" cell: one line each.

    A `Comparison` prints as its difference, interval, seeds and verdict
    ("ahead", "behind" or "tie"); a `str` (a note, a pick) as it is; a list
    of them (`compare_to_baseline_or_note`) line by line. A closing line says
    when a comparison ran fewer seeds than the protocol asks for on a CPU
    (`MIN_SEEDS_CPU`): its verdict is then provisional.

    Args:
        lines: Comparisons, notes, or lists of them, in the order to print.

    Returns:
        The text, one line per comparison or note, without a trailing newline.

    Raises:
        ValueError: If there are no lines, or one is neither a `Comparison`
            nor a `str`.

    Example:

    >>> from tlrecipes.lab.comparison import compare
    >>> from tlrecipes.lab.run_summary import what_this_run_showed
    >>> c = compare({0: 0.8, 1: 0.9, 2: 0.85}, {0: 0.7, 1: 0.8, 2: 0.8},
    ...             name_a="two_phase", name_b="scratch")
    >>> print(what_this_run_showed([c, "best strategy (picked on test): two_phase"]))
    two_phase - scratch: +0.083 (95% CI +0.012 to +0.155; 3 seeds) -> ahead
    best strategy (picked on test): two_phase
    (3 seeds: below the 5 asked for on a CPU, 10 on a GPU; verdicts provisional.)
    """
    items: list[Line] = []
    for line in lines:
        nested = not isinstance(line, (Comparison, str)) and isinstance(line, Iterable)
        items.extend(line if nested else [line])
    bad = [line for line in items if not isinstance(line, (Comparison, str))]
    if not items or bad:
        raise _invalid(
            "`lines`",
            "a non-empty list of Comparison or str (or lists of them)",
            f"lines={items!r}" if not bad else f"{bad[0]!r}",
            "pass what compare_or_note or compare_to_baseline_or_note returned.",
        )
    text = [str(line) for line in items]
    comparisons = [c for c in items if isinstance(c, Comparison)]
    short = sorted({c.n for c in comparisons if c.n < MIN_SEEDS_CPU})
    if short:
        text.append(
            f"({'/'.join(map(str, short))} seeds: below the {MIN_SEEDS_CPU} asked for "
            f"on a CPU, {MIN_SEEDS_GPU} on a GPU; verdicts provisional.)"
        )
    return "\n".join(text)


def _invalid(argument: str, expected: str, received: str, fix: str) -> ValueError:
    return ValueError(
        f"Received an invalid value for {argument}, expected {expected}. "
        f"Received: {received}. Fix: {fix}"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_scores(scores: object, name: object) -> dict[int, float]:
    """`{seed: score}` to count shared seeds; `compare` checks the rest."""
    try:
        items = scores.items() if isinstance(scores, Mapping) else scores
        out = {int(seed): float(score) for seed, score in items}  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise _invalid(
            f"scores of {name!r}",
            "per-seed scores, {seed: score} or a sequence of (seed, score) pairs",
            repr(scores),
            "pass e.g. {0: 0.81, 1: 0.84}.",
        ) from None
    for seed, score in out.items():
        if not math.isfinite(score):
            raise _invalid(
                f"scores of {name!r}",
                "a finite score for every seed",
                f"seed {seed} scored {score!r}",
                f"rerun seed {seed}, or leave it out of both arms.",
            )
    return out
