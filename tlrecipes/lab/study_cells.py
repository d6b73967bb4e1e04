"""The four case notebooks' cell of the measured 2x2 table.

Each case notebook (01-04) ends with what the committed study measured for its
case, rendered exactly as `reports/study/REPORT.md`'s 2x2 table renders it
(`tlrecipes.lab.study_summary`), from the evidence shipped with the package
(`tlrecipes.lab.evidence`), so it prints the same numbers on any installed copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tlrecipes.lab.evidence import compact_evidence, load_evidence, measured_row
from tlrecipes.lab.study_summary import advised_cell, best_cell, case_name, verdict

__all__ = ["study_cell"]


def study_cell(
    size: str, similarity: str, evidence: Mapping[str, Any] | None = None
) -> str:
    """One case of the measured 2x2 table, as the study report prints it.

    The four case notebooks end with their cell of the table, so a reader
    sees what the committed study measured for the case beside what the
    notebook's own run shows. The cells are those of `REPORT.md`'s 2x2 table
    and of the README's (the tests check all three agree).

    Args:
        size: "small" or "large".
        similarity: "similar" or "different".
        evidence: From `load_evidence`. Defaults to None: the committed study
            shipped with the package.

    Returns:
        The case's lines: where it was measured, the tutorial's advice, the
        strategy picked on validation with its gain over scratch, the advised
        strategy measured, and whether the two agree.

    Raises:
        ValueError: If `size` or `similarity` is not one of the table's, or
            the evidence has no such case or predates the advice fields.

    Example:

    >>> print(study_cell("small", "similar").splitlines()[0])
    The measured 2x2 table, case small (10/class), similar (fashion_a_to_b):
    """
    for name, value, allowed in (
        ("size", size, ("small", "large")),
        ("similarity", similarity, ("similar", "different")),
    ):
        if value not in allowed:
            raise ValueError(
                f"Received an invalid value for `{name}`, expected one of "
                f"{list(allowed)}. Received: {value!r}. Fix: pass e.g. "
                f"study_cell('small', 'similar')."
            )
    evidence = load_evidence() if evidence is None else compact_evidence(evidence)
    row = measured_row(evidence, size, similarity)
    if row is None or row.get("advice") is None:
        raise ValueError(
            f"Received an invalid value for `evidence`, expected a study with a "
            f"{size}/{similarity} case and the tutorial's advice. Received: "
            f"{'no such case' if row is None else 'a case without the advice'}. "
            "Fix: re-compact it from the study's summary.json (`python -m "
            "tlrecipes.lab.evidence <out>/summary.json`)."
        )
    case = {**row, "comparisons": row["advised_vs_best"]}
    best, gain = best_cell(case)
    prov = evidence.get("provenance", {})
    commit = (prov.get("commit") or "unknown commit")[:7]
    dirty = ", uncommitted changes" if prov.get("dirty") else ""
    return "\n".join(
        [
            f"The measured 2x2 table, case {case_name(case)}:",
            f"  measured by tlrecipes study at {commit}{dirty}, {prov.get('backend')}"
            f" on {prov.get('device')}, {len(evidence.get('seeds', []))} seeds, "
            f"{str(prov.get('date'))[:10]} (reports/study/REPORT.md)",
            f"  advice from the source tutorial: {case['advice']}",
            f"  measured best (picked on {case['selected_on']}): {best}",
            f"  its gain over scratch (points): {gain}",
            f"  the advised strategy, measured: {advised_cell(case)}",
            f"  verdict: {verdict(case)}",
        ]
    )
