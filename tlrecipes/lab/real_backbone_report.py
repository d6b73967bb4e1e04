"""The real-backbone report: ImageNet EfficientNet-Lite0 to Fashion-MNIST and MNIST.

For each real-backbone task (`REAL_BACKBONE_TASKS`) it measures, with the
lab's protocol (choices on validation, test read once per final model, arms
paired by seed through `compare`):

- the similarity of the target to ImageNet: the linear probe on frozen
  ImageNet features against the same probe on a random-init twin whose
  BatchNorm statistics are calibrated on the target (`linear_probe_similarity`),
  at the largest size;
- the arms per size (`run_arms`): feature extractor (linear head on frozen
  cached features), random-init probe and, when `scratch`, the from-scratch
  twin of the backbone.

`run_real_backbone_report` writes `REPORT.md` and `results.json` (with
provenance: commit, backend, device, versions, settings).
`benchmarks/real_backbone_report.py` is its command line, and
`tlrecipes study --real-backbone` adds it to the study.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "real_backbone_settings",
    "run_real_backbone_report",
    "similarity_lines",
    "key_numbers",
    "report_section",
]


def real_backbone_settings(
    *,
    tasks: Sequence[str] | None = None,
    sizes: Sequence[int] = (10, 100),
    seeds: int = 5,
    size: int = 96,
    val_per_class: int = 20,
    test_per_class: int | None = 200,
    scratch: bool = False,
    epochs: int = 10,
    quick: bool = False,
) -> dict[str, Any]:
    """The report's settings: what is measured, at what budget.

    Args:
        tasks: Task names. Defaults to None: `REAL_BACKBONE_TASKS`.
        sizes: Training images per class. Defaults to `(10, 100)`.
        seeds: Number of seeds (0, 1, ...). Defaults to 5.
        size: Input side in pixels. Defaults to 96.
        val_per_class: Validation images per class. Defaults to 20.
        test_per_class: Fixed test sample per class; None for the whole test
            split. Defaults to 200.
        scratch: Also train the from-scratch twin (hours on a CPU). Defaults
            to False.
        epochs: Scratch epochs per learning rate. Defaults to 10.
        quick: A smoke run (last task, 2 per class, 2 seeds, 32 px). Defaults
            to False.

    Returns:
        A JSON-ready dict.

    Example:

    >>> real_backbone_settings(quick=True)["sizes"]
    [2]
    """
    from tlrecipes.lab.real_backbone import C_GRID, LR_GRID, REAL_BACKBONE_TASKS

    settings = {
        "tasks": list(tasks or REAL_BACKBONE_TASKS),
        "sizes": [int(n) for n in sizes],
        "seeds": list(range(int(seeds))),
        "size": int(size),
        "val_per_class": int(val_per_class),
        "test_per_class": test_per_class or None,
        "scratch": bool(scratch),
        "epochs": int(epochs),
        "c_grid": list(C_GRID),
        "lr_grid": list(LR_GRID),
        "quick": bool(quick),
    }
    if quick:
        settings.update(
            tasks=settings["tasks"][-1:],
            sizes=[2],
            seeds=[0, 1],
            size=32,
            val_per_class=2,
            test_per_class=3,
            epochs=1,
            c_grid=[1.0],
            lr_grid=[1e-3],
        )
    return settings


def _table(comparisons: list[dict]) -> list[str]:
    lines = [
        "| comparison | mean (points) | interval (level) | seeds | verdict |",
        "|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c['name']} | {100 * c['mean']:+.1f} | {100 * c['low']:+.1f} to "
            f"{100 * c['high']:+.1f} ({100 * c['level']:.1f}%) | {c['n']} | "
            f"{c['verdict']} |"
        )
    return lines


def _mean(scores: dict) -> str:
    values = [r["test_accuracy"] for r in scores.values()]
    return f"{100 * sum(values) / len(values):.1f}%"


def _classes(task: str) -> tuple[str, ...]:
    from tlrecipes.lab.tasks import get_task

    return get_task(task).target_classes


def _markdown(record: dict, results: dict, seconds: float) -> str:
    from tlrecipes.lab.real_backbone import CALIBRATION_IMAGES
    from tlrecipes.lab.record import header_line

    s = record["settings"]
    lines = [
        "# Real-backbone transfer: ImageNet EfficientNet-Lite0",
        "",
        header_line(record, duration=seconds),
        "",
        f"Input {s['size']}x{s['size']} RGB (grayscale copied), validation "
        f"{s['val_per_class']} per class from the training split, test "
        f"{s['test_per_class'] or 'all'} per class, or the whole test split "
        "where a class holds fewer (fixed sample, read once per "
        f"final model), seeds {s['seeds']}. Tuning budget per arm: "
        f"{len(s['c_grid'])} configurations chosen on validation (probe: C in "
        f"{s['c_grid']}; scratch: Adam lr in {s['lr_grid']}, {s['epochs']} "
        "epochs, best-validation epoch). The duration counts features read "
        "from the on-disk cache where an earlier run computed them "
        "(`$TLRECIPES_FEATURE_CACHE`); a first run also extracts them.",
    ]
    if s["quick"]:
        lines += ["", "**Quick smoke run: these numbers mean nothing.**"]
    for name, task in results.items():
        sim = task["similarity"]
        lines += [
            "",
            f"## {name}",
            "",
            f"Test images: {task.get('n_test', '?')}.",
            "",
            f"Similarity to ImageNet (linear probe, {sim['n_per_class']} per class): "
            f"ImageNet features {_mean(sim['imagenet'])}, random-init twin "
            f"{_mean(sim['random_init'])}.",
            "",
            *_table([sim["comparison"]]),
        ]
        lines += [
            "",
            "The random-init twin's BatchNormalization statistics are estimated "
            "on each seed's training images (at most "
            f"{CALIBRATION_IMAGES}, `calibrate_batchnorm`) before its features "
            "are read; without that its pooled features vanish (about 1e-12, "
            "measured 2026-12-04) "
            "and its probe sits at chance.",
        ]
        chance = 1.0 / len(_classes(name))
        random_scores = [r["test_accuracy"] for r in sim["random_init"].values()]
        if max(random_scores) <= chance + 0.01:
            lines += [
                "",
                "Caveat: the random-init twin's probe is still at chance here "
                f"(best seed {100 * max(random_scores):.1f}%, chance "
                f"{100 * chance:.1f}%): read the difference as an upper bound on "
                "what ImageNet adds.",
            ]
        if not s["scratch"]:
            lines += [
                "",
                "The from-scratch twin was not run here (`--no-scratch`): on these "
                "2 shared CPU cores it trains at about 38 images/s at 96 px, which "
                "puts its full budget (4 rates x 10 epochs x 5 seeds) at hours.",
            ]
        for n, cell in task["arms"]["sizes"].items():
            means = ", ".join(f"{a} {_mean(r)}" for a, r in cell["arms"].items())
            lines += ["", f"### {n} per class", "", f"Test accuracy: {means}.", ""]
            lines += _table(cell["comparisons"])
    return "\n".join(lines) + "\n"


def _n_test(task: str, settings: dict[str, Any]) -> int:
    from tlrecipes.lab.real_backbone import task_splits

    _, _, (_, y_test) = task_splits(
        task,
        min(settings["sizes"]),
        0,
        val_per_class=settings["val_per_class"],
        test_per_class=settings["test_per_class"],
    )
    return len(y_test)


def similarity_lines(results: dict[str, Any]) -> list[str]:
    """One markdown line per task: its similarity to ImageNet, measured.

    Args:
        results: The `results` of `run_real_backbone_report`.

    Returns:
        Lines naming the linear-probe accuracies on ImageNet and calibrated
        random-init features and their paired difference with its interval
        and verdict.

    Example:

    >>> similarity_lines({})
    []
    """
    lines = []
    for name, task in results.items():
        sim = task["similarity"]
        c = sim["comparison"]
        lines.append(
            f"- **{name}**: linear probe at {sim['n_per_class']} per class, "
            f"ImageNet features {_mean(sim['imagenet'])} vs calibrated random-init "
            f"twin {_mean(sim['random_init'])}: {100 * c['mean']:+.1f} points "
            f"({100 * c['low']:+.1f} to {100 * c['high']:+.1f}, "
            f"{c['n']} seeds) -> {c['verdict']}."
        )
    return lines


def run_real_backbone_report(
    out: str | Path,
    settings: dict[str, Any] | None = None,
    *,
    cache_dir: str | Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Measures the real-backbone tasks and writes `REPORT.md` and `results.json`.

    Args:
        out: Output folder (created; its `REPORT.md` and `results.json` are
            replaced, other files kept).
        settings: From `real_backbone_settings`. Defaults to None: its
            defaults.
        cache_dir: Feature cache folder. Defaults to None:
            `$TLRECIPES_FEATURE_CACHE` or the user cache.
        log: Called with a progress line per task. Defaults to `print`.

    Returns:
        The payload written to `results.json`: provenance, seconds, results.

    Example:

    >>> import tempfile  # doctest: +SKIP
    >>> run_real_backbone_report(tempfile.mkdtemp(),
    ...                          real_backbone_settings(quick=True))  # doctest: +SKIP
    """
    from tlrecipes.lab.real_backbone import linear_probe_similarity
    from tlrecipes.lab.real_backbone_arms import run_arms
    from tlrecipes.lab.record import provenance

    start = time.perf_counter()
    settings = settings or real_backbone_settings()
    record = provenance(settings)
    common = {
        "seeds": settings["seeds"],
        "size": settings["size"],
        "val_per_class": settings["val_per_class"],
        "test_per_class": settings["test_per_class"],
        "cache_dir": cache_dir,
        "c_grid": settings["c_grid"],
    }
    results = {}
    for task in settings["tasks"]:
        similarity = linear_probe_similarity(
            task, n_per_class=max(settings["sizes"]), **common
        )
        arms = run_arms(
            task,
            sizes=settings["sizes"],
            scratch=settings["scratch"],
            epochs=settings["epochs"],
            lr_grid=settings["lr_grid"],
            **common,
        )
        results[task] = {
            "similarity": similarity,
            "arms": arms,
            "n_test": _n_test(task, settings),
        }
        log(f"{task}: done after {time.perf_counter() - start:.0f} s")
    seconds = time.perf_counter() - start
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"provenance": record, "seconds": seconds, "results": results}
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=str))
    (out / "REPORT.md").write_text(_markdown(record, results, seconds))
    return payload


