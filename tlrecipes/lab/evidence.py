"""The measurements behind `tlrecipes advise`: the study's 2x2 table, compacted.

`tlrecipes study` writes `summary.json`: per case (task x size) every
strategy's test accuracy over seeds, its gain over the from-scratch twin as a
paired interval (`lab.compare_to_baseline`), the best strategy picked on the
validation split, and the provenance of the run. `compact_evidence` keeps what
advice needs from it; the package ships the compacted committed study
(`tlrecipes/lab/data/study_evidence.json`, checked against
`reports/study/summary.json` by the tests), so `advise` can answer from
measurements on any installed copy. Pass your own study's `summary.json` to
answer from your own run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "EVIDENCE_FILE",
    "FORMAT",
    "compact_evidence",
    "load_evidence",
    "measured_row",
    "describe_measurement",
    "write_evidence",
]

#: The compacted evidence of the committed study, shipped with the package.
EVIDENCE_FILE = Path(__file__).resolve().parent / "data" / "study_evidence.json"
#: Marks a compacted evidence file (a study's `summary.json` has no "format").
FORMAT = "tlrecipes-evidence/1"

_COMPARISON_KEYS = (
    "name", "mean", "low", "high", "verdict", "n", "comparisons", "confidence"
)


#: Kept where a study's comparison has them (its advised-vs-best comparisons).
_OPTIONAL_KEYS = ("advised", "points")


def _comparison(entry: Mapping[str, Any]) -> dict[str, Any]:
    kept = {key: entry[key] for key in _COMPARISON_KEYS}
    kept.update({key: entry[key] for key in _OPTIONAL_KEYS if key in entry})
    return kept


def compact_evidence(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Keeps what advice needs from a study's `summary.json`.

    Args:
        summary: The parsed `summary.json` of `tlrecipes study`.

    Returns:
        A dict with `format`, `provenance` (commit, dirty flag, backend,
        device, date), `seeds`, and `cases`: per case its task, relation,
        size, images per class, the tutorial's advice and the strategies it
        names, the best strategy picked on validation and whether it agrees
        with the advice, and per strategy the mean and standard deviation of
        the test accuracy and the comparison with scratch.

    Raises:
        ValueError: If `summary` is not a study summary.

    Example:

    >>> import json
    >>> summary = json.loads(EVIDENCE_FILE.read_text())  # already compact
    >>> compact_evidence(summary) == summary
    True
    """
    if isinstance(summary, Mapping) and summary.get("format") == FORMAT:
        return dict(summary)
    if not isinstance(summary, Mapping) or "cases" not in summary:
        raise ValueError(
            "Received an invalid value for `summary`, expected the parsed "
            "summary.json of `tlrecipes study` (a dict with 'plan' and 'cases'). "
            f"Received: {type(summary).__name__} with keys "
            f"{sorted(summary)[:6] if isinstance(summary, Mapping) else '-'}. "
            "Fix: pass json.load(open('<study out>/summary.json'))."
        )
    plan = summary.get("plan", {})
    prov = plan.get("provenance", {})
    cases = []
    for case in summary["cases"]:
        strategies = {}
        for name, row in case["strategies"].items():
            vs = row.get("vs_scratch")
            strategies[name] = {
                "accuracy_mean": row["accuracy_mean"],
                "accuracy_std": row.get("accuracy_std"),
                "vs_scratch": _comparison(vs) if vs else None,
            }
        cases.append(
            {
                "task": case["task"],
                "relation": case["relation"],
                "size": case["size"],
                "n_per_class": case["n_per_class"],
                "advice": case.get("advice"),
                "advised": list(case.get("advised", [])),
                "best": case["best"],
                "best_transfer": case.get("best_transfer"),
                "agrees": case.get("agrees"),
                "selected_on": case.get("selected_on", "validation"),
                "advised_vs_best": [
                    _comparison(c) for c in case.get("comparisons", [])
                ],
                "strategies": strategies,
            }
        )
    return {
        "format": FORMAT,
        "provenance": {
            "commit": prov.get("commit"),
            "dirty": prov.get("dirty"),
            "backend": prov.get("backend"),
            "device": prov.get("device"),
            "date": prov.get("date"),
        },
        "seeds": list(plan.get("seeds", [])),
        "cases": cases,
    }


def load_evidence(path: str | Path | None = None) -> dict[str, Any]:
    """Reads evidence: the shipped study's, or a study's `summary.json`.

    Args:
        path: A study's `summary.json` or a compacted evidence file. Defaults
            to None: the committed study shipped with the package.

    Returns:
        The compacted evidence (`compact_evidence`).

    Raises:
        ValueError: If the file is missing or is not a study summary.

    Example:

    >>> evidence = load_evidence()
    >>> sorted({case["size"] for case in evidence["cases"]})
    ['large', 'small']
    """
    file = Path(path) if path is not None else EVIDENCE_FILE
    if not file.is_file():
        raise ValueError(
            "Received an invalid value for `evidence`, expected the summary.json "
            f"of a `tlrecipes study` run. Received: {str(file)!r}, which is not a "
            "file. Fix: run `tlrecipes study --out DIR` and pass DIR/summary.json."
        )
    try:
        data = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"Received an invalid value for `evidence`: {str(file)!r} is not JSON "
            f"({err}). Fix: pass the summary.json written by `tlrecipes study`."
        ) from err
    return compact_evidence(data)


