"""What `two_phase_fit` costs over the Keras guide's hand-written two-phase code.

Both sides train the same model (the shipped fashion_a_to_b source base with a
new head) on the same data for the same epochs and batch size: the guide's
code (freeze, compile, fit, unfreeze with BatchNorm kept frozen, compile at
the low rate, fit), and `two_phase_fit` with an explicit `head_epochs` (not
the default `"auto"`) so that it runs exactly the same epochs. Both compile
`SparseCategoricalCrossentropy(from_logits=True)`: `add_head` outputs logits.
The helper is timed twice: with `cache_features=False` it does exactly the
hand-written work (the base runs on every batch), so the ratio of the two is
the helper's own cost, the number the target is about; with its default
`cache_features="auto"`, phase 1 trains the head on features computed once
(what a user gets by default), reported beside it. Runs rotate (hand, helper,
helper cached, hand, ...) so that machine noise hits all three. Two summaries
of the same runs are printed and saved: the ratio of the medians, and the
median of the per-round ratios (each helper run against the hand-written run
just before it), which a slow drift of the machine's speed moves less.

    python benchmarks/bench_two_phase_overhead.py            # 7 pairs
    python benchmarks/bench_two_phase_overhead.py --quick    # 2 pairs, fewer images

Target (issue 8): the helper costs at most 5% more wall time.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--per-class", type=int, default=None)
    parser.add_argument(
        "--out",
        default=None,
        help="default: benchmarks/results/two_phase_overhead_<backend>.json",
    )
    args = parser.parse_args(argv)
    pairs = args.pairs or (2 if args.quick else 7)
    per_class = args.per_class or (40 if args.quick else 400)

    import keras

    from tlrecipes import add_head, two_phase_fit
    from tlrecipes.freezing import is_batchnorm
    from tlrecipes.lab import get_task, load_source_model

    head_epochs, fine_tune_epochs, batch_size = 3, 3, 32
    source = load_source_model("fashion_a_to_b")
    data = get_task("fashion_a_to_b").target_subset(per_class, seed=0)
    x = data.x_train.astype("float32") / 255.0
    y = data.y_train

    def fresh() -> keras.Model:
        keras.utils.set_random_seed(0)
        return add_head(source.copy_base(), 5)

    def hand_written(model: keras.Model) -> None:
        base = model.get_layer("convnet")
        base.trainable = False
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(x, y, epochs=head_epochs, batch_size=batch_size, verbose=0)
        base.trainable = True
        for layer in base.layers:
            if is_batchnorm(layer):
                layer.trainable = False
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(
            x,
            y,
            epochs=head_epochs + fine_tune_epochs,
            initial_epoch=head_epochs,
            batch_size=batch_size,
            verbose=0,
        )

    def helper(model: keras.Model, cache_features="auto") -> None:
        two_phase_fit(
            model,
            x,
            y,
            head_epochs=head_epochs,
            fine_tune_epochs=fine_tune_epochs,
            head_lr=1e-2,
            fine_tune_lr=1e-4,
            batch_size=batch_size,
            cache_features=cache_features,
            verbose=0,
        )

    sides = {
        "hand_written": hand_written,
        "two_phase_fit": lambda model: helper(model, cache_features=False),
        "two_phase_fit_cached": helper,
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for fn in sides.values():  # warm-up: first-call costs land on no side
        fn(fresh())
    for _ in range(pairs):
        for name, fn in sides.items():
            model = fresh()
            start = time.perf_counter()
            fn(model)
            times[name].append(time.perf_counter() - start)
            keras.backend.clear_session(free_memory=False)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["two_phase_fit"] / med["hand_written"]
    cached_ratio = med["two_phase_fit_cached"] / med["hand_written"]
    paired = statistics.median(
        h / w for h, w in zip(times["two_phase_fit"], times["hand_written"])
    )
    paired_cached = statistics.median(
        h / w for h, w in zip(times["two_phase_fit_cached"], times["hand_written"])
    )
    result = {
        "benchmark": "two_phase_fit vs the Keras guide's hand-written two phases",
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "backend": keras.backend.backend(),
        "images": int(len(x)),
        "epochs": [head_epochs, fine_tune_epochs],
        "pairs": pairs,
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "two_phase_fit": "cache_features=False: the same work as the hand-written code",
        "two_phase_fit_cached": "the default cache_features='auto' (phase 1 on "
        "features computed once)",
        "ratio_two_phase_fit_to_hand_written": round(ratio, 4),
        "ratio_two_phase_fit_cached_to_hand_written": round(cached_ratio, 4),
        "median_paired_ratio_two_phase_fit": round(paired, 4),
        "median_paired_ratio_two_phase_fit_cached": round(paired_cached, 4),
        "target_ratio": 1.05,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if args.out is None:
        backend = keras.backend.backend()
        args.out = f"benchmarks/results/two_phase_overhead_{backend}.json"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"hand-written {med['hand_written']:.2f} s, two_phase_fit "
        f"{med['two_phase_fit']:.2f} s, with cached features "
        f"{med['two_phase_fit_cached']:.2f} s (medians of {pairs}); ratio "
        f"{ratio:.3f} (median of per-round ratios {paired:.3f}; target <= 1.05), "
        f"cached {cached_ratio:.3f} ({paired_cached:.3f}), on "
        f"{result['machine']}, {result['backend']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
