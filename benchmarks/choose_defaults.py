"""Measures `two_phase_fit`'s defaults under the validation protocol.

What a user gets from the README call,

    model = add_head(base, num_classes)
    two_phase_fit(model, x, y, fine_tune_epochs=10)   # head_lr=1e-2, 1e-4

is measured against three arms, each given the SAME tuning budget: `K`
configurations, one chosen per (task, size) on the validation split only.

    two_phase_fit  the README call over a grid of (head_lr, fine_tune_lr): the
                   candidates for the defaults (the defaults among them)
    keras_guide    the Keras guide's code as written (head 20 epochs with
                   Adam, then the whole base 10 epochs, counted in epochs)
                   over the same grid of its two rates (the guide's own
                   1e-3 / 1e-5 among them)
    scratch        the from-scratch twin (same architecture, re-initialised,
                   every layer training, the README call's number of steps)
                   over K learning rates

The README call's `validation_data=(x_val, y_val)` is not passed: it only
logs; validation is read by a `LearningCurve` at the same points in every arm.

The protocol (`tlrecipes.lab.comparison`): every run holds out
`VAL_PER_CLASS` validation images per class from the target's training pool
(drawn with the seed alone, the same for every size), reads validation at
`CURVE_POINTS` points and keeps its best-validation weights. Each arm's
configuration is picked on validation (`pick_best`, mean over seeds, ties to
the reference listed first). The test split is then read once per final
model, on its best-validation weights: the README call, the guide as written,
each arm's pick, and the `defaults candidate` (the grid point with the best
validation mean pooled over every task and size: the proposed defaults).
Every comparison is paired by seed (`compare`, Bonferroni over the cell's
family), the README call against each of the others, with a verdict.

    python benchmarks/choose_defaults.py --estimate          # projected CPU time
    python benchmarks/choose_defaults.py --workers 4          # full grid
    python benchmarks/choose_defaults.py --quick --out /tmp/cd.json   # smoke run
    python benchmarks/choose_defaults.py --from-json R.json --markdown T.md

Sizes larger than a task's offline data holds (beside the validation images)
are clipped to what it holds, and the clipping is recorded (`plan.clipped`).
A full run refuses a dirty git tree (`--allow-dirty` records it instead) and
fewer seeds than `min_seeds` for its device. Each finished (task, size, seed)
cell is saved in `--checkpoints` as it ends, so a long run can be split over
sessions: run again with the same arguments and `--resume` (the result records
the commit of every cell, `cells_run_at`). A plan grown by a task or a size
takes the cells an earlier folder finished with `--reuse-cells FOLDER` (same
per-cell settings, checked), and `--test-scores-from RESULT` carries the test
scores that result read of the same final models, so no model's test split is
read twice (`defaults_checkpoints.py`). An existing `--out` or `--markdown`
file is never replaced without `--force`. Results go to
`benchmarks/results/defaults_protocol.json`; the old `defaults.json`
(chosen on test, jax, 3 seeds) is kept as it was.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the tables module beside this script
    sys.path.insert(0, str(HERE))

from defaults_checkpoints import (  # noqa: E402
    PLAN_FILE,
    carry_test_scores,
    checkpoint_path,
    load_test_scores,
    open_checkpoints,
    reuse_cells,
    save_cell,
    save_test_score,
    stored_test_score,
)
from defaults_tables import (  # noqa: E402
    NAMES,
    candidate_comparisons,
    config_id,
    readme_table,
    render_markdown,
    render_rule_table,
    rule_comparisons,
)

__all__ = [
    "NAMES", "candidate_comparisons", "open_checkpoints", "readme_table",
    "render_markdown", "reuse_cells", "rule_comparisons",
]  # fmt: skip

HEAD_LRS = (1e-3, 3e-3, 1e-2)
FINE_TUNE_LRS = (1e-5, 1e-4, 1e-3)
SCRATCH_LRS = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)
TASKS = ("fashion_a_to_b", "fashion_to_mnist", "mnist_a_to_b")
SIZES = (5, 10, 100, 1000, 6000)
VAL_PER_CLASS = 50
FINE_TUNE_EPOCHS = 10  # the README call's
GUIDE_EPOCHS = (20, 10)  # the Keras guide, counted in epochs
GUIDE_RATES = (1e-3, 1e-5)
CURVE_POINTS = 10
BATCH_SIZE = 32
DEFAULT_OUT = "benchmarks/results/defaults_protocol.json"
ARMS = ("two_phase_fit", "keras_guide", "scratch")
#: `--quick`: one task, one size, 2 seeds, a budget of 2 configurations per
#: arm, tiny epochs. Numbers meaningless; every code path runs.
QUICK = {
    "tasks": ("fashion_a_to_b",),
    "sizes": (10,),
    "seeds": 2,
    "val_per_class": 10,
    "fine_tune_epochs": 1,
    "min_head_steps": 10,
    "guide_epochs": (2, 1),
    "curve_points": 3,
    "grids": {
        "two_phase_fit": [(1e-2, 1e-4), (3e-3, 1e-3)],
        "keras_guide": [(1e-3, 1e-5), (1e-2, 1e-4)],
        "scratch": [(1e-3,), (3e-3,)],
    },
}


# --------------------------------------------------------------------------
# The plan


def _grids(quick: bool) -> dict[str, list[tuple[float, ...]]]:
    """The K configurations of every arm, the reference first (ties go to it)."""
    from tlrecipes.training import FINE_TUNE_LR, HEAD_LR

    if quick:
        return {arm: list(grid) for arm, grid in QUICK["grids"].items()}
    pairs = list(itertools.product(HEAD_LRS, FINE_TUNE_LRS))
    first = {"two_phase_fit": (HEAD_LR, FINE_TUNE_LR), "keras_guide": GUIDE_RATES}
    grids = {arm: [ref] + [p for p in pairs if p != ref] for arm, ref in first.items()}
    grids["scratch"] = [(lr,) for lr in SCRATCH_LRS]
    return grids


def references() -> dict[str, dict[str, Any]]:
    """The fixed configurations measured untuned: the README call, the guide."""
    from tlrecipes.training import FINE_TUNE_LR, HEAD_LR

    return {
        "readme": {"arm": "two_phase_fit", "rates": [HEAD_LR, FINE_TUNE_LR]},
        "keras_guide_as_written": {"arm": "keras_guide", "rates": list(GUIDE_RATES)},
    }


def _available(task: str) -> tuple[int, str]:
    import numpy as np

    from tlrecipes.lab import get_task

    data = get_task(task).target_data()
    counts = np.bincount(np.asarray(data.y_train).astype(int))
    return int(counts[counts > 0].min()), str(getattr(data, "source", ""))


def make_plan(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Tasks, sizes (clipped to the data), seeds, grids and budgets."""
    from tlrecipes.lab.comparison import min_seeds
    from tlrecipes.training import MIN_HEAD_STEPS

    quick = bool(args.quick)
    tasks = list(args.tasks or (QUICK["tasks"] if quick else TASKS))
    requested = [int(s) for s in (args.sizes or (QUICK["sizes"] if quick else SIZES))]
    val = int(
        args.val_per_class or (QUICK["val_per_class"] if quick else VAL_PER_CLASS)
    )
    sizes, clipped, data = {}, [], {}
    for task in tasks:
        per_class, source = _available(task)
        data[task] = {"per_class": per_class, "data": source}
        most = per_class - val
        if most < 1:
            raise SystemExit(
                f"Task {task!r} holds {per_class} training images per class, not "
                f"enough beside --val-per-class {val}. Fix: a smaller --val-per-class."
            )
        task_sizes = []
        for n in requested:
            if n > most:
                clipped.append(
                    {"task": task, "requested": n, "run": most,
                     "why": f"{source}: {per_class} per class, {val} held out "
                            "for validation"}
                )  # fmt: skip
            task_sizes.append(min(n, most))
        sizes[task] = sorted(set(task_sizes))
    seeds = args.seeds or (QUICK["seeds"] if quick else min_seeds(device))
    if not quick and seeds < min_seeds(device):
        raise SystemExit(
            f"--seeds {seeds} is fewer than the {min_seeds(device)} a comparison "
            f"needs on {device!r}. Fix: --seeds {min_seeds(device)} or more "
            "(--quick for a smoke run)."
        )
    floor = {}
    if args.min_fine_tune_steps:  # only when set: older plans stay resumable
        floor = {"min_fine_tune_steps": int(args.min_fine_tune_steps)}
    grids = _grids(quick)
    budget = {len(g) for g in grids.values()}
    assert len(budget) == 1, f"unequal tuning budgets: {grids}"
    refs = references()
    for name, ref in refs.items():
        if quick:
            continue
        assert tuple(ref["rates"]) in grids[ref["arm"]], name
    return {
        "quick": quick,
        "tasks": tasks,
        "requested_sizes": requested,
        "sizes": sizes,
        "clipped": clipped,
        "available": data,
        "seeds": list(range(int(seeds))),
        "val_per_class": val,
        "batch_size": BATCH_SIZE,
        "fine_tune_epochs": QUICK["fine_tune_epochs"] if quick else FINE_TUNE_EPOCHS,
        **floor,
        "min_head_steps": QUICK["min_head_steps"]
        if quick
        else MIN_HEAD_STEPS,  # "auto"
        "head_epochs": "explicit (quick)" if quick else "auto",
        "guide_epochs": list(QUICK["guide_epochs"] if quick else GUIDE_EPOCHS),
        "curve_points": QUICK["curve_points"] if quick else CURVE_POINTS,
        "grids": {arm: [list(r) for r in g] for arm, g in grids.items()},
        "tuning_budget": budget.pop(),
        "references": refs
        if not quick
        else {
            "readme": {
                "arm": "two_phase_fit",
                "rates": list(grids["two_phase_fit"][0]),
            },
            "keras_guide_as_written": {
                "arm": "keras_guide",
                "rates": list(grids["keras_guide"][0]),
            },
        },  # fmt: skip
    }


