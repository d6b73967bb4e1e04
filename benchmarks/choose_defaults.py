"""Measures the learning rates behind `two_phase_fit`'s defaults.

The Keras guide's two-phase recipe (head at Adam's default 1e-3 for some
epochs, then everything at 1e-5) was written for ImageNet-sized data, where an
epoch is thousands of steps. With 10 images per class an epoch is two steps.
This script measures, on the project's offline tasks, what a user gets from

    two_phase_fit(model, x, y, head_epochs=E, fine_tune_epochs=10,
                  head_lr=H, fine_tune_lr=F)

with E = 10 epochs raised to `MIN_HEAD_STEPS` (200) steps when an epoch is
short (the step budget of `head_epochs="auto"`, at least 10 epochs), for a
grid of H and F, next to the Keras guide's code as written and a from-scratch
twin, over several seeds, and saves the table the defaults in
`tlrecipes/training.py` cite.

    python benchmarks/choose_defaults.py --workers 12      # full grid
    python benchmarks/choose_defaults.py --quick           # smoke run

Each (task, size, seed) cell runs in its own worker process; on a GPU set
XLA_PYTHON_CLIENT_PREALLOCATE=false so the workers share it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAD_LRS = (1e-3, 3e-3, 1e-2)
FINE_TUNE_LRS = (1e-5, 1e-4, 1e-3)
TASKS = ("fashion_a_to_b", "fashion_to_mnist")
SIZES = (10, 100)
SEEDS = (0, 1, 2)


def _accuracy(model, x, y) -> float:
    import numpy as np

    pred = model.predict(x, batch_size=512, verbose=0).argmax(-1)
    return float(np.mean(pred == y))


def run_cell(task_name: str, size: int, seed: int, quick: bool) -> list[dict]:
    """All grid points for one (task, size, seed) cell."""
    import keras

    from tlrecipes import add_head, two_phase_fit
    from tlrecipes.lab import (
        get_task,
        load_source_model,
        scratch_twin,
        train_source_model,
    )
    from tlrecipes.training import MIN_HEAD_STEPS

    head_lrs = HEAD_LRS[::2] if quick else HEAD_LRS
    fine_lrs = FINE_TUNE_LRS[1:2] if quick else FINE_TUNE_LRS
    epochs = 2 if quick else 10
    try:
        source = load_source_model(task_name)
    except FileNotFoundError:
        source = train_source_model(task_name)
    task = get_task(task_name)
    data = task.target_subset(size, seed=seed)
    x, y = data.x_train.astype("float32") / 255.0, data.y_train
    x_test, y_test = data.x_test.astype("float32") / 255.0, data.y_test
    if x.ndim == 3:
        x, x_test = x[..., None], x_test[..., None]
    if quick:
        x_test, y_test = x_test[:500], y_test[:500]
    classes = len(data.class_names)
    steps_per_epoch = -(-len(x) // 32)
    # At least `epochs` head epochs and at least MIN_HEAD_STEPS head steps.
    head_epochs = max(epochs, -(-MIN_HEAD_STEPS // steps_per_epoch))
    rows = []

    def row(method, start, **fields):
        rows.append(
            dict(
                task=task_name,
                size=size,
                seed=seed,
                method=method,
                seconds=round(time.perf_counter() - start, 2),
                **fields,
            )
        )

    for head_lr in head_lrs:
        start = time.perf_counter()
        keras.utils.set_random_seed(seed)
        model = add_head(source.copy_base(), classes, dropout=0.2)
        two_phase_fit(
            model,
            x,
            y,
            head_epochs=head_epochs,
            fine_tune_epochs=0,
            head_lr=head_lr,
            verbose=0,
        )
        head_acc = _accuracy(model, x_test, y_test)
        row(
            "head_only",
            start,
            head_lr=head_lr,
            fine_tune_lr=None,
            test_accuracy=head_acc,
        )
        after_head = model.get_weights()
        for fine_lr in fine_lrs:
            start = time.perf_counter()
            keras.utils.set_random_seed(seed)
            model.set_weights(after_head)
            two_phase_fit(
                model,
                x,
                y,
                head_epochs=0,
                fine_tune_epochs=epochs,
                fine_tune_lr=fine_lr,
                verbose=0,
            )
            row(
                "two_phase_fit",
                start,
                head_lr=head_lr,
                fine_tune_lr=fine_lr,
                test_accuracy=_accuracy(model, x_test, y_test),
                head_accuracy=head_acc,
            )

    # The Keras guide as written: 20 epochs at Adam's default, then 10 at 1e-5,
    # epochs counted as epochs (no step budget).
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = add_head(source.copy_base(), classes, dropout=0.2)
    two_phase_fit(
        model,
        x,
        y,
        head_epochs=2 if quick else 20,
        fine_tune_epochs=1 if quick else 10,
        head_lr=1e-3,
        fine_tune_lr=1e-5,
        verbose=0,
    )
    row(
        "keras_guide",
        start,
        head_lr=1e-3,
        fine_tune_lr=1e-5,
        test_accuracy=_accuracy(model, x_test, y_test),
    )

    # From-scratch twin: same architecture, re-initialised, at least 400 steps.
    start = time.perf_counter()
    twin = scratch_twin(model, seed=seed)
    twin.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    twin.fit(
        x,
        y,
        batch_size=32,
        epochs=max(2 * epochs, -(-400 // steps_per_epoch)) if not quick else 2,
        verbose=0,
    )
    row(
        "scratch",
        start,
        head_lr=None,
        fine_tune_lr=1e-3,
        test_accuracy=_accuracy(twin, x_test, y_test),
    )
    return rows


def _device() -> str:
    try:
        import keras

        if keras.backend.backend() == "jax":
            import jax

            return str(jax.devices()[0].device_kind)
    except Exception:  # noqa: BLE001 - a label only
        pass
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["task"], r["size"], r["method"], r["head_lr"], r["fine_tune_lr"])
        groups.setdefault(key, []).append(r["test_accuracy"])
    out = []
    for key, accs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        out.append(
            dict(
                zip(("task", "size", "method", "head_lr", "fine_tune_lr"), key),
                mean=round(statistics.mean(accs), 4),
                std=round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
                seeds=len(accs),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/defaults.json")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument(
        "--keep",
        default=None,
        help="A previous result JSON whose rows for the other tasks are kept.",
    )
    parser.add_argument(
        "--cell", nargs=3, metavar=("TASK", "SIZE", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.cell:
        rows = run_cell(args.cell[0], int(args.cell[1]), int(args.cell[2]), args.quick)
        print("ROWS " + json.dumps(rows))
        return 0

    cells = list(
        itertools.product(
            args.tasks,
            SIZES[:1] if args.quick else SIZES,
            SEEDS[:1] if args.quick else SEEDS,
        )
    )
    start = time.perf_counter()
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    procs, rows = [], []
    pending = list(cells)
    while pending or procs:
        while pending and len(procs) < args.workers:
            task, size, seed = pending.pop(0)
            cmd = [sys.executable, __file__, "--cell", task, str(size), str(seed)]
            cmd += ["--quick"] if args.quick else []
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
            )
        time.sleep(0.5)
        for proc in [p for p in procs if p.poll() is not None]:
            procs.remove(proc)
            out = proc.stdout.read()
            if proc.returncode:
                print(out[-2000:])
                raise SystemExit(f"worker failed: {proc.args}")
            rows += json.loads(out.split("ROWS ", 1)[1])
    seconds = time.perf_counter() - start
    if args.keep:
        kept = json.loads(Path(args.keep).read_text())["rows"]
        rows = [r for r in kept if r["task"] not in args.tasks] + rows
    import keras

    result = dict(
        what="two_phase_fit learning rates vs the Keras guide as written vs scratch",
        quick=args.quick,
        backend=keras.backend.backend(),
        device=_device(),
        keras=keras.__version__,
        seconds=round(seconds, 1),
        workers=args.workers,
        summary=summarise(rows),
        rows=rows,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for s in result["summary"]:
        print(
            f"{s['task']:17s} {s['size']:4d}/class {s['method']:14s} "
            f"head_lr={s['head_lr']!s:6s} "
            f"ft_lr={s['fine_tune_lr']!s:6s} {s['mean']:.3f} ± {s['std']:.3f}"
        )
    print(
        f"{len(rows)} runs in {seconds:.0f} s on {result['device']} "
        f"({result['backend']}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
