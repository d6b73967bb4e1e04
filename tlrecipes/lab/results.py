"""What the runs measured: the benefits of transfer, their spread, and the store.

- **Learning curves** of a transfer model and its from-scratch twin, reduced
  to the three benefits of Torrey & Shavlik: a higher start, a higher slope
  and a higher asymptote (`transfer_benefit`), with mean and spread over
  seeds (`aggregate`).
- Finished runs are recorded in a `ResultStore` (one JSON line per run, keyed
  by a run id that includes a hash of everything that determines the result),
  so an interrupted sweep resumes where it stopped and a finished one reloads
  without retraining; `load_rows` reads saved results back for plotting.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlrecipes.lab.fingerprints import json_default

__all__ = [
    "BENEFIT_MEASURES",
    "ResultStore",
    "aggregate",
    "load_rows",
    "transfer_benefit",
]


#: Keys of `transfer_benefit`'s result that are averaged over seeds.
BENEFIT_MEASURES = (
    "jumpstart",
    "auc_difference",
    "final_difference",
    "transfer_to_threshold",
    "scratch_to_threshold",
    "threshold_speedup",
)


def _curve(values: Any, name: str) -> np.ndarray:
    curve = np.asarray(values, dtype="float64")
    if curve.ndim != 1 or len(curve) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D sequence of accuracies. Received "
            f"shape {curve.shape}."
        )
    if not np.isfinite(curve).all():
        raise ValueError(f"`{name}` contains NaN or Inf. Received: {name}={values!r}.")
    return curve


def _first_reach(curve: np.ndarray, x: np.ndarray, threshold: float) -> float:
    reached = np.flatnonzero(curve >= threshold - 1e-12)
    return float(x[reached[0]]) if len(reached) else math.nan


def transfer_benefit(
    transfer_curve: Sequence[float],
    scratch_curve: Sequence[float],
    *,
    steps: Sequence[float] | None = None,
    threshold: float | None = None,
) -> dict[str, float]:
    """Measures the three benefits of transfer from two learning curves.

    Torrey & Shavlik name three ways transfer can help: a higher start, a
    higher slope and a higher asymptote. Given the accuracy curves of a
    transfer model and of its from-scratch twin, evaluated at the same points,
    this returns:

    - `jumpstart`: transfer minus scratch at the first point. A new head
      starts at chance in both models, so the first point should come after a
      little training (the experiments place it after the first tenth of the
      budget).
    - `auc_difference`: the difference of the areas under the two curves
      (trapezoid rule), divided by the span of `steps`, so it reads in
      accuracy units: the average gap over training. For one-point curves it
      equals the final difference.
    - `final_difference`: transfer minus scratch at the last point.
    - `threshold`, `transfer_to_threshold`, `scratch_to_threshold`: the first
      step (in the units of `steps`) at which each curve reaches `threshold`,
      NaN if it never does; `threshold_speedup` is their ratio (scratch /
      transfer): how many times sooner transfer gets there.

    Args:
        transfer_curve: Accuracies of the transfer model, in training order.
        scratch_curve: Accuracies of the scratch twin at the same points.
        steps: Where the points were taken (epochs or optimisation steps),
            strictly increasing. Defaults to None: 1, 2, ..., n.
        threshold: Accuracy for the time-to-threshold measures. Defaults to
            None: the scratch curve's final accuracy ("how soon does transfer
            reach what scratch ends with?").

    Returns:
        A dict with the keys above (floats).

    Raises:
        ValueError: If the curves are empty, of different lengths, contain
            NaN, or `steps` does not match them or is not increasing.

    Example:

    >>> b = transfer_benefit([0.5, 0.7, 0.8, 0.8], [0.3, 0.5, 0.6, 0.7])
    >>> round(b["jumpstart"], 3), round(b["final_difference"], 3)
    (0.2, 0.1)
    >>> round(b["auc_difference"], 4)
    0.1833
    >>> b["transfer_to_threshold"], b["scratch_to_threshold"], b["threshold_speedup"]
    (2.0, 4.0, 2.0)
    """
    t = _curve(transfer_curve, "transfer_curve")
    s = _curve(scratch_curve, "scratch_curve")
    if len(t) != len(s):
        raise ValueError(
            "The two curves must be evaluated at the same points. Received "
            f"len(transfer_curve)={len(t)}, len(scratch_curve)={len(s)}. Fix: "
            "evaluate both models at the same epochs or steps."
        )
    x = (
        np.arange(1, len(t) + 1, dtype="float64")
        if steps is None
        else np.asarray(steps, dtype="float64")
    )
    if x.shape != t.shape or (len(x) > 1 and not (np.diff(x) > 0).all()):
        raise ValueError(
            "`steps` must be strictly increasing and as long as the curves "
            f"({len(t)}). Received: steps={list(x)}."
        )
    if len(t) == 1:
        auc_t, auc_s = float(t[0]), float(s[0])
    else:
        span = x[-1] - x[0]
        auc_t = float(np.sum((t[1:] + t[:-1]) / 2 * np.diff(x)) / span)
        auc_s = float(np.sum((s[1:] + s[:-1]) / 2 * np.diff(x)) / span)
    level = float(s[-1]) if threshold is None else float(threshold)
    t_reach, s_reach = _first_reach(t, x, level), _first_reach(s, x, level)
    return {
        "jumpstart": float(t[0] - s[0]),
        "auc_difference": auc_t - auc_s,
        "final_difference": float(t[-1] - s[-1]),
        "threshold": level,
        "transfer_to_threshold": t_reach,
        "scratch_to_threshold": s_reach,
        "threshold_speedup": s_reach / t_reach if t_reach > 0 else math.nan,
    }


def aggregate(
    rows: Iterable[dict[str, Any]],
    by: Sequence[str] = (),
    values: str | Sequence[str] = "accuracy",
) -> list[dict[str, Any]]:
    """Mean, standard deviation and count over seeds (or any other repeat).

    One seed can show a transfer gain that vanishes with the next (a textbook
    Fashion-MNIST example did exactly that), so every number the project
    reports comes with its spread. Rows are grouped by the `by` columns (in
    order of first appearance); for each column in `values` the group gets
    `<value>_mean`, `<value>_std` (sample standard deviation, ddof=1; 0.0 for
    a single row) and `<value>_n` (rows with a finite value; NaN such as "never
    reached the threshold" is left out of the mean and counted out of n).

    Args:
        rows: Dicts, e.g. the rows of `size_sweep` or the `benefits` of
            `transfer_vs_scratch`.
        by: Columns to group by, e.g. `("strategy", "n_per_class")`. Defaults
            to `()`: one group of all rows.
        values: Column or columns to summarise. Defaults to `"accuracy"`.

    Returns:
        A list of dicts, one per group: the `by` columns, then the summaries.

    Raises:
        KeyError: If a row lacks a `by` or `values` column (the message lists
            the columns it has).

    Example:

    >>> rows = [{"strategy": "scratch", "seed": s, "accuracy": a}
    ...         for s, a in enumerate([0.25, 0.75])]
    >>> summary = aggregate(rows, by=["strategy"])
    >>> summary[0]["strategy"], summary[0]["accuracy_mean"], summary[0]["accuracy_n"]
    ('scratch', 0.5, 2)
    >>> round(summary[0]["accuracy_std"], 4)
    0.3536
    """
    values = [values] if isinstance(values, str) else list(values)
    by = list(by)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        missing = [c for c in by + values if c not in row]
        if missing:
            raise KeyError(
                f"Row lacks column(s) {missing}. It has: {sorted(row)}. Fix: "
                "pass `by` and `values` names that the rows contain."
            )
        groups.setdefault(tuple(_hashable(row[c]) for c in by), []).append(row)
    out = []
    for key, group in groups.items():
        summary: dict[str, Any] = dict(zip(by, key, strict=True))
        for value in values:
            data = np.array(
                [float(r[value]) if r[value] is not None else math.nan for r in group]
            )
            data = data[np.isfinite(data)]
            n = len(data)
            mean = float(data.mean()) if n else math.nan
            std = float(data.std(ddof=1)) if n > 1 else (0.0 if n else math.nan)
            summary[f"{value}_mean"] = mean
            summary[f"{value}_std"] = std
            summary[f"{value}_n"] = n
        out.append(summary)
    return out


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------
# Results


def _jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=json_default))


class ResultStore:
    """Finished runs, one JSON line per run, keyed by run id.

    Experiments look each run up before training it and add it when done, so
    an interrupted sweep resumes where it stopped and a finished one reloads
    without training anything. A run id names the experiment, the strategy or
    variant, the size, the seed and a hash of everything else that decides the
    result (training config, source model weights, target data), so a changed
    config trains again instead of returning stale numbers.

    Args:
        path: A JSON-lines file, created on the first `add` and read back when
            it exists. Defaults to None: kept in memory only.

    Example:

    >>> store = ResultStore()
    >>> store.add({"run_id": "demo|scratch|seed=0", "accuracy": 0.5})
    >>> "demo|scratch|seed=0" in store, len(store)
    (True, 1)
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._rows: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            for number, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    warnings.warn(
                        f"{self.path}:{number}: unreadable line skipped (an "
                        "interrupted write?); that run will be trained again.",
                        stacklevel=2,
                    )
                    continue
                self._rows[row["run_id"]] = row

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        path = str(self.path) if self.path else None
        return f"ResultStore(path={path!r}, runs={len(self)})"

    def get(self, run_id: str) -> dict[str, Any] | None:
        """Returns the stored row of `run_id` (a copy), or None."""
        row = self._rows.get(run_id)
        return dict(row) if row is not None else None

    def add(self, row: dict[str, Any]) -> None:
        """Stores a row (it must have a `run_id`) and appends it to the file."""
        if "run_id" not in row:
            raise ValueError(
                f"A stored row needs a 'run_id'. Received keys: {sorted(row)}."
            )
        row = _jsonable_row(row)
        self._rows[row["run_id"]] = row
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        """Rows (copies) whose columns equal the given values, in insertion order.

        Example: `store.rows(experiment="size_sweep", strategy="scratch")`.
        """
        return [
            dict(r)
            for r in self._rows.values()
            if all(r.get(k) == v for k, v in where.items())
        ]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Writes all rows to a CSV file (lists as JSON text); returns its path."""
        return _write_csv(list(self._rows.values()), Path(path))

    def to_json(self, path: str | os.PathLike) -> Path:
        """Writes all rows to a JSON file (a list of objects); returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(list(self._rows.values()), indent=1))
        return path


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: json.dumps(v)
                    if isinstance(v, (list, dict))
                    else ("" if v is None else v)
                    for k, v in row.items()
                }
            )
    return path


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads rows back from a `.csv`, `.json` or JSON-lines file.

    Lets a notebook re-plot saved results without training: the CSV written
    by `ResultStore.to_csv` comes back with its numbers as numbers and its
    curves as lists.

    Args:
        path: A file written by `ResultStore.to_csv`, `ResultStore.to_json` or
            a `ResultStore` itself.

    Returns:
        A list of dicts.

    Raises:
        FileNotFoundError: If the file does not exist.

    Example:

    >>> import tempfile, os
    >>> store = ResultStore()
    >>> store.add({"run_id": "a", "accuracy": 0.5, "curve_accuracy": [0.4, 0.5]})
    >>> csv_path = store.to_csv(os.path.join(tempfile.mkdtemp(), "runs.csv"))
    >>> load_rows(csv_path)
    [{'run_id': 'a', 'accuracy': 0.5, 'curve_accuracy': [0.4, 0.5]}]
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No results file at {path}.")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return [
                {k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)
            ]
    text = path.read_text()
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]