def _epochs(plan: dict[str, Any], arm: str, n_train: int) -> dict[str, int]:
    """Epochs of one run: the README call's for two_phase_fit and scratch."""
    spe = max(1, math.ceil(n_train / plan["batch_size"]))
    head = max(1, math.ceil(plan["min_head_steps"] / spe))  # = head_epochs="auto"
    if arm == "keras_guide":
        head, fine = plan["guide_epochs"]
        return {"head": head, "fine_tune": fine, "total": head + fine, "spe": spe}
    fine = plan["fine_tune_epochs"]
    if plan.get("min_fine_tune_steps"):  # the phase-2 floor under test
        fine = max(fine, math.ceil(plan["min_fine_tune_steps"] / spe))
    if arm == "scratch":
        return {"head": 0, "fine_tune": 0, "total": head + fine, "spe": spe}
    return {"head": head, "fine_tune": fine, "total": head + fine, "spe": spe}


def _eval_epochs(total: int, points: int) -> list[int]:
    return sorted({max(1, round(k * total / points)) for k in range(1, points + 1)})


# --------------------------------------------------------------------------
# One (task, size, seed) cell: every configuration of every arm, validation only


def _source(task: str):
    from tlrecipes.lab import load_source_model, train_source_model

    try:
        return load_source_model(task)
    except FileNotFoundError:
        return train_source_model(task)


