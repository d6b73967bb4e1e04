"""Trains the source models shipped in `tlrecipes/lab/weights/`, records checksums.

The offline tasks' source models are what ImageNet weights are to the
`keras.applications` backbones: trained once, shipped, loaded instantly. This
script is the command that reproduces them:

    python scripts/make_source_weights.py            # into tlrecipes/lab/weights/
    python scripts/make_source_weights.py --out DIR  # somewhere else, to compare

It trains `train_source_model(task, SourceConfig(), seed=0)` for each task,
copies the `.keras` model and its `.json` record into the output folder, and
writes `checksums.json` (SHA-256 of each file), which `load_source_model`
verifies before loading a shipped model.

Reproducibility: with the same backend and device the run repeats exactly
(seeded initialisation and shuffling). Across devices and backends (the
shipped files were trained on a GPU with JAX) floating-point order differs, so
a retrained model is not bit-identical; its source test accuracy lands within
about 0.5 points of the shipped one (see the `metrics` in each `.json`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

TASKS = ("fashion_a_to_b", "fashion_to_mnist")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=None, help="Output folder. Defaults to tlrecipes/lab/weights/."
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASKS),
        help="Tasks. Defaults to both offline tasks.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed. Defaults to 0.")
    args = parser.parse_args(argv)

    import keras

    from tlrecipes.lab.configs import SourceConfig
    from tlrecipes.lab.sources import PACKAGED_WEIGHTS_DIR, train_source_model
    from tlrecipes.safe_loading import sha256_file

    out = Path(args.out) if args.out else PACKAGED_WEIGHTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    sums_path = out / "checksums.json"
    sums = json.loads(sums_path.read_text()) if sums_path.exists() else {}
    with tempfile.TemporaryDirectory() as cache:
        for task in args.tasks:
            start = time.perf_counter()
            source = train_source_model(
                task,
                SourceConfig(),
                seed=args.seed,
                cache_dir=cache,
                retrain=True,
                verbose=2,
            )
            seconds = time.perf_counter() - start
            for path in (
                Path(source.path),
                Path(str(source.path)[: -len(".keras")] + ".json"),
            ):
                target = out / path.name
                shutil.copyfile(path, target)
                sums[target.name] = sha256_file(target)
            print(
                f"{task}: {source.metrics} in {seconds:.1f} s on "
                f"{keras.backend.backend()} -> {out}"
            )
    sums_path.write_text(json.dumps(dict(sorted(sums.items())), indent=2) + "\n")
    print(f"checksums: {sums_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
