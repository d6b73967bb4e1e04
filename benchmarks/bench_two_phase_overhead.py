"""What `two_phase_fit` costs over the Keras guide's hand-written two-phase code.

Both sides train the same model (the shipped fashion_a_to_b source base with a
new head) on the same data for the same epochs and batch size: the guide's
code (freeze, compile, fit, unfreeze with BatchNorm kept frozen, compile at
the low rate, fit), and `two_phase_fit` with `min_head_steps=0` so that it runs
exactly the same epochs. Runs alternate (hand, helper, hand, ...) so that
machine noise hits both; the ratio of the medians is printed and saved.

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
        "--out", default="benchmarks/results/two_phase_overhead.json"
    )
    args = parser.parse_args(argv)
    pairs = args.pairs or (2 if args.quick else 7)
    per_class = args.per_class or (40 if args.quick else 400)

    import keras

    from tlrecipes import add_head, load_source_model, two_phase_fit
    from tlrecipes.freezing import is_batchnorm
    from tlrecipes.tasks import get_task

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
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(x, y, epochs=head_epochs, batch_size=batch_size, verbose=0)
        base.trainable = True
        for layer in base.layers:
            if is_batchnorm(layer):
                layer.trainable = False
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss="sparse_categorical_crossentropy",
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

    def helper(model: keras.Model) -> None:
        two_phase_fit(
            model,
            x,
            y,
            head_epochs=head_epochs,
            fine_tune_epochs=fine_tune_epochs,
            head_lr=1e-2,
            fine_tune_lr=1e-4,
            min_head_steps=0,
            batch_size=batch_size,
            verbose=0,
        )

    times: dict[str, list[float]] = {"hand_written": [], "two_phase_fit": []}
    hand_written(fresh())  # warm-up: first-call costs land on neither side
    helper(fresh())
    for _ in range(pairs):
        for name, fn in (("hand_written", hand_written), ("two_phase_fit", helper)):
            model = fresh()
            start = time.perf_counter()
            fn(model)
            times[name].append(time.perf_counter() - start)
            keras.backend.clear_session(free_memory=False)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["two_phase_fit"] / med["hand_written"]
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
        "ratio_two_phase_fit_to_hand_written": round(ratio, 4),
        "target_ratio": 1.05,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"hand-written {med['hand_written']:.2f} s, two_phase_fit "
        f"{med['two_phase_fit']:.2f} s (medians of {pairs}); ratio {ratio:.3f} "
        f"(target <= 1.05) on {result['machine']}, {result['backend']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