def build_model(arm: str, source, classes: int, seed: int):
    """The model of an arm, seeded: the README's add_head, or the scratch twin."""
    import keras

    from tlrecipes import add_head
    from tlrecipes.lab.model_copies import fresh_copy

    keras.utils.set_random_seed(seed)
    if arm == "scratch":
        return add_head(fresh_copy(source.base), classes)
    return add_head(source.copy_base(), classes)


def _train(arm, model, rates, x, y, epochs, plan, curve, quick) -> None:
    import keras

    from tlrecipes import two_phase_fit
    from tlrecipes.freezing import unfreeze
    from tlrecipes.heads import find_base

    fit = {"batch_size": plan["batch_size"], "verbose": 0, "callbacks": [curve]}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if arm == "two_phase_fit":  # the README call, rates from the grid
        two_phase_fit(
            model, x, y,
            head_epochs=epochs["head"] if quick else "auto",
            fine_tune_epochs=epochs["fine_tune"],
            head_lr=rates[0], fine_tune_lr=rates[1], **fit,
        )  # fmt: skip
    elif arm == "keras_guide":  # keras.io/guides/transfer_learning, as written
        base = find_base(model)
        base.trainable = False
        model.compile(keras.optimizers.Adam(rates[0]), loss, metrics=["accuracy"])
        model.fit(x, y, epochs=epochs["head"], **fit)
        base.trainable = True
        model.compile(keras.optimizers.Adam(rates[1]), loss, metrics=["accuracy"])
        curve.offset = epochs["head"]
        model.fit(x, y, epochs=epochs["fine_tune"], **fit)
    else:  # the from-scratch twin: every layer trains, BatchNorm included
        unfreeze(model, train_bn=True)
        model.compile(keras.optimizers.Adam(rates[0]), loss, metrics=["accuracy"])
        model.fit(x, y, epochs=epochs["total"], **fit)