def measured_row(
    evidence: Mapping[str, Any], size: str, similarity: str
) -> dict[str, Any] | None:
    """The evidence's case for a size ("small"/"large") and similarity.

    Args:
        evidence: From `load_evidence`.
        size: "small" or "large".
        similarity: "similar" or "different".

    Returns:
        The case dict, or None when the evidence has no such row.

    Example:

    >>> row = measured_row(load_evidence(), "small", "similar")
    >>> row["task"], row["n_per_class"]
    ('fashion_a_to_b', 10)
    """
    for case in evidence["cases"]:
        if case["size"] == size and case["relation"] == similarity:
            return case
    return None


def _points(comparison: Mapping[str, Any]) -> str:
    k = comparison["comparisons"]
    level = f"{comparison['confidence']:.0%} CI" + (
        f", Bonferroni x{k}" if k > 1 else ""
    )
    return (
        f"{100 * comparison['mean']:+.1f} points ({level}: "
        f"{100 * comparison['low']:+.1f} to {100 * comparison['high']:+.1f}) "
        f"-> {comparison['verdict']}"
    )


def describe_measurement(
    evidence: Mapping[str, Any],
    size: str,
    similarity: str,
    strategy: str,
    images_per_class: int | None = None,
) -> list[str]:
    """Lines saying what the evidence measured for this case and strategy.

    Args:
        evidence: From `load_evidence`.
        size: "small" or "large".
        similarity: "similar" or "different".
        strategy: The recommended strategy (a study strategy name).
        images_per_class: The user's images per class, to say when the
            measured row's size differs. Defaults to None.

    Returns:
        The lines; one line saying there is no measurement when the evidence
        has no row for the case.

    Example:

    >>> lines = describe_measurement(load_evidence(), "small", "similar",
    ...                              "feature_extractor")
    >>> lines[0].startswith("Measured (tlrecipes study")
    True
    """
    row = measured_row(evidence, size, similarity)
    if row is None:
        return [f"Measured: no {size}/{similarity} row in this evidence."]
    prov = evidence.get("provenance", {})
    commit = (prov.get("commit") or "unknown commit")[:7]
    dirty = ", uncommitted changes" if prov.get("dirty") else ""
    n_seeds = len(evidence.get("seeds", []))
    lines = [
        f"Measured (tlrecipes study at {commit}{dirty}, {prov.get('backend')} on "
        f"{prov.get('device')}, {n_seeds} seeds, {str(prov.get('date'))[:10]}):",
        f"  Row: {row['task']}, {row['n_per_class']} images per class "
        f"({size} target data, {similarity} problem); test accuracy.",
    ]
    if images_per_class is not None and images_per_class != row["n_per_class"]:
        lines.append(
            f"  Your {images_per_class} images per class are not a measured size: "
            "this is the nearest row of the same case."
        )
    measured = row["strategies"].get(strategy)
    vs = measured and measured.get("vs_scratch")
    if vs is None:
        lines.append(f"  {strategy} was not measured on this row.")
    else:
        lines.append(
            f"  {strategy}: {100 * measured['accuracy_mean']:.1f}%; vs the "
            f"from-scratch twin {_points(vs)}."
        )
        if vs["verdict"] == "tie":
            lines.append(
                "  The evidence is a tie: on this row the recipe was not "
                "distinguishable from training from scratch."
            )
        elif vs["verdict"] == "behind":
            lines.append(
                "  The measurement disagrees with the table: on this row the "
                "recipe was behind training from scratch."
            )
    best = row["best"]
    if best == strategy:
        lines.append(f"  Best on {row['selected_on']}: {best} (this recipe).")
    else:
        lines.append(f"  Best on {row['selected_on']}: {best}.")
        for comparison in row["advised_vs_best"]:
            if comparison["name"].endswith(f" - {strategy}"):
                reading = {
                    "ahead": "the measured best beat this recipe: consider it",
                    "behind": "this recipe beat the one picked on validation",
                    "tie": "a tie: this recipe is as good within the interval",
                }[comparison["verdict"]]
                lines.append(
                    f"  {comparison['name']}: {_points(comparison)} ({reading})."
                )
    return lines


def write_evidence(summary: str | Path, out: str | Path = EVIDENCE_FILE) -> Path:
    """Compacts a study's `summary.json` into the evidence file `advise` ships.

    Run after re-running the committed study:
    `python -m tlrecipes.lab.evidence reports/study/summary.json`.

    Args:
        summary: Path of the study's `summary.json`.
        out: Where to write. Defaults to the shipped `EVIDENCE_FILE`.

    Returns:
        The path written.

    Example:

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "evidence.json"
    >>> write_evidence(EVIDENCE_FILE, out).name
    'evidence.json'
    """
    data = load_evidence(summary)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":  # pragma: no cover - a maintainer's command
    import sys

    print(f"Wrote {write_evidence(sys.argv[1])}")
