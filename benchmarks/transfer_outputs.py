"""The transfer report's files: CSV tables, results.json, REPORT.md, invocations.

`write_outputs` analyses the stored rows (`transfer_analysis`), checks the
rules (`transfer_rules`), draws the figures and writes every file; the JSON
carries `lab.provenance` and every `Comparison.to_dict()`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from transfer_analysis import analyse_sweep, analyse_yosinski
from transfer_figures import (
    figure_benefits,
    figure_size_sweep,
    figure_transfer_vs_scratch,
    figure_transferability,
)
from transfer_rules import dissimilarity_rule
from transfer_text import q1_section, q2_section, q3_section, render_report


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: json.dumps(v) if isinstance(v, (list, dict)) else v
                    for k, v in row.items()
                }
            )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            (
                "|".join(str(x) for x in k) if isinstance(k, tuple) else str(k)
            ): _jsonable(v)
            for k, v in obj.items()
            if k != "index"
        }
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_outputs(plan, env, results, runtime, out: Path) -> None:
    """Analyses the runs of `results` and writes every file of the report."""
    rows = [row for result in results for row in result["rows"]]
    sweeps, yosinskis, q1, q2, q3, rules = {}, {}, {}, {}, {}, []
    sweep_table, benefit_rows, yos_rows = [], [], []
    for task in plan["tasks"]:
        name = task["name"]
        sweep_rows = [r for r in rows if r["task"] == name and "strategy" in r]
        yos_rows_task = [r for r in rows if r["task"] == name and "variant" in r]
        sweep = analyse_sweep(sweep_rows, task, plan)
        yos = analyse_yosinski(yos_rows_task, plan["blocks"])
        sweeps[name], yosinskis[name] = sweep, yos
        q1[name] = q1_section(task, sweep, plan)
        q2[name] = q2_section(task, yos, plan)
        q3[name] = q3_section(task, sweep, plan)
        rules += q2[name][1] + q3[name][1]
        figure_transfer_vs_scratch(
            task, sweep, plan, out / f"transfer_vs_scratch_{name}.png"
        )
        figure_benefits(task, sweep, plan, out / f"benefits_{name}.png")
        figure_size_sweep(task, sweep_rows, sweep, out / f"size_sweep_{name}.png")
        figure_transferability(task, yos_rows_task, out / f"transferability_{name}.png")
        for a in sweep["accuracy"].values():
            sweep_table.append({"task": name, **a})
        for b in sweep["benefits"].values():
            benefit_rows.append(
                {"task": name, **{k: v for k, v in b.items() if k != "per_seed"}}
            )
        yos_rows.append({"task": name, "variant": "baseB", "n": None, **yos["base"]})
        for c in yos["cells"].values():
            yos_rows.append({"task": name, **c})
    rules += dissimilarity_rule(yosinskis)
    ordered = sorted(rows, key=lambda r: (r["task"], r["experiment"], r["run_id"]))
    _write_csv(out / "runs.csv", ordered)
    _write_csv(out / "summary_size_sweep.csv", sweep_table)
    _write_csv(out / "benefits.csv", benefit_rows)
    _write_csv(out / "transferability.csv", yos_rows)
    results_json = {
        "provenance": env["provenance"],
        "plan": plan,
        "environment": {k: v for k, v in env.items() if k != "provenance"},
        "runtime": runtime,
        "size_sweep": {
            name: {
                "accuracy": list(s["accuracy"].values()),
                "benefits": [
                    {k: v for k, v in b.items() if k != "per_seed"}
                    for b in s["benefits"].values()
                ],
                "best": s["best"],
                "crossover": s["crossover"],
                "depth_trend": s["depth_trend"],
            }
            for name, s in sweeps.items()
        },
        "transferability": {
            name: {
                "base": y["base"],
                "cells": list(y["cells"].values()),
                "average": y["average"],
            }
            for name, y in yosinskis.items()
        },
        "rules": rules,
    }
    (out / "results.json").write_text(json.dumps(_jsonable(results_json), indent=1))
    report = render_report(
        plan, env, sweeps, yosinskis, q1, q2, q3, rules, runtime, out
    )
    (out / "REPORT.md").write_text(report)


def log_invocation(out: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Appends `record` to `<out>/invocations.jsonl`; returns every record."""
    path = out / "invocations.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def add_real_backbone(out: Path, seeds: int, quick: bool) -> None:
    """Real-backbone cases: measured into out/real_backbone, summarised in REPORT."""
    from tlrecipes.lab.real_backbone_report import (
        key_numbers,
        real_backbone_settings,
        report_section,
        run_real_backbone_report,
    )

    settings = real_backbone_settings(seeds=max(seeds, 2), quick=quick)
    payload = run_real_backbone_report(out / "real_backbone", settings)
    real = key_numbers(payload, "real_backbone/REPORT.md")
    report = out / "REPORT.md"
    report.write_text(
        report.read_text().rstrip("\n") + "\n\n" + "\n".join(report_section(real))
    )
    results = out / "results.json"
    data = json.loads(results.read_text())
    data["real_backbone"] = real
    results.write_text(json.dumps(data, indent=1, default=str))