def run_cell(task: str, size: int, seed: int, plan: dict, ckpt: str) -> list[dict]:
    """Trains every configuration of every arm; saves best-validation weights.

    Reads no test image: only validation, at `curve_points` points per run.
    """
    import keras
    import numpy as np

    from tlrecipes.lab.array_splits import target_splits
    from tlrecipes.lab.evaluation import LearningCurve

    source = _source(task)
    from tlrecipes.lab import get_task

    splits = target_splits(get_task(task), size, seed, plan["val_per_class"])
    rows = []
    for arm, grid in plan["grids"].items():
        for rates in grid:
            cid = config_id(arm, tuple(rates))
            start = time.perf_counter()
            keras.backend.clear_session()
            model = build_model(arm, source, splits.num_classes, seed)
            epochs = _epochs(plan, arm, len(splits.x_train))
            curve = LearningCurve(
                splits.x_val, splits.y_val,
                _eval_epochs(epochs["total"], plan["curve_points"]),
                epochs["spe"], plan["batch_size"], keep_best=True,
            )  # fmt: skip
            _train(arm, model, rates, splits.x_train, splits.y_train, epochs, plan,
                   curve, plan["quick"])  # fmt: skip
            path = checkpoint_path(ckpt, task, size, seed, arm, cid)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, *curve.best_weights)
            rows.append(
                {
                    "task": task, "size": size, "seed": seed, "arm": arm,
                    "config": cid, "rates": list(rates),
                    "val_accuracy": curve.best_accuracy,
                    "best_step": curve.best_step,
                    "val_curve": curve.accuracy, "curve_steps": curve.steps,
                    "steps": epochs["total"] * epochs["spe"],
                    "epochs": epochs["total"],
                    "n_train": len(splits.x_train), "n_val": len(splits.x_val),
                    "seconds": round(time.perf_counter() - start, 2),
                    "test_accuracy": None, "test_reads": 0,
                }
            )  # fmt: skip
    return rows


