"""What every solution script shares: quick mode, sources, targets, comparisons.

A solution script defines `exercise_1(quick)` ... `exercise_K(quick)` and ends
with `run_main(globals(), "NN")`; `run_main` parses `--quick` and
`--exercise K`, prints one header line per exercise (`=== NN exercise K ===`,
which `tests/test_solutions.py` looks for) and runs it.

Quick mode (`--quick` or `TLRECIPES_QUICK=1`) shrinks every run to one seed,
a few optimisation steps and a small test set, so that the whole folder runs
in CI; its numbers are rough and only show that the code works.

Example:

>>> budget(quick=True).seeds
[0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlrecipes import lab

#: One in-memory store per script: a run asked for twice (same source, target,
#: `TrainConfig`, strategy, size and seed) is trained once and reused.
STORE = lab.ResultStore()


def is_quick(quick: bool | None = None) -> bool:
    """`quick` if given, else whether `TLRECIPES_QUICK=1` is set."""
    if quick is not None:
        return bool(quick)
    return os.environ.get("TLRECIPES_QUICK", "0") == "1"


def is_offline() -> bool:
    """Whether `TLRECIPES_OFFLINE=1` forbids downloads (CI)."""
    return os.environ.get("TLRECIPES_OFFLINE", "0") == "1"


@dataclass(frozen=True)
class Budget:
    """Sizes of every run, full or quick.

    Attributes:
        seeds: Seeds of every arm (intervals need at least 2; quick mode has 1).
        min_steps: `TrainConfig.min_steps` of each run.
        epochs: `TrainConfig.epochs` of each run.
        curve_points: Points of each learning curve.
        test_per_class: Test images per class (None: the whole test split).
        quick: Whether this is the quick budget.
    """

    seeds: list[int]
    min_steps: int
    epochs: int
    curve_points: int
    test_per_class: int | None
    quick: bool

    def config(self, **overrides: Any) -> Any:
        """A `lab.TrainConfig` with this budget, `overrides` applied."""
        fields = {
            "epochs": self.epochs,
            "min_steps": self.min_steps,
            "curve_points": self.curve_points,
        }
        fields.update(overrides)
        return lab.TrainConfig(**fields)


def budget(quick: bool | None = None) -> Budget:
    """The full budget (the notebooks' settings) or the quick one."""
    if is_quick(quick):
        return Budget([0], 6, 1, 2, 10, True)
    return Budget([0, 1, 2, 3, 4], 300, 10, 10, None, False)


#: The shipped or cached source model of a task, trained once if none (a quick
#: run may train a one-epoch source): the notebooks' `lab.get_source`.
get_source = lab.get_source


def target_arrays(task_name: str, test_per_class: int | None) -> tuple:
    """`(x_train, y_train, x_test, y_test)` of a task's target, raw pixels.

    The test split is subsampled (balanced, seed 0, the same for every arm)
    when `test_per_class` is given.
    """
    data = lab.get_task(task_name).target_data()
    x_test, y_test = data.x_test, data.y_test
    if test_per_class is not None:
        x_test, y_test = lab.sample_per_class(x_test, y_test, test_per_class, seed=0)
    return data.x_train, data.y_train, x_test, y_test


def scores(rows: Sequence[Mapping], key: str = "accuracy", **where: Any) -> dict:
    """`{seed: row[key]}` of the rows matching every `where` column."""
    return {
        int(r["seed"]): float(r[key])
        for r in rows
        if all(r.get(k) == v for k, v in where.items())
    }


def report(a: Mapping[int, float], b: Mapping[int, float], name_a: str, name_b: str,
           comparisons: int = 1) -> Any:
    """Prints `lab.compare(a, b)` (paired by seed, 95% interval) and returns it.

    With fewer than 2 shared seeds no interval exists: the per-seed
    differences are printed instead and None is returned.
    """
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        diffs = ", ".join(f"seed {s}: {a[s] - b[s]:+.3f}" for s in shared)
        print(f"  {name_a} - {name_b}: {diffs} (under 2 seeds: no interval)")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lab.SeedWarning)
        result = lab.compare(a, b, name_a=name_a, name_b=name_b,
                             comparisons=comparisons)
    print(f"  {result}")
    return result


def mean_std(values: Mapping[int, float] | Sequence[float]) -> str:
    """`mean ± std` of the values (std 0 for one value)."""
    v = np.asarray(list(values.values()) if isinstance(values, Mapping) else values,
                   dtype=float)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return f"{v.mean():.3f} ± {std:.3f}"


def note(text: str) -> None:
    """Prints how to read the numbers above (never a claimed outcome)."""
    print(f"  how to read this: {text}")


def run_main(namespace: Mapping[str, Any], notebook: str) -> None:
    """Parses the command line and runs the chosen exercises of `namespace`.

    Args:
        namespace: The script's `globals()`, holding `exercise_<K>` functions.
        notebook: The notebook's number, e.g. `"03"`, for the header lines.
    """
    exercises: dict[int, Callable[[bool], None]] = {
        int(name.split("_")[1]): fn
        for name, fn in namespace.items()
        if name.startswith("exercise_") and callable(fn)
    }
    parser = argparse.ArgumentParser(
        description=f"Solutions to notebook {notebook}'s exercises."
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny runs (also TLRECIPES_QUICK=1)")
    parser.add_argument("--exercise", type=int, action="append",
                        choices=sorted(exercises), help="run only this one")
    args = parser.parse_args()
    quick = args.quick or is_quick()
    if quick:
        os.environ["TLRECIPES_QUICK"] = "1"
    start = time.perf_counter()
    for k in args.exercise or sorted(exercises):
        print(f"=== {notebook} exercise {k} ===", flush=True)
        t = time.perf_counter()
        exercises[k](quick)
        print(f"  ({time.perf_counter() - t:.1f} s)", flush=True)
    mode = "quick" if quick else "full"
    print(f"notebook {notebook} solutions: {time.perf_counter() - start:.1f} s, "
          f"mode {mode}", file=sys.stderr)
