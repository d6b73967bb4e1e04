"""Feature caching vs running the frozen base every epoch (issue 8).

Both sides train the same new head on the same frozen base (the shipped
fashion_a_to_b source model's base, `load_source_model`, falling back to
`train_source_model`) with the same data, epochs, batch size and seed:
`two_phase_fit(..., fine_tune_epochs=0, cache_features=False)` runs the base
on every batch of every epoch; `cache_features=True` runs it once and trains
the head on the stored features. Runs alternate (uncached, cached, ...) so
machine noise hits both; the ratio of the median training times is printed
and saved, with the final test accuracy of each side (the full model,
evaluated on the task's whole test split, outside the timed part).

Settings measured, each side by side in the same process:

- 10, 100 and 1000 images per class, exactly 10 head epochs
  (`head_epochs=10`);
- 10 images per class with the default `head_epochs="auto"` (at least
  `MIN_HEAD_STEPS` = 200 steps: 100 epochs of 2 steps, what `two_phase_fit`
  runs by default on 50 images).

With 50 images an epoch is 2 steps: Keras's fixed cost per epoch (data
iterator, callbacks) and per fit (tracing/compiling the train step) are most
of the time on both sides, so the ratio grows with the number of images. The
backend is `KERAS_BACKEND` (results are saved per backend).

    python benchmarks/bench_feature_cache.py            # 5 pairs per setting
    python benchmarks/bench_feature_cache.py --quick    # 2 pairs, small sets

Target (issue 8): >= 5x faster for 10 head epochs, final accuracy within 0.5
points.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def _source(task: str):
    from tlrecipes.lab import load_source_model, train_source_model

    try:
        return load_source_model(task), "load_source_model"
    except (FileNotFoundError, LookupError, ValueError):
        return train_source_model(task), "train_source_model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    pairs = args.pairs or (2 if args.quick else 5)

    import keras
    import numpy as np

    from tlrecipes import add_head, two_phase_fit
    from tlrecipes.lab import get_task

    task_name = "fashion_a_to_b"
    source, how = _source(task_name)
    task = get_task(task_name)
    settings = [  # (images per class, head epochs: a number or "auto")
        (10, 10),
        (10, "auto"),
        (100, 10),
        (1000, 10),
    ]
    if args.quick:
        settings = [(10, 10), (10, "auto")]

    def run_once(x, y, x_test, y_test, epochs, cache):
        keras.utils.set_random_seed(0)
        model = add_head(source.copy_base(), 5)
        start = time.perf_counter()
        hist = two_phase_fit(
            model,
            x,
            y,
            head_epochs=epochs,
            fine_tune_epochs=0,
            batch_size=32,
            seed=0,
            cache_features=cache,
            verbose=0,
        )
        seconds = time.perf_counter() - start
        assert hist.features_cached is cache, hist.feature_cache_note
        accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]
        keras.backend.clear_session(free_memory=False)
        return seconds, float(accuracy), hist.phase_epochs["head"]

    rows = []
    for per_class, epochs in settings:
        data = task.target_subset(per_class, seed=0)
        x = data.x_train.astype("float32") / 255.0
        y = data.y_train
        x_test = data.x_test.astype("float32") / 255.0
        y_test = data.y_test
        if args.quick:
            x_test, y_test = x_test[:500], y_test[:500]
        run_once(x, y, x_test, y_test, epochs, False)  # warm-up
        run_once(x, y, x_test, y_test, epochs, True)
        times = {"uncached": [], "cached": []}
        acc = {"uncached": [], "cached": []}
        ran = 0
        for _ in range(pairs):
            for name, cache in (("uncached", False), ("cached", True)):
                seconds, accuracy, ran = run_once(x, y, x_test, y_test, epochs, cache)
                times[name].append(seconds)
                acc[name].append(accuracy)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "images_per_class": per_class,
            "train_images": int(len(x)),
            "head_epochs_asked": epochs,
            "head_epochs_run": ran,
            "steps_per_epoch": int(np.ceil(len(x) / 32)),
            "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "median_seconds": {k: round(v, 3) for k, v in med.items()},
            "speedup_cached": round(med["uncached"] / med["cached"], 2),
            "test_accuracy": {k: round(float(np.mean(v)), 4) for k, v in acc.items()},
            "test_images": int(len(x_test)),
            "accuracy_gap_points": round(
                100
                * abs(float(np.mean(acc["cached"])) - float(np.mean(acc["uncached"]))),
                3,
            ),
        }
        rows.append(row)
        print(
            f"{per_class:>4}/class, {ran:>3} head epochs: uncached "
            f"{med['uncached']:.2f} s, cached {med['cached']:.2f} s -> "
            f"{row['speedup_cached']:.2f}x faster; test accuracy "
            f"{row['test_accuracy']['uncached']:.4f} vs "
            f"{row['test_accuracy']['cached']:.4f}",
            flush=True,
        )
    result = {
        "benchmark": "feature caching vs running the frozen base every epoch",
        "task": task_name,
        "base": f"shipped source model of {task_name} ({how}), its 'convnet' base",
        "machine": _machine(),
        "backend": keras.backend.backend(),
        "timed": "two_phase_fit only (phase 1), feature extraction included; "
        "test-set evaluation excluded",
        "pairs": pairs,
        "rows": rows,
        "target": ">= 5x faster for 10 head epochs, accuracy within 0.5 points",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if args.out is None:
        args.out = f"benchmarks/results/feature_cache_{keras.backend.backend()}.json"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


def _machine() -> str:
    from tlrecipes.precision import accelerator

    kind = accelerator()[0]
    device = "no GPU" if kind == "cpu" else kind.upper()
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {device}"


if __name__ == "__main__":
    sys.exit(main())