def run_cells(
    plan: dict, ckpt: str, workers: int, log, done: list[dict] | None = None,
    commit: str | None = None,
) -> list[dict]:  # fmt: skip
    """Every (task, size, seed) cell not in `done`, in-process or in `workers`.

    Each finished cell's rows are appended to `ckpt/rows.jsonl` (with the
    `commit` that ran them, `provenance()["describe"]`) before the next starts.
    """
    finished = {(r["task"], r["size"], r["seed"]) for r in done or []}
    cells = [
        (task, size, seed)
        for task in plan["tasks"]
        for size in plan["sizes"][task]
        for seed in plan["seeds"]
        if (task, size, seed) not in finished
    ]
    rows: list[dict] = list(done or [])
    if done:
        log(f"{len(finished)} cells done already (saved here by an earlier run, or "
            f"reused), {len(cells)} to run")  # fmt: skip
    start = time.perf_counter()
    if workers <= 1:
        for task, size, seed in cells:
            new = run_cell(task, size, seed, plan, ckpt)
            save_cell(ckpt, new, commit)
            rows += new
            log(f"done {task} {size}/class seed {seed} "
                f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
        return rows
    for task in plan["tasks"]:
        _source(task)  # trained and cached once here, not raced by the workers
    plan_file = Path(ckpt) / PLAN_FILE
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    procs, pending = [], list(cells)
    while pending or procs:
        while pending and len(procs) < workers:
            task, size, seed = pending.pop(0)
            cmd = [sys.executable, __file__, "--cell", task, str(size), str(seed),
                   "--plan-file", str(plan_file), "--checkpoints", ckpt]  # fmt: skip
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
            new = json.loads(out.split("ROWS ", 1)[1])
            save_cell(ckpt, new, commit)
            rows += new
            log(f"done {proc.args[3]} {proc.args[4]}/class seed {proc.args[5]} "
                f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    return rows


# --------------------------------------------------------------------------
# Choices on validation, test read once per final model


class TestReader:
    """Reads the test split of a final model once, and counts every read.

    A second request for the same run returns the stored score without reading
    test again; `reads` counts the actual reads (one per final model). Every
    read is saved in the checkpoints folder: a score read there earlier (by a
    stopped run, or carried from an earlier result) of the same saved weights
    is used instead of a new read, and counted in `carried`.
    """

    def __init__(self, plan: dict, ckpt: str, commit: str | None = None):
        self.plan, self.ckpt, self.commit = plan, ckpt, commit
        self.reads = self.carried = 0
        self._scores = load_test_scores(ckpt)
        self._sources: dict[str, Any] = {}
        self._tests: dict[str, Any] = {}

    def __call__(self, row: dict) -> float:
        if row["test_reads"]:
            return row["test_accuracy"]
        stored = stored_test_score(self.ckpt, self._scores, row)
        if stored is not None:
            for key in ("test_accuracy", "n_test"):
                row[key] = stored[key]
            row["test_reads"], row["test_read_in"] = 1, stored["read_in"]
            self.carried += 1
            return row["test_accuracy"]
        import keras
        import numpy as np

        from tlrecipes.lab import get_task
        from tlrecipes.lab.array_splits import as_array_splits
        from tlrecipes.lab.evaluation import accuracy_of

        task = row["task"]
        if task not in self._sources:
            self._sources[task] = _source(task)
            data = as_array_splits(get_task(task).target_data(), "target", task)
            self._tests[task] = data
        data = self._tests[task]
        keras.backend.clear_session()
        model = build_model(
            row["arm"], self._sources[task], data.num_classes, row["seed"]
        )
        path = checkpoint_path(self.ckpt, task, row["size"], row["seed"], row["arm"],
                               row["config"])  # fmt: skip
        with np.load(path) as stored:
            model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
        row["test_accuracy"] = accuracy_of(model, data.x_test, data.y_test)
        row["test_reads"] += 1
        row["n_test"], row["test_read_in"] = len(data.x_test), self.commit
        self.reads += 1
        save_test_score(self.ckpt, row, self.commit)
        return row["test_accuracy"]


def _by_seed(rows: list[dict], key: str) -> dict[int, float]:
    return {r["seed"]: r[key] for r in rows}


def choose(rows: list[dict], plan: dict) -> dict[str, dict[str, Any]]:
    """Per arm of one (task, size): the configuration picked on validation."""
    from tlrecipes.lab.comparison import pick_best

    out = {}
    for arm, grid in plan["grids"].items():
        ids = [config_id(arm, tuple(r)) for r in grid]
        val = {c: _by_seed([r for r in rows if r["arm"] == arm and r["config"] == c],
                           "val_accuracy") for c in ids}  # fmt: skip
        best = pick_best(val)
        out[arm] = {
            "config": best,
            "chosen_on": "validation",
            "validation_mean": _mean(val[best].values()),
            "validation": val[best],
            "candidates": [
                {"config": c, "validation_mean": _mean(val[c].values())} for c in ids
            ],  # fmt: skip
            "tuned_configurations": len(ids),
        }
    return out


def pooled_choice(rows: list[dict], plan: dict) -> dict[str, Any]:
    """The two_phase_fit grid point with the best validation mean over every cell."""
    from tlrecipes.lab.comparison import pick_best

    cells = sorted({(r["task"], r["size"]) for r in rows})
    index = {cell: i for i, cell in enumerate(cells)}
    ids = [config_id("two_phase_fit", tuple(r)) for r in plan["grids"]["two_phase_fit"]]
    val = {
        c: {index[(r["task"], r["size"])] * 100_000 + r["seed"]: r["val_accuracy"]
            for r in rows if r["arm"] == "two_phase_fit" and r["config"] == c}
        for c in ids
    }  # fmt: skip
    best = pick_best(val)
    return {
        "arm": "two_phase_fit",
        "config": best,
        "chosen_on": "validation, pooled over every task, size and seed",
        "validation_mean": _mean(val[best].values()),
        "candidates": [
            {"config": c, "validation_mean": _mean(val[c].values())} for c in ids
        ],  # fmt: skip
        "tuned_configurations": len(ids),
    }


def _mean(values) -> float:
    values = list(values)
    return round(math.fsum(values) / len(values), 6)


def summarise_cell(rows, plan, pooled, reader, device) -> dict[str, Any]:
    """Choices, test scores of the final models and the comparisons of one cell."""
    from tlrecipes.lab.comparison import check_seeds, compare

    choices = choose(rows, plan)
    finals = {
        "readme": ("two_phase_fit", config_id("two_phase_fit",
                   tuple(plan["references"]["readme"]["rates"]))),
        "keras_guide_as_written": ("keras_guide", config_id("keras_guide",
                   tuple(plan["references"]["keras_guide_as_written"]["rates"]))),
        "two_phase_fit_tuned": ("two_phase_fit", choices["two_phase_fit"]["config"]),
        "keras_guide_tuned": ("keras_guide", choices["keras_guide"]["config"]),
        "scratch_tuned": ("scratch", choices["scratch"]["config"]),
        "defaults_candidate": ("two_phase_fit", pooled["config"]),
    }  # fmt: skip
    test = {}
    for name, (arm, cid) in finals.items():
        sel = [r for r in rows if r["arm"] == arm and r["config"] == cid]
        test[name] = {r["seed"]: reader(r) for r in sel}
    others = [n for n in finals if n != "readme"]
    comparisons = [
        compare(test["readme"], test[n], name_a="readme", name_b=n,
                comparisons=len(others))
        for n in others
    ]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        short = check_seeds(comparisons, device, strict=not plan["quick"])
    first = rows[0]
    return {
        "task": first["task"],
        "size": first["size"],
        "n_train": first["n_train"],
        "n_val": first["n_val"],
        "n_test": next(r["n_test"] for r in rows if r["test_reads"]),
        "choices": choices,
        "final_models": {n: {"arm": a, "config": c} for n, (a, c) in finals.items()},
        "test": {n: {str(s): v for s, v in t.items()} for n, t in test.items()},
        "test_summary": {n: _spread(t.values()) for n, t in test.items()},
        "comparisons": [c.to_dict() | {"points": c.points} for c in comparisons],
        "seed_warning": [str(w.message) for w in caught] if short else [],
    }


def _spread(values) -> dict[str, float]:
    import statistics

    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.mean(values), 4), "std": round(sd, 4)}


