"""Measures whether fine-tuning controls beat plain two-phase fine-tuning.

On the offline large/similar task (fashion_a_to_b, 500 training images per
class) and large/different task (fashion_to_mnist, 350 per class: the offline
MNIST holds 400, 50 of them go to validation), with the shipped source model:

    head_only          phase 1 only: the new head on frozen features
    plain              + unfreeze the base (BatchNorm frozen), Adam at LR
    discriminative     + ULMFiT rates: head at LR, each block below / 2.6
    discriminative_hi  + the same with the head at 10 * LR (fastai-style)
    gradual            + gradual unfreezing: block3, then block2, then block1
    surgical_<g>       + tune only group g (block1, block2, block3, head)

The protocol (`tlrecipes.lab.comparison`): every run holds out
`VAL_PER_CLASS` validation images per class from the training pool (drawn
with the seed alone), reads validation after every epoch and keeps its
best-validation weights; the test split is read once per method and seed, on
those weights. Every method starts from the same phase-1 model of its (task,
seed) (the head's best-validation weights) and gets the same phase-2 budget
(`FINE_TUNE_EPOCHS` epochs at the same batch size), so differences are paired
by seed. Per task, the best method is picked on validation (`pick_best`) and
measured against plain on test (`compare`), and every method is compared with
plain (`compare_to_baseline`, Bonferroni over the methods). Seeds default to
`min_seeds` of the device (5 on a CPU, 10 on a GPU); a full run refuses a
dirty git tree (`--allow-dirty` records it) and fewer seeds. Writes
results.json (with provenance), results.csv, finetune_controls.png and
README.md.

    python benchmarks/compare_finetune_controls.py --out reports/finetune_controls
    python benchmarks/compare_finetune_controls.py --quick --out /tmp/ftc

Each (task, seed) cell can run in its own process (`--workers N`); on a GPU
set XLA_PYTHON_CLIENT_PREALLOCATE=false (the script does for its workers).
Runs on JAX, TensorFlow or PyTorch (NumPy inputs only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

TASKS = {"fashion_a_to_b": 500, "fashion_to_mnist": 350}
VAL_PER_CLASS = 50
HEAD_EPOCHS = 5  # over 200 steps on both tasks (79 and 110 steps per epoch)
FINE_TUNE_EPOCHS = 6  # gradual: 3 stages of 2 epochs
FINE_TUNE_LR = 1e-4
BATCH_SIZE = 32
METHODS = (
    "head_only",
    "plain",
    "discriminative",
    "discriminative_hi",
    "gradual",
    "surgical_block1",
    "surgical_block2",
    "surgical_block3",
    "surgical_head",
)
#: `--quick`: 30 images per class, 10 for validation, 2 seeds (the fewest a
#: paired interval needs), 1 + 3 epochs, the first 500 test images.
QUICK = {"n": 30, "val_per_class": 10, "seeds": 2, "head_epochs": 1,
         "fine_tune_epochs": 3, "test_images": 500}  # fmt: skip


def _sizes(quick: bool) -> tuple[dict[str, int], int]:
    if quick:
        return {t: QUICK["n"] for t in TASKS}, QUICK["val_per_class"]
    return dict(TASKS), VAL_PER_CLASS


def run_cell(task_name: str, seed: int, quick: bool, lr: float) -> list[dict]:
    """Every method for one (task, seed), from one shared phase-1 model."""
    from tlrecipes.lab.finetune_controls import finetune_controls_cell

    sizes, val_per_class = _sizes(quick)
    return finetune_controls_cell(
        task_name,
        seed,
        n_per_class=sizes[task_name],
        val_per_class=val_per_class,
        head_epochs=QUICK["head_epochs"] if quick else HEAD_EPOCHS,
        fine_tune_epochs=QUICK["fine_tune_epochs"] if quick else FINE_TUNE_EPOCHS,
        lr=lr,
        methods=METHODS,
        batch_size=BATCH_SIZE,
        test_images=QUICK["test_images"] if quick else None,
    )


def summarise(rows: list[dict], device: str, quick: bool) -> dict[str, Any]:
    """Per task: means, the validation pick, and comparisons with plain on test."""
    from tlrecipes.lab.comparison import (
        check_seeds,
        compare,
        compare_to_baseline,
        pick_best,
    )

    out = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        sel = [r for r in rows if r["task"] == task]
        methods = [m for m in METHODS if any(r["method"] == m for r in sel)]
        val = {m: {r["seed"]: r["val_accuracy"] for r in sel if r["method"] == m}
               for m in methods}  # fmt: skip
        test = {m: {r["seed"]: r["test_accuracy"] for r in sel if r["method"] == m}
                for m in methods}  # fmt: skip
        pick = pick_best(val)
        family = compare_to_baseline(test, "plain")
        picked = compare(test[pick], test["plain"], name_a=pick, name_b="plain")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_seeds([*family, picked], device, strict=not quick)
        out[task] = {
            "methods": {
                m: {
                    "test": _spread(test[m].values()),
                    "validation": _spread(val[m].values()),
                    "seconds": round(
                        statistics.mean(r["seconds"] for r in sel if r["method"] == m),
                        2,
                    ),
                }
                for m in methods
            },  # fmt: skip
            "choice": {
                "method": pick,
                "chosen_on": "validation",
                "validation_mean": _spread(val[pick].values())["mean"],
                "validation": {str(s): v for s, v in val[pick].items()},
                "candidates": len(methods),
            },
            "pick_vs_plain": picked.to_dict() | {"points": picked.points},
            "comparisons": [c.to_dict() | {"points": c.points} for c in family],
            "seed_warning": [str(w.message) for w in caught],
        }
    return out


def _spread(values) -> dict[str, float]:
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.mean(values), 4), "std": round(sd, 4)}


def plot(summary: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    tasks = list(summary)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        methods = summary[task]["methods"]
        names = list(methods)
        means = [methods[m]["test"]["mean"] for m in names]
        stds = [methods[m]["test"]["std"] for m in names]
        colors = ["0.6" if m in ("head_only", "plain") else "C0" for m in names]
        ax.bar(range(len(names)), means, yerr=stds, color=colors, capsize=3)
        if "plain" in methods:
            ax.axhline(methods["plain"]["test"]["mean"], color="k", lw=0.8, ls="--",
                       label="plain")  # fmt: skip
        low = min(m - s for m, s in zip(means, stds, strict=True))
        ax.set_ylim(max(0.0, low - 0.03), min(1.0, max(means) + 0.03))
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.set_title(task)
        ax.legend(loc="lower right", fontsize="small")
    fig.savefig(path, dpi=130)


def _comparisons(items: list[dict]):
    from tlrecipes.lab.comparison import Comparison

    fields = Comparison.__dataclass_fields__
    return [
        Comparison(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in c.items() if k in fields})
        for c in items
    ]  # fmt: skip


def write_readme(result: dict, path: Path) -> None:
    from tlrecipes.lab.comparison import summary_table
    from tlrecipes.lab.record import header_line

    plan = result["plan"]
    sizes = ", ".join(f"{t} {n}" for t, n in plan["n_per_class"].items())
    lines = [
        "# Fine-tuning controls vs plain two-phase fine-tuning",
        "",
        f"Generated by `benchmarks/compare_finetune_controls.py` "
        f"({'QUICK smoke run: not results' if result['quick'] else 'full run'}): "
        f"{header_line(result['provenance'], duration=result['seconds'])}"
        + (" · **dirty tree**" if result["provenance"].get("dirty") else "")
        + ".",
        "",
        f"Setup: shipped source model per task; training images per class: {sizes}; "
        f"{plan['val_per_class']} per class for validation, "
        f"disjoint; phase 1 trains the head ({plan['head_epochs']} epoch(s), "
        f"`two_phase_fit`'s head_lr); every method then gets "
        f"{plan['fine_tune_epochs']} epochs at batch size {BATCH_SIZE} from the "
        f"same phase-1 weights (the head's best-validation point), base rate "
        f"{plan['lr']:g}. Each run keeps its best-validation epoch; test is read "
        f"once per method and seed, on it. Seeds: {plan['seeds']}.",
        "",
        "| task | method | test accuracy (mean ± std) | validation (mean) |",
        "|---|---|---|---|",
    ]
    for task, s in result["summary"].items():
        for m, v in s["methods"].items():
            lines.append(
                f"| {task} | {m} | {v['test']['mean']:.4f} ± {v['test']['std']:.4f} "
                f"| {v['validation']['mean']:.4f} |"
            )
    for task, s in result["summary"].items():
        choice = s["choice"]
        lines += [
            "",
            f"## {task}",
            "",
            f"Picked on validation among {choice['candidates']} methods: "
            f"**{choice['method']}** (validation {choice['validation_mean']:.4f}); "
            "measured against plain on test:",
            "",
            summary_table(_comparisons([s["pick_vs_plain"]])),
            "",
            "Every method against plain, on test:",
            "",
            summary_table(_comparisons(s["comparisons"])),
        ]
    lines += [
        "",
        "Verdicts follow from the paired 95% interval alone (ahead: above 0; "
        "behind: below 0; else tie); see `tlrecipes.lab.comparison`.",
        "",
        "![accuracy per method](finetune_controls.png)",
        "",
    ]
    path.write_text("\n".join(lines))


def run_cells(cells, args, log) -> list[dict]:
    rows: list[dict] = []
    start = time.perf_counter()
    if args.workers <= 1:
        for task, seed in cells:
            rows += run_cell(task, seed, args.quick, args.lr)
            log(f"done {task} seed {seed} ({time.perf_counter() - start:.0f} s)")
        return rows
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    procs, pending = [], list(cells)
    while pending or procs:
        while pending and len(procs) < args.workers:
            task, seed = pending.pop(0)
            cmd = [sys.executable, __file__, "--cell", task, str(seed)]
            cmd += ["--lr", str(args.lr)] + (["--quick"] if args.quick else [])
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
            )
        time.sleep(0.2)
        for proc in [p for p in procs if p.poll() is not None]:
            procs.remove(proc)
            out = proc.stdout.read()
            if proc.returncode:
                print(out[-3000:])
                raise SystemExit(f"worker failed: {proc.args}")
            rows += json.loads(out.split("ROWS ", 1)[1])
            log(f"done {proc.args[3]} seed {proc.args[4]} "
                f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/finetune_controls")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seeds", type=int, help="default: min_seeds(device)")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS))
    parser.add_argument("--lr", type=float, default=FINE_TUNE_LR)
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="record a dirty git tree instead of refusing it",
    )
    parser.add_argument(
        "--cell", nargs=2, metavar=("TASK", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.cell:
        rows = run_cell(args.cell[0], int(args.cell[1]), args.quick, args.lr)
        print("ROWS " + json.dumps(rows))
        return 0
    from tlrecipes.lab.comparison import min_seeds
    from tlrecipes.lab.record import device_description, provenance

    device = device_description()
    needed = min_seeds(device)
    seeds = args.seeds or (QUICK["seeds"] if args.quick else needed)
    if not args.quick and seeds < needed:
        raise SystemExit(
            f"--seeds {seeds} is fewer than the {needed} a comparison needs on "
            f"{device!r}. Fix: --seeds {needed} or more (--quick for a smoke run)."
        )
    sizes, val_per_class = _sizes(args.quick)
    tasks = list(args.tasks or TASKS)
    plan = {
        "tasks": tasks,
        "seeds": list(range(seeds)),
        "n_per_class": {t: sizes[t] for t in tasks},
        "val_per_class": val_per_class,
        "head_epochs": QUICK["head_epochs"] if args.quick else HEAD_EPOCHS,
        "fine_tune_epochs": QUICK["fine_tune_epochs"]
        if args.quick
        else FINE_TUNE_EPOCHS,
        "lr": args.lr,
        "batch_size": BATCH_SIZE,
        "methods": list(METHODS),
        "test_images": QUICK["test_images"] if args.quick else "full test split",
        "quick": args.quick,
    }
    record = provenance(plan, allow_dirty=args.allow_dirty or args.quick)
    cells = [(task, seed) for task in tasks for seed in plan["seeds"]]
    start = time.perf_counter()
    rows = run_cells(cells, args, print)
    seconds = time.perf_counter() - start
    rows.sort(key=lambda r: (r["task"], r["seed"], METHODS.index(r["method"])))
    result = {
        "what": "fine-tuning controls vs plain two-phase fine-tuning",
        "protocol": "best-validation epoch per run, test read once per method "
        "and seed; method picked on validation (pick_best); compare() and "
        "compare_to_baseline() against plain, paired by seed",
        "quick": args.quick,
        "seconds": round(seconds, 1),
        "workers": args.workers,
        "provenance": record,
        "plan": plan,
        "test_reads": sum(r["test_reads"] for r in rows),
        "summary": summarise(rows, device, args.quick),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    columns = [k for k in rows[0] if k != "val_curve"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(result["summary"], out / "finetune_controls.png")
    write_readme(result, out / "README.md")
    for task, s in result["summary"].items():
        for c in s["comparisons"]:
            print(f"{task:17s} {c['name']:28s} {c['points']} -> {c['verdict']}")
        p = s["pick_vs_plain"]
        print(f"{task:17s} picked on validation: {s['choice']['method']}; "
              f"{p['name']} {p['points']} -> {p['verdict']}")  # fmt: skip
    print(f"{len(rows)} runs in {seconds:.0f} s on {device} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
