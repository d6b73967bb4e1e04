"""How long `tlrecipes --help` and `tlrecipes advise` take to answer.

The command line imports lazily: `--help` and `advise` load no Keras and no
backend, so they answer in about the time Python itself takes to start.
Each command is timed as a fresh process, side by side with a bare
`python -c pass`, in rotation (bare, help, advise, bare, ...) so that machine
noise hits all three; the medians, their ratio to the bare start and to the
2 s target are printed and saved.

    python benchmarks/bench_cli_startup.py            # 7 rounds
    python benchmarks/bench_cli_startup.py --quick    # 2 rounds

Target (issue 14): `tlrecipes --help` and `tlrecipes advise ...` answer in
under 2 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 2.0
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "tlrecipes --help": [sys.executable, "-m", "tlrecipes", "--help"],
    "tlrecipes advise": [
        sys.executable, "-m", "tlrecipes", "advise",
        "--images-per-class", "10", "--similar", "yes",
    ],
}


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--note", default="", help="saved with the result")
    parser.add_argument(
        "--out", default=None, help="default: benchmarks/results/cli_startup.json"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 7)

    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            times[name].append(_seconds(command))
    bare = statistics.median(times["python -c pass"])
    rows = {}
    for name, values in times.items():
        median = statistics.median(values)
        rows[name] = {
            "median_s": round(median, 3),
            "ratio_to_bare_python": round(median / bare, 2),
            "ratio_to_target": round(median / TARGET_SECONDS, 3),
        }
        print(
            f"{name:18s} median {median:6.3f} s  x{median / bare:5.2f} of a bare "
            f"start  {median / TARGET_SECONDS:5.2f} of the target"
        )
    result = {
        "benchmark": "cli_startup",
        "rounds": rounds,
        "target_seconds": TARGET_SECONDS,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.date.today().isoformat(),
        "note": args.note,
        "python": platform.python_version(),
        "commands": rows,
        "meets_target": all(
            row["median_s"] < TARGET_SECONDS
            for name, row in rows.items()
            if name != "python -c pass"
        ),
    }
    out = Path(args.out or Path(__file__).parent / "results" / "cli_startup.json")
    if not args.quick or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