# --------------------------------------------------------------------------
# --estimate


def time_sample(task: str, steps: int = 30) -> dict[str, float]:
    """Seconds per training step (head only, whole model), per test image, per run."""
    import keras
    import numpy as np

    from tlrecipes.freezing import unfreeze
    from tlrecipes.heads import find_base
    from tlrecipes.lab import get_task
    from tlrecipes.lab.array_splits import as_array_splits
    from tlrecipes.lab.evaluation import accuracy_of

    source = _source(task)
    data = as_array_splits(get_task(task).target_data(), "target", task)
    n = steps * BATCH_SIZE
    x, y = data.x_train[:n], np.asarray(data.y_train[:n])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    out = {}
    start = time.perf_counter()
    model = build_model("two_phase_fit", source, 5, 0)
    find_base(model).trainable = False
    model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    model.fit(x[:BATCH_SIZE], y[:BATCH_SIZE], epochs=1, verbose=0)
    out["overhead_per_run"] = time.perf_counter() - start
    for name, trainable in (("head_step", False), ("full_step", True)):
        if trainable:
            unfreeze(model)
            model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
            model.fit(x[:BATCH_SIZE], y[:BATCH_SIZE], epochs=1, verbose=0)
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
        out[name] = (time.perf_counter() - t0) / steps
    x_test = data.x_test[:2000]
    accuracy_of(model, x_test[:256], data.y_test[:256])
    t0 = time.perf_counter()
    accuracy_of(model, x_test, data.y_test[:2000])
    out["per_eval_image"] = (time.perf_counter() - t0) / len(x_test)
    out["overhead_per_run"] -= out["head_step"]
    # two_phase_fit's phase 1 trains the head on cached base features: one
    # forward pass over the images, then steps of the head alone.
    from tlrecipes import two_phase_fit

    model = build_model("two_phase_fit", source, 5, 0)
    fit = {"fine_tune_epochs": 0, "batch_size": BATCH_SIZE, "verbose": 0}
    two_phase_fit(model, x, y, head_epochs=1, **fit)  # warm-up
    seconds = []
    for epochs in (1, 6):
        t0 = time.perf_counter()
        two_phase_fit(model, x, y, head_epochs=epochs, **fit)
        seconds.append(time.perf_counter() - t0)
    out["cached_head_step"] = max(0.0, (seconds[1] - seconds[0]) / (5 * steps))
    out["cached_head_call"] = max(0.0, seconds[0] - steps * out["cached_head_step"])
    return {k: round(v, 6) for k, v in out.items()}