def key_numbers(payload: dict[str, Any], report: str) -> dict[str, Any]:
    """What another report keeps of a real-backbone run: settings and comparisons.

    Args:
        payload: What `run_real_backbone_report` returned.
        report: The path of its REPORT.md, relative to the including report.

    Returns:
        A JSON-ready dict for `report_section`.

    Example:

    >>> key_numbers({"provenance": {"settings": {}}, "seconds": 2.0,
    ...              "results": {}}, "rb/REPORT.md")["report"]
    'rb/REPORT.md'
    """
    results = payload["results"]
    return {
        "report": report,
        "settings": payload["provenance"]["settings"],
        "seconds": round(payload["seconds"], 1),
        "similarity": {task: r["similarity"] for task, r in results.items()},
        "feature_extractor": {
            task: {n: cell["comparisons"] for n, cell in r["arms"]["sizes"].items()}
            for task, r in results.items()
        },
    }


def report_section(real: dict[str, Any]) -> list[str]:
    """Markdown lines for a report that includes the real-backbone cases.

    Args:
        real: From `key_numbers`.

    Returns:
        A "Real backbone" section: each target's similarity to ImageNet and
        the frozen-feature arm against the random-init probe per size, with
        intervals and verdicts, and a link to the full report.

    Example:

    >>> report_section({"settings": real_backbone_settings(quick=True),
    ...                 "similarity": {}, "feature_extractor": {},
    ...                 "report": "real_backbone/REPORT.md", "seconds": 1.0})[0]
    '## Real backbone: ImageNet EfficientNet-Lite0'
    """
    settings = real["settings"]
    lines = [
        "## Real backbone: ImageNet EfficientNet-Lite0",
        "",
        f"The same protocol on an ImageNet backbone ({settings['size']} px, grayscale "
        f"copied to RGB, {len(settings['seeds'])} seeds, validation "
        f"{settings['val_per_class']} per class). How similar each target is to "
        "ImageNet, measured as the linear-probe accuracy on frozen ImageNet "
        "features against the same probe on a random-init twin whose BatchNorm "
        "statistics are estimated on the target:",
        "",
        *similarity_lines(
            {task: {"similarity": sim} for task, sim in real["similarity"].items()}
        ),
        "",
        "Feature extractor (linear head on frozen ImageNet features) against the "
        "random-init probe, per size:",
        "",
    ]
    for task, sizes in real["feature_extractor"].items():
        for n, comparisons in sizes.items():
            for c in comparisons:
                lines.append(
                    f"- {task}, {n} per class: {c['name']} {100 * c['mean']:+.1f} "
                    f"points ({100 * c['low']:+.1f} to {100 * c['high']:+.1f}, "
                    f"{c['n']} seeds) -> {c['verdict']}."
                )
    lines += [
        "",
        "Full tables: "
        f"[{real['report']}]({real['report']}) ({real['seconds']:.0f} s here)."
        + (
            ""
            if settings["scratch"]
            else " Fine-tuning and the from-scratch twin of this backbone are not "
            "run here: on a 2-core CPU they cost hours."
        ),
        "",
    ]
    return lines
