"""Measures whether fine-tuning controls beat plain two-phase fine-tuning.

On the offline large/similar task (fashion_a_to_b, 500 images per class) and
large/different task (fashion_to_mnist, 400 per class: all the offline MNIST
has), with the shipped source model, for several seeds:

    head_only          phase 1 only: the new head on frozen features
    plain              + unfreeze the base (BatchNorm frozen), Adam at LR
    discriminative     + ULMFiT rates: head at LR, each block below / 2.6
    discriminative_hi  + the same with the head at 10 * LR (fastai-style)
    gradual            + gradual unfreezing: block3, then block2, then block1
    surgical_<g>       + tune only group g (block1, block2, block3, head)

Every method starts from the same phase-1 model of its (task, seed) and gets
the same phase-2 budget (FINE_TUNE_EPOCHS epochs at the same batch size), so
differences are paired by seed. Test accuracy is on the full official test
split. Writes results.json, results.csv, finetune_controls.png and README.md
(table, effect sizes against plain with their spread over seeds, and the
machine, backend and duration).

    python benchmarks/compare_finetune_controls.py --out reports/finetune_controls
    python benchmarks/compare_finetune_controls.py --quick --out /tmp/ftc   # ~1 min

Each (task, seed) cell can run in its own process (`--workers N`); on a GPU
set XLA_PYTHON_CLIENT_PREALLOCATE=false (the script does for its workers).
Runs on JAX, TensorFlow or PyTorch (NumPy inputs only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TASKS = {"fashion_a_to_b": 500, "fashion_to_mnist": 400}
SEEDS = (0, 1, 2)
HEAD_EPOCHS = 5  # over 200 steps on both tasks (79 and 125 steps per epoch)
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


def _accuracy(model, x, y, batch: int = 1000) -> float:
    """Accuracy by direct calls (no predict function to compile)."""
    import keras

    hits = 0
    for i in range(0, len(x), batch):
        out = keras.ops.convert_to_numpy(model(x[i : i + batch], training=False))
        hits += int((out.argmax(-1) == y[i : i + batch]).sum())
    return hits / len(x)


def run_cell(task_name: str, seed: int, quick: bool, lr: float) -> list[dict]:
    """Every method for one (task, seed), from one shared phase-1 model."""
    import keras
    import numpy as np

    from tlrecipes import add_head, two_phase_fit
    from tlrecipes.discriminative import lr_multipliers
    from tlrecipes.finetune import gradual_unfreeze_fit, surgical_fit
    from tlrecipes.lab import get_task, load_source_model, train_source_model

    n = 30 if quick else TASKS[task_name]
    head_epochs = 1 if quick else HEAD_EPOCHS
    fine_epochs = 3 if quick else FINE_TUNE_EPOCHS
    try:
        source = load_source_model(task_name)
    except FileNotFoundError:
        source = train_source_model(task_name)
    data = get_task(task_name).target_subset(n, seed=seed)
    x, y = data.x_train.astype("float32") / 255.0, data.y_train
    x_test, y_test = data.x_test.astype("float32") / 255.0, data.y_test
    if x.ndim == 3:
        x, x_test = x[..., None], x_test[..., None]
    if quick:
        x_test, y_test = x_test[:500], y_test[:500]
    classes = len(data.class_names)
    fit = {"batch_size": BATCH_SIZE, "verbose": 0}

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = add_head(source.copy_base(), classes)
    two_phase_fit(
        model, x, y, head_epochs=head_epochs, fine_tune_epochs=0, **fit,
    )  # fmt: skip
    after_head = [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]
    rows = []

    def record(method: str, t0: float, **extra) -> None:
        rows.append(
            {
                "task": task_name,
                "n_per_class": n,
                "seed": seed,
                "method": method,
                "test_accuracy": round(_accuracy(model, x_test, y_test), 4),
                "seconds": round(time.perf_counter() - t0, 2),
                **extra,
            }
        )

    record("head_only", start, phase2_epochs=0)
    for method in METHODS[1:]:
        t0 = time.perf_counter()
        for variable, value in zip(model.variables, after_head, strict=True):
            variable.assign(value)
        keras.utils.set_random_seed(seed + 1000)  # same batch order for all
        if method in ("plain", "discriminative", "discriminative_hi"):
            top = lr * (10 if method == "discriminative_hi" else 1)
            multipliers = None if method == "plain" else lr_multipliers(model, 2.6)
            two_phase_fit(
                model, x, y, head_epochs=0, fine_tune_epochs=fine_epochs,
                fine_tune_lr=top, lr_multipliers=multipliers, **fit,
            )  # fmt: skip
        elif method == "gradual":
            gradual_unfreeze_fit(
                model, x, y, epochs_per_stage=max(1, fine_epochs // 3),
                learning_rate=lr, **fit,
            )  # fmt: skip
        else:
            block = method.removeprefix("surgical_")
            surgical_fit(model, x, y, block=block, epochs=fine_epochs,
                         learning_rate=lr, **fit)  # fmt: skip
        record(method, t0, phase2_epochs=fine_epochs)
    return rows


def _device() -> str:
    try:
        import keras

        if keras.backend.backend() == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return f"{device.device_kind} (JAX)"
        if keras.backend.backend() == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a label only
        pass
    proc = platform.processor() or platform.machine()
    return f"{os.cpu_count()}-core CPU ({proc}), no GPU"


def summarise(rows: list[dict]) -> list[dict]:
    """Mean, std over seeds, and the paired difference to `plain` per seed."""
    plain = {
        (r["task"], r["seed"]): r["test_accuracy"]
        for r in rows
        if r["method"] == "plain"
    }
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        for method in METHODS:
            sel = [r for r in rows if r["task"] == task and r["method"] == method]
            if not sel:
                continue
            accs = [r["test_accuracy"] for r in sel]
            diffs = [
                r["test_accuracy"] - plain[(task, r["seed"])]
                for r in sel
                if (task, r["seed"]) in plain
            ]
            out.append(
                {
                    "task": task,
                    "method": method,
                    "mean": round(statistics.mean(accs), 4),
                    "std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
                    "diff_vs_plain": round(statistics.mean(diffs), 4)
                    if diffs
                    else None,
                    "diff_std": round(statistics.stdev(diffs), 4)
                    if len(diffs) > 1
                    else 0.0,
                    "wins_vs_plain": sum(d > 0 for d in diffs),
                    "seeds": len(accs),
                    "seconds": round(statistics.mean(r["seconds"] for r in sel), 2),
                }
            )
    return out


def _verdict(s: dict) -> str:
    """A rule, stated in the README: paired difference against its spread."""
    d, sd, n = s["diff_vs_plain"], s["diff_std"], s["seeds"]
    if s["method"] == "plain" or d is None:
        return "reference"
    if n < 2:
        return "one seed: no verdict"
    margin = 2 * sd / n**0.5  # about a 2-standard-error band
    if d > margin and s["wins_vs_plain"] == n:
        return "better than plain"
    if d < -margin and s["wins_vs_plain"] == 0:
        return "worse than plain"
    return "within seed spread"


def plot(summary: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(s["task"] for s in summary))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        sel = [s for s in summary if s["task"] == task]
        names = [s["method"] for s in sel]
        means = [s["mean"] for s in sel]
        colors = ["0.6" if m in ("head_only", "plain") else "C0" for m in names]
        ax.bar(range(len(sel)), means, yerr=[s["std"] for s in sel], color=colors,
               capsize=3)  # fmt: skip
        plain = next((s["mean"] for s in sel if s["method"] == "plain"), None)
        if plain is not None:
            ax.axhline(plain, color="k", lw=0.8, ls="--", label="plain")
        low = min(m - s["std"] for m, s in zip(means, sel, strict=True))
        ax.set_ylim(max(0.0, low - 0.03), min(1.0, max(means) + 0.03))
        ax.set_xticks(range(len(sel)), names, rotation=45, ha="right")
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.set_title(task)
        ax.legend(loc="lower right", fontsize="small")
    fig.savefig(path, dpi=130)


def write_readme(result: dict, path: Path) -> None:
    lines = [
        "# Fine-tuning controls vs plain two-phase fine-tuning",
        "",
        f"Generated by `benchmarks/compare_finetune_controls.py` "
        f"({'QUICK smoke run: not results' if result['quick'] else 'full run'}) on "
        f"{result['device']}, Keras {result['keras']} with the {result['backend']} "
        f"backend, in {result['seconds']:.0f} s.",
        "",
        f"Setup: shipped source model per task; phase 1 trains the head "
        f"({result['head_epochs']} epochs, at least 200 steps, lr 3e-3); every "
        f"method then gets {result['fine_tune_epochs']} epochs at batch size "
        f"{BATCH_SIZE} from the same phase-1 weights, base rate "
        f"{result['lr']:g}. Seeds: {result['seeds']}. Test accuracy on the full "
        "official test split.",
        "",
        "| task | method | accuracy (mean ± std) | vs plain (paired mean ± std) "
        "| seeds better | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for s in result["summary"]:
        diff = (
            ""
            if s["diff_vs_plain"] is None
            else (f"{s['diff_vs_plain']:+.4f} ± {s['diff_std']:.4f}")
        )
        lines.append(
            f"| {s['task']} | {s['method']} | {s['mean']:.4f} ± {s['std']:.4f} | "
            f"{diff} | {s['wins_vs_plain']}/{s['seeds']} | {_verdict(s)} |"
        )
    lines += [
        "",
        "Verdict rule: a method is *better* (*worse*) than plain when its "
        "paired difference is above (below) two standard errors of the "
        "per-seed differences AND it wins (loses) on every seed; otherwise "
        "*within seed spread*. With 3 seeds this is a coarse test: read the "
        "effect sizes, not only the verdicts.",
        "",
        "![accuracy per method](finetune_controls.png)",
        "",
        "## Reading",
        "",
    ]
    for task in dict.fromkeys(s["task"] for s in result["summary"]):
        sel = [s for s in result["summary"] if s["task"] == task]
        best = max(sel, key=lambda s: s["mean"])
        better = [s["method"] for s in sel if _verdict(s) == "better than plain"]
        worse = [s["method"] for s in sel if _verdict(s) == "worse than plain"]
        spread = max(s["std"] for s in sel)
        lines.append(
            f"- **{task}**: highest mean {best['method']} ({best['mean']:.4f}); "
            f"better than plain: {', '.join(better) or 'none'}; worse: "
            f"{', '.join(worse) or 'none'}; largest seed std {spread:.4f}."
        )
    lines += [
        "",
        "(The lines above are generated from the numbers by the rule stated; "
        "interpretation belongs in the notebook or report that cites them.)",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/finetune_controls")
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--lr", type=float, default=FINE_TUNE_LR)
    parser.add_argument(
        "--cell", nargs=2, metavar=("TASK", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.cell:
        rows = run_cell(args.cell[0], int(args.cell[1]), args.quick, args.lr)
        print("ROWS " + json.dumps(rows))
        return 0
    seeds = list(range(1 if args.quick else args.seeds))
    cells = [(task, seed) for task in TASKS for seed in seeds]
    start = time.perf_counter()
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    procs, rows, pending = [], [], list(cells)
    while pending or procs:
        while pending and len(procs) < max(1, args.workers):
            task, seed = pending.pop(0)
            cmd = [
                sys.executable,
                __file__,
                "--cell",
                task,
                str(seed),
                "--lr",
                str(args.lr),
            ]
            cmd += ["--quick"] if args.quick else []
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
            print(f"done {proc.args[3]} seed {proc.args[4]} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    seconds = time.perf_counter() - start
    import keras

    rows.sort(key=lambda r: (r["task"], r["seed"], METHODS.index(r["method"])))
    result = {
        "what": "fine-tuning controls vs plain two-phase fine-tuning",
        "quick": args.quick,
        "backend": keras.backend.backend(),
        "device": _device(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "seconds": round(seconds, 1),
        "workers": args.workers,
        "seeds": seeds,
        "lr": args.lr,
        "head_epochs": 1 if args.quick else HEAD_EPOCHS,
        "fine_tune_epochs": 3 if args.quick else FINE_TUNE_EPOCHS,
        "n_per_class": {t: 30 if args.quick else n for t, n in TASKS.items()},
        "summary": summarise(rows),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(result["summary"], out / "finetune_controls.png")
    write_readme(result, out / "README.md")
    for s in result["summary"]:
        diff = "" if s["diff_vs_plain"] is None else f"{s['diff_vs_plain']:+.4f}"
        print(f"{s['task']:17s} {s['method']:18s} {s['mean']:.4f} ± {s['std']:.4f} "
              f"{diff:>8s}  {_verdict(s)}")  # fmt: skip
    print(f"{len(rows)} runs in {seconds:.0f} s on {result['device']} "
          f"({result['backend']}) -> {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