def estimate(plan: dict, timing: dict[str, float]) -> dict[str, Any]:
    """Projected seconds of every cell of `plan` from per-step timings."""
    cells, total = [], 0.0
    for task in plan["tasks"]:
        classes = 10 if task == "fashion_to_mnist" else 5
        n_test = {"fashion_a_to_b": 5000, "fashion_to_mnist": 1000}.get(task, 500)
        for size in plan["sizes"][task]:
            n_train, n_val = size * classes, plan["val_per_class"] * classes
            seconds = 0.0
            for arm, grid in plan["grids"].items():
                e = _epochs(plan, arm, n_train)
                head = e["head"] * e["spe"]
                full = e["total"] * e["spe"] - head
                evals = len(_eval_epochs(e["total"], plan["curve_points"])) * n_val
                head_cost = head * timing["head_step"]
                if arm == "two_phase_fit":  # phase 1 on cached features
                    head_cost = (
                        timing["cached_head_call"]
                        + n_train * timing["per_eval_image"]
                        + head * timing["cached_head_step"]
                    )
                run = (
                    timing["overhead_per_run"]
                    + head_cost
                    + full * timing["full_step"]
                    + evals * timing["per_eval_image"]
                )
                seconds += run * len(grid)
            # test reads: at most 6 final models per seed
            seconds += 6 * (
                n_test * timing["per_eval_image"] + timing["overhead_per_run"]
            )
            seconds *= len(plan["seeds"])
            cells.append({"task": task, "size": size, "seconds": round(seconds)})
            total += seconds
    return {"cells": cells, "seconds": round(total), "timing": timing}


