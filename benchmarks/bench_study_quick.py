"""Wall time of `tlrecipes study --quick` against its 3-minute budget.

Runs the command in a subprocess on a fresh output folder, the way a user
runs it, twice:

1. `shipped source`: the source models shipped in `tlrecipes/lab/weights/` are
   loaded (the normal case);
2. `no cached source`: an empty `TLRECIPES_CACHE_DIR` and the quick source
   config (`{"epochs": 1}`, what `--quick` trains when no source model is
   stored) in `TLRECIPES_STUDY_SOURCE`, so both source models are trained
   first, inside the measured time.

Prints each wall time and its ratio to the 180-second budget of issue 5 and
saves them to `benchmarks/results/bench_study_quick.json`. A timing, not a
test: nothing is asserted.

    python benchmarks/bench_study_quick.py            # both variants
    python benchmarks/bench_study_quick.py --only shipped
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tlrecipes.lab.record import provenance

BUDGET_SECONDS = 180.0
REPO = Path(__file__).resolve().parents[1]


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if "model name" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(variant: str, extra_args: list[str]) -> dict:
    """Runs `python -m tlrecipes study --quick` once; returns its timing."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.setdefault("TLRECIPES_OFFLINE", "1")
        env.pop("TLRECIPES_STUDY_SOURCE", None)
        if variant == "no cached source":
            env["TLRECIPES_CACHE_DIR"] = str(Path(tmp) / "cache")
            env["TLRECIPES_STUDY_SOURCE"] = json.dumps({"epochs": 1})
        command = [
            sys.executable,
            "-m",
            "tlrecipes",
            "study",
            "--quick",
            "--out",
            str(Path(tmp) / "out"),
            *extra_args,
        ]
        start = time.perf_counter()
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
        report = Path(tmp) / "out" / "REPORT.md"
        summary_path = Path(tmp) / "out" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
    return {
        "variant": variant,
        "command": " ".join(command[1:3] + command[3:5]),
        "returncode": result.returncode,
        "report_written": report.name if summary else None,
        "wall_seconds": round(seconds, 1),
        "budget_seconds": BUDGET_SECONDS,
        "ratio_to_budget": round(seconds / BUDGET_SECONDS, 3),
        "runs_trained": summary.get("trained"),
        "training_seconds": summary.get("training_seconds"),
        "sources": {
            t: {"shipped": s["shipped"], "config": s["config"]}
            for t, s in summary.get("plan", {}).get("sources", {}).items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=("shipped", "untrained"), help="measure one variant"
    )
    parser.add_argument(
        "--out",
        default=str(REPO / "benchmarks" / "results" / "bench_study_quick.json"),
    )
    args = parser.parse_args()
    variants = ["shipped source", "no cached source"]
    if args.only:
        variants = [variants[0] if args.only == "shipped" else variants[1]]
    results = []
    for variant in variants:
        row = measure(variant, [])
        results.append(row)
        print(
            f"{variant:>17}: {row['wall_seconds']:6.1f} s wall, "
            f"{row['ratio_to_budget']:.2f} x the {BUDGET_SECONDS:.0f} s budget "
            f"(exit {row['returncode']}, {row['runs_trained']} runs trained)"
        )
    record = {
        "benchmark": "tlrecipes study --quick, subprocess, fresh output folder",
        "machine": f"{_cpu()}, {os.cpu_count()} cores",
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        # commit (dirty or not), device, library versions and what was timed
        "provenance": provenance(
            {"variants": variants, "budget_seconds": BUDGET_SECONDS}
        ),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"Saved {args.out}")


if __name__ == "__main__":
    main()
