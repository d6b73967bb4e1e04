"""README's 2x2 table is the committed study report's, number for number."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = {"feature_extractor": "feature extractor", "earlier_block": "earlier block",
         "fine_tune_all": "fine-tune all", "two_phase": "two-phase"}  # fmt: skip


def _readme_rows() -> dict[tuple[int, str], str]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        case = r"\| (small|large) \((\d+)/class\), (similar|different) \|"
        match = re.match(case, line)
        if match:
            rows[(int(match.group(2)), match.group(3))] = line
    return rows


def test_readme_2x2_matches_the_committed_study_report():
    summary = json.loads((ROOT / "reports/study/summary.json").read_text())
    rows = _readme_rows()
    assert len(summary["cases"]) == 4 and len(rows) == 4
    for case in summary["cases"]:
        row = rows[(case["n_per_class"], case["relation"])]
        best = case["strategies"][case["best"]]
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        picked, gain = cells[2], cells[3]
        mean, std = best["accuracy_mean"] * 100, best["accuracy_std"] * 100
        accuracy = f"{mean:.1f} ± {std:.1f}"
        assert picked == f"{WORDS[case['best']]} {accuracy}"
        c = best["vs_scratch"]
        assert gain == (
            f"{c['mean'] * 100:+.1f} ({c['low'] * 100:+.1f} to "
            f"{c['high'] * 100:+.1f}), {c['verdict']}"
        )
    assert f"commit {summary['plan']['provenance']['describe']}" in (
        ROOT / "reports/study/REPORT.md"
    ).read_text()