# --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run, < 2 min")
    p.add_argument(
        "--estimate",
        action="store_true",
        help="print the projected CPU time of the plan and exit",
    )
    p.add_argument("--tasks", nargs="+", choices=TASKS)
    p.add_argument("--sizes", nargs="+", type=int)
    p.add_argument("--seeds", type=int, help="default: min_seeds(device)")
    p.add_argument("--val-per-class", type=int)
    p.add_argument(
        "--min-fine-tune-steps",
        type=int,
        metavar="N",
        help="a rule under test: phase 2 runs at least N steps (more epochs than "
        "the README call's 10 where those are fewer steps); the scratch twin "
        "gets the same total",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", default=None, help=f"result JSON (default {DEFAULT_OUT})")
    p.add_argument("--markdown", help="also write the evidence table here")
    p.add_argument("--from-json", help="render --markdown from this result, no run")
    p.add_argument(
        "--baseline",
        metavar="RESULT",
        help="with --from-json of a --min-fine-tune-steps run: also compare it, "
        "paired by seed, with this run of the README call as it stands",
    )
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="record a dirty git tree instead of refusing it",
    )
    p.add_argument(
        "--checkpoints",
        help="folder for best-validation weights "
        "(default: a temporary folder, deleted at the end)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the run of the same plan saved in --checkpoints",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing --out / --markdown file",
    )
    p.add_argument(
        "--reuse-cells",
        nargs="+",
        metavar="FOLDER",
        help="copy the finished cells of these --checkpoints folders (same "
        "per-cell settings; under --min-fine-tune-steps, the cells the floor "
        "leaves unchanged) instead of training them again",
    )
    p.add_argument(
        "--test-scores-from",
        metavar="RESULT",
        help="carry the test scores this earlier result read of the same final "
        "models instead of reading test again",
    )
    p.add_argument("--cell", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--plan-file", help=argparse.SUPPRESS)
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cell:
        plan = json.loads(Path(args.plan_file).read_text())
        task, size, seed = args.cell[0], int(args.cell[1]), int(args.cell[2])
        print("ROWS " + json.dumps(run_cell(task, size, seed, plan, args.checkpoints)))
        return 0
    if args.from_json:
        if not args.markdown:
            raise SystemExit("--from-json needs --markdown PATH.")
        if Path(args.markdown).exists() and not args.force:
            raise SystemExit(
                f"{args.markdown} exists. Fix: another --markdown, or --force to "
                "replace it."
            )
        result = json.loads(Path(args.from_json).read_text())
        text = render_markdown(result)
        if args.baseline:
            plain = json.loads(Path(args.baseline).read_text())
            text += "\n\n" + render_rule_table(result, plain)
        Path(args.markdown).write_text(text + "\n")
        print(f"-> {args.markdown}")
        return 0
    from tlrecipes.lab.record import device_description, provenance

    device = device_description()
    plan = make_plan(args, device)
    if args.estimate:
        timing = time_sample(plan["tasks"][0])
        est = estimate(plan, timing)
        for c in est["cells"]:
            print(f"{c['task']:17s} {c['size']:5d}/class {c['seconds'] / 60:8.1f} min")
        runs = sum(len(plan["sizes"][t]) for t in plan["tasks"]) * len(plan["seeds"])
        runs *= sum(len(g) for g in plan["grids"].values())
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"timing sample on {device}, load average {load:.1f}: {timing}")
        clipped = [(c["task"], c["requested"], c["run"]) for c in plan["clipped"]]
        print(
            f"{runs} training runs, projected {est['seconds'] / 60:.0f} min "
            f"({est['seconds'] / 3600:.1f} CPU hours) in one process, "
            f"{len(plan['seeds'])} seeds; sizes clipped: {clipped}"
        )
        return 0
    out = Path(args.out or DEFAULT_OUT)
    for path in (out, Path(args.markdown) if args.markdown else None):
        if path is not None and path.exists() and not args.force:
            raise SystemExit(
                f"{path} exists and would be overwritten at the end of the run. "
                "Fix: another --out / --markdown, or --force to replace it."
            )
    if args.resume and not args.checkpoints:
        raise SystemExit(
            "--resume needs --checkpoints FOLDER: the folder of the run to go on with."
        )
    start = time.perf_counter()
    record = provenance(
        {k: plan.get(k) for k in ("tasks", "sizes", "seeds", "val_per_class",
                                  "grids", "fine_tune_epochs", "min_fine_tune_steps",
                                  "guide_epochs", "curve_points", "quick", "clipped")},
        allow_dirty=args.allow_dirty or plan["quick"],
    )  # fmt: skip
    log = print
    log(f"choose_defaults: {record['describe']} on {device}; {plan['tasks']}, "
        f"sizes {plan['sizes']}, {len(plan['seeds'])} seeds, budget "
        f"{plan['tuning_budget']} configurations per arm")  # fmt: skip
    ckpt = args.checkpoints or tempfile.mkdtemp(prefix="choose-defaults-")
    done = open_checkpoints(ckpt, plan, args.resume)
    reused = {"cells_from": args.reuse_cells or [], "runs": 0,
              "test_scores_from": args.test_scores_from, "test_scores": 0}  # fmt: skip
    try:
        for folder in args.reuse_cells or []:
            new = reuse_cells(folder, ckpt, plan, done, epochs_of=_epochs)
            reused["runs"] += len(new)
            done += new
            log(f"reused {len(new)} runs from {folder}")
        if args.test_scores_from:
            reused["test_scores"] = carry_test_scores(
                args.test_scores_from, ckpt, plan, done
            )
        rows = run_cells(plan, ckpt, args.workers, log, done, record["describe"])
        pooled = pooled_choice(rows, plan)
        reader = TestReader(plan, ckpt, record["describe"])
        cells = []
        for task in plan["tasks"]:
            for size in plan["sizes"][task]:
                sel = [r for r in rows if r["task"] == task and r["size"] == size]
                cells.append(summarise_cell(sel, plan, pooled, reader, device))
    finally:
        if not args.checkpoints:
            shutil.rmtree(ckpt, ignore_errors=True)
    seconds = time.perf_counter() - start
    result = {
        "what": "two_phase_fit's defaults (the README call) vs a tuned grid, the "
        "Keras guide and a tuned scratch twin, under the validation protocol",
        "protocol": "choices on validation (pick_best); test read once per final "
        "model on its best-validation weights; compare() paired by seed, "
        "Bonferroni over each cell's family",
        "quick": plan["quick"],
        "seconds": round(seconds, 1),
        "workers": args.workers,
        "provenance": record,
        "cells_run_at": sorted({str(r.get("commit")) for r in rows}),
        "plan": plan,
        "arms": {
            arm: {
                "configurations": [config_id(arm, tuple(r)) for r in grid],
                "tuned_configurations": len(grid),
            }
            for arm, grid in plan["grids"].items()
        },  # fmt: skip
        "defaults_candidate": pooled,
        "reused": reused,
        "test_reads": {
            "reads": reader.reads,
            "carried": reader.carried,
            "final_models": sum(r["test_reads"] for r in rows),
            "runs": len(rows),
        },
        "cells": cells,
        "runs": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(result) + "\n")
    for cell in cells:
        for c in cell["comparisons"]:
            log(f"{cell['task']:17s} {cell['size']:5d}/class {c['name']:42s} "
                f"{c['points']} -> {c['verdict']}")  # fmt: skip
    log(f"{len(rows)} runs, {reader.reads} test reads in {seconds:.0f} s on "
        f"{device} -> {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
