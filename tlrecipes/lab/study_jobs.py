"""The study's cells, run in this process or in parallel worker processes.

A cell is one (task, size, seed): every strategy of the study trained
against its from-scratch twin with `size_sweep`, its finished runs stored in
`<out>/runs/<task>-n<size>-seed<seed>.jsonl` so that an interrupted study
resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import traceback
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

__all__ = ["run_jobs", "store_path"]


def store_path(out: Path, task: str, size: int, seed: int) -> Path:
    """The `ResultStore` file of one (task, size, seed) cell."""
    return out / "runs" / f"{task}-n{size}-seed{seed}.jsonl"


def _open_store(path: Path) -> Any:
    from tlrecipes.lab.results import ResultStore

    return ResultStore(path)


def _run_cell(
    source: Any,
    task: str,
    size: int,
    seed: int,
    strategies: Sequence[str],
    config: dict[str, Any],
    store: Any,
) -> tuple[list[dict[str, Any]], int]:
    """Runs (or reuses) the strategies of one task, size and seed."""
    from tlrecipes.lab.configs import TrainConfig
    from tlrecipes.lab.experiments import size_sweep

    before = len(store)
    rows = size_sweep(
        source,
        task,
        sizes=[size],
        seeds=[seed],
        strategies=list(strategies),
        config=TrainConfig(**config),
        store=store,
        progress=False,
    )
    for row in rows:
        row["task"] = task
    return rows, len(store) - before


def _job(job: dict[str, Any]) -> dict[str, Any]:
    """One (task, size, seed) in a worker process; top level for `spawn`."""
    warnings.filterwarnings("ignore", category=UserWarning)
    from tlrecipes.lab.sources import load_source_model

    source = load_source_model(job["source_path"])
    store = _open_store(Path(job["store"]))
    rows, trained = _run_cell(
        source,
        job["task"],
        job["size"],
        job["seed"],
        job["strategies"],
        job["config"],
        store,
    )
    return {"rows": rows, "trained": trained}


def run_jobs(
    jobs: list[dict[str, Any]], sources: dict[str, Any], workers: int, progress: bool
) -> tuple[list[dict[str, Any]], int]:
    """Runs every cell, in this process or in `workers` processes; (rows, trained)."""
    from tqdm.auto import tqdm

    total = sum(len(job["strategies"]) for job in jobs)
    bar = tqdm(total=total, desc="study", unit="run", disable=not progress)
    rows: list[dict[str, Any]] = []
    trained = 0
    if workers <= 1:
        for job in jobs:
            store = _open_store(Path(job["store"]))
            for strategy in job["strategies"]:
                bar.set_postfix_str(
                    f"{job['task']} n={job['size']} seed={job['seed']} {strategy}"
                )
                cell, new = _run_cell(
                    sources[job["task"]],
                    job["task"],
                    job["size"],
                    job["seed"],
                    [strategy],
                    job["config"],
                    store,
                )
                rows += cell
                trained += new
                bar.update(1)
        bar.close()
        return rows, trained
    context = multiprocessing.get_context("spawn")
    failures = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_job, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
                rows += result["rows"]
                trained += result["trained"]
            except Exception:  # noqa: BLE001 - the others go on; reported below
                failures.append((job, traceback.format_exc()))
            bar.update(len(job["strategies"]))
            bar.set_postfix(trained=trained, failed=len(failures))
    bar.close()
    if failures:
        for job, text in failures:
            print(f"FAILED {job['task']} n={job['size']} seed={job['seed']}:\n{text}")
        raise RuntimeError(
            f"{len(failures)} of {len(jobs)} jobs failed (see above); finished "
            "runs are stored: re-run the same command to resume."
        )
    order = {(j["task"], j["size"], j["seed"]): i for i, j in enumerate(jobs)}
    rows.sort(key=lambda r: order[(r["task"], r["n_per_class"], r["seed"])])
    return rows, trained
