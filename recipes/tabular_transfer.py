"""Tabular transfer: an MLP trained on one CSV, reused for another with a new head.

What it does:

1. trains an MLP (a body of ReLU Dense layers, with the source's feature
   scaling built in, and a head) on `--source-csv`, at `--scratch-lr`;
2. keeps its body frozen, puts a new head on it for the target's classes and
   trains that head on `--target-csv` at `--head-lr` for `--head-epochs`
   (then, with `--fine-tune-epochs`, the whole body at `--fine-tune-lr`:
   `tlrecipes.two_phase_fit`, whose defaults these flags take: "auto" head
   epochs, 1e-2 and 1e-4);
3. trains a from-scratch twin of the target model (same layers, fresh weights,
   all trainable) for as many epochs as the transfer model ran, at
   `--scratch-lr`, and reports the three benefits of
   transfer on the validation-accuracy curves: jumpstart, area (AUC)
   difference and final difference, plus both test accuracies.

Step 3 answers "was it really transfer, or did the new layers do all the
learning?": the frozen body helped only if the transfer model beats its twin.

When to use it: you have a large labelled table (the source) and a smaller one
(the target) with the same feature columns but another label, or the same
label on another population, and want to know whether what the network learned
on the first helps on the second.

Run it on your own CSVs (a header row; every column but the label numeric):

    python tabular_transfer.py --source-csv big.csv --target-csv small.csv \\
        --label-column label
    python tabular_transfer.py --weights runs/tabular_transfer/source_model.keras \\
        --target-csv other.csv --label-column label     # reuse a trained body
    python tabular_transfer.py --source-csv big.csv --target-csv small.csv --quick

The target CSV needs the source's feature columns (matched by name; with a
saved `--weights` model and no `--source-csv`, in the source's order). Labels
may be numbers or strings; 20% of each table's rows are held out as test and
10% as validation (seeded). `--hidden-units` sets the MLP body, the part that
transfers (this recipe's counterpart of the image recipes' `--backbone`).

`--weights none` (the default) trains the source MLP from random weights; a
path to a `source_model.keras` saved by an earlier run reuses its body and
skips the source training.

It writes, in `--out` (default runs/tabular_transfer): `model.keras` (the
transferred target model; it takes raw feature values), `source_model.keras`
(when it trained one), `metrics.json` and `learning_curve.png` (transfer vs
scratch), and prints where it saved each.
If `--out` already holds any of these files it stops before reading data; pass a
new `--out`, or `--overwrite` to replace them (other files there are kept).

Needs `pip install tlrecipes` and a Keras backend (tensorflow, jax or torch).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow start-up

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tlrecipes import add_head, two_phase_fit, unfreeze  # noqa: E402
from tlrecipes.lab import (  # noqa: E402
    TrainConfig,
    check_out_folder,
    epochs_or_auto,
    exit_on_value_error,
    plot_transfer_vs_scratch,
    saved_base,
    scratch_twin,
    transfer_benefit,
)
from tlrecipes.training import FINE_TUNE_LR, HEAD_LR  # noqa: E402

RECIPE = "tabular_transfer"
# The files a run writes in --out (with --weights none, source_model.keras too).
OUTPUTS = ("model.keras", "metrics.json", "learning_curve.png")
TEST_FRACTION, VALIDATION_FRACTION = 0.2, 0.1
QUICK_ROWS = 300  # --quick: the first rows of each CSV, one epoch per stage


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    paths = {"model": out / "model.keras"}
    metrics: dict = {"recipe": RECIPE, "quick": args.quick, "seed": args.seed}

    # 1. Both tables, read and checked before anything trains.
    source, target = load_tables(args)
    xt, yt = target["x"], target["y"]
    out.mkdir(parents=True, exist_ok=True)

    # 2. The source MLP's body: trained here on the source table, or loaded.
    if args.weights == "none":
        body = train_source_mlp(args, source, paths, metrics)
    else:
        with exit_on_value_error():  # a wrong --weights ends with one line
            body = saved_base(args.weights)
    check_width(body, target, args.target_csv)

    # 3. Transfer: the source body, frozen, under a new head (it outputs
    #    logits); then, with --fine-tune-epochs, the body unfrozen at a low rate.
    model = add_head(
        body,
        len(target["classes"]),
        hidden_units=args.head_units,
        dropout=0.1,
        name="target_mlp",
    )
    twin = scratch_twin(model, seed=args.seed)  # same layers, fresh weights
    start = time.perf_counter()
    print(f"Training the new head on {args.target_csv}:")
    history = two_phase_fit(
        model,
        xt["train"],
        yt["train"],
        validation_data=(xt["validation"], yt["validation"]),
        head_epochs=args.head_epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        head_lr=args.head_lr,
        fine_tune_lr=args.fine_tune_lr,
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=2,
    )

    # 4. The twin trains every layer from scratch with the same budget: as
    #    many epochs (so optimisation steps) as the transfer model ran.
    print("Training the scratch twin:")
    twin.compile(
        optimizer=keras.optimizers.Adam(args.scratch_lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    scratch_history = twin.fit(
        xt["train"],
        yt["train"],
        validation_data=(xt["validation"], yt["validation"]),
        epochs=len(history.epoch),
        batch_size=args.batch_size,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    return report(
        args, model, twin, history, scratch_history, source, target, paths,
        metrics, seconds,
    )  # fmt: skip


def train_source_mlp(args, source: dict, paths: dict, metrics: dict) -> keras.Model:
    """Trains the source MLP on the source table, saves it; returns its body."""
    xs, ys = source["x"], source["y"]
    body = keras.Sequential(
        [
            keras.Input((len(source["features"]),)),
            # The source's feature scaling is part of the body: it transfers.
            keras.layers.Normalization(
                mean=xs["train"].mean(axis=0), variance=xs["train"].var(axis=0)
            ),
            *[
                keras.layers.Dense(units, activation="relu", name=f"body_{i}")
                for i, units in enumerate(args.hidden_units, start=1)
            ],
        ],
        name="mlp_body",
    )
    source_model = add_head(
        body, len(source["classes"]), dropout=0.1, name="source_mlp"
    )
    unfreeze(source_model)  # on the source, every layer trains
    source_model.compile(
        optimizer=keras.optimizers.Adam(args.scratch_lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    print(f"Training the source MLP on {args.source_csv}:")
    source_model.fit(
        xs["train"],
        ys["train"],
        validation_data=(xs["validation"], ys["validation"]),
        epochs=args.source_epochs,
        batch_size=args.batch_size,
        verbose=2,
    )
    source_test = source_model.evaluate(
        xs["test"], ys["test"], return_dict=True, verbose=0
    )
    print(f"Source test accuracy: {source_test['accuracy']:.3f}")
    paths["source model"] = Path(args.out) / "source_model.keras"
    source_model.save(paths["source model"])
    metrics["source_test_accuracy"] = float(source_test["accuracy"])
    metrics["source_num_examples"] = {k: len(v) for k, v in ys.items()}
    return body


def check_width(body: keras.Model, target: dict, target_csv: str) -> None:
    """The target table must have as many feature columns as the body takes."""
    if len(target["features"]) != body.input_shape[-1]:
        raise SystemExit(
            f"error: --target-csv {target_csv} has {len(target['features'])} "
            f"feature columns; the source MLP takes {body.input_shape[-1]}."
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source-csv", help="the table to learn from")
    parser.add_argument("--target-csv", required=True, help="the table to solve")
    parser.add_argument(
        "--label-column",
        default="label",
        help="the column to predict, in both tables (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        default="none",
        help="none (train the source MLP from random weights), or the path of a "
        "source_model.keras whose body to reuse (default: %(default)s)",
    )
    parser.add_argument(
        "--hidden-units",
        default="64,64,64",
        help="sizes of the MLP body's layers, the part that transfers "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--head-units",
        default="64",
        help="hidden layers of the new head, '' for none (default: %(default)s)",
    )
    parser.add_argument(
        "--source-epochs",
        type=int,
        default=30,
        help="epochs of the source MLP (default: %(default)s)",
    )
    parser.add_argument(
        "--head-epochs",
        type=epochs_or_auto,
        default="auto",
        help="epochs of the new head, or auto: enough for 200 optimisation steps "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=0,
        help="then epochs with the body unfrozen at --fine-tune-lr "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--head-lr",
        type=float,
        default=HEAD_LR,
        help="rate of the new head (default: %(default)s, two_phase_fit's)",
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=FINE_TUNE_LR,
        help="rate of the body with --fine-tune-epochs (default: %(default)s, "
        "two_phase_fit's)",
    )
    parser.add_argument(
        "--scratch-lr",
        type=float,
        default=TrainConfig.learning_rate,
        help="rate of the source MLP and the scratch twin, every layer from random "
        "weights (default: %(default)s, the lab's for runs whose base trains)",
    )
    parser.add_argument(
        "--out", default=f"runs/{RECIPE}", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier run in --out (without it, a "
        "folder that already holds any of them is refused); other files stay",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 epoch, tiny images, a few batches",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.source_epochs = args.head_epochs = 1
        args.fine_tune_epochs = min(args.fine_tune_epochs, 1)
    for name in ("source_epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.fine_tune_epochs < 0:
        parser.error("--fine-tune-epochs must be 0 or more")
    if args.weights == "imagenet":
        parser.error("--weights imagenet: an MLP has no ImageNet weights")
    if args.weights == "none" and not args.source_csv:
        parser.error("--source-csv is required unless --weights names a saved model")
    try:
        args.hidden_units = [int(u) for u in args.hidden_units.split(",") if u]
        args.head_units = [int(u) for u in args.head_units.split(",") if u]
    except ValueError:
        parser.error("--hidden-units and --head-units take sizes such as 64,32")
    if not args.hidden_units or min(args.hidden_units + args.head_units) < 1:
        parser.error("--hidden-units needs at least one positive size")
    outputs = [*OUTPUTS, "source_model.keras"] if args.weights == "none" else OUTPUTS
    try:  # before any data is read: an earlier run's outputs stay unless asked
        check_out_folder(args.out, outputs, overwrite=args.overwrite)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    return args


def load_tables(args: argparse.Namespace) -> tuple[dict | None, dict]:
    """The source (None without --source-csv) and target tables, read and split;
    the target's feature columns are put in the source's order."""
    max_rows = QUICK_ROWS if args.quick else None
    source = None
    if args.source_csv:
        source = load_table(args.source_csv, "--source-csv", args, max_rows)
    target = load_table(
        args.target_csv,
        "--target-csv",
        args,
        max_rows,
        columns=None if source is None else source["features"],
    )
    return source, target


def read_csv(path: str, label_column: str, flag: str, max_rows: int | None):
    """Reads a CSV into (feature names, float32 features, label strings)."""
    if not Path(path).is_file():
        raise SystemExit(f"error: {flag} {path} does not exist.")
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        columns = list(reader.fieldnames or [])
        rows = list(itertools.islice(reader, max_rows))
    if label_column not in columns:
        raise SystemExit(
            f"error: {flag} {path} has no column {label_column!r} (its columns: "
            f"{columns}); pass the label's name with --label-column."
        )
    features = [column for column in columns if column != label_column]
    if not rows or not features:
        raise SystemExit(f"error: {flag} {path} has no rows or no feature columns.")
    # Line numbers in the file: the header is line 1 (a blank label is not a class).
    blank = [
        i + 2 for i, row in enumerate(rows) if not (row[label_column] or "").strip()
    ]
    if blank:
        raise SystemExit(
            f"error: {flag} {path} has {len(blank)} row(s) with a blank "
            f"{label_column!r} label, on line(s) {', '.join(map(str, blank[:5]))}"
            f"{', ...' if len(blank) > 5 else ''}; fill in their labels or delete "
            "those rows."
        )
    x = np.empty((len(rows), len(features)), "float32")
    for i, row in enumerate(rows):
        for j, column in enumerate(features):
            try:
                x[i, j] = float(row[column])
            except (TypeError, ValueError):
                raise SystemExit(
                    f"error: {flag} {path}, line {i + 2}, column {column!r}: "
                    f"{row[column]!r} is not a number; encode text columns as "
                    "numbers and fill in missing values first."
                ) from None
    if not np.isfinite(x).all():
        raise SystemExit(f"error: {flag} {path} holds NaN or infinite values.")
    return features, x, [row[label_column] for row in rows]


def encode_labels(labels: list[str], flag: str) -> tuple[np.ndarray, list[str]]:
    """Maps label values to 0..k-1 (numerically sorted when they are numbers)."""
    names = sorted(set(labels))
    try:
        names = sorted(names, key=float)
    except ValueError:
        pass  # text labels stay in alphabetical order
    if len(names) < 2:
        raise SystemExit(
            f"error: {flag} has 1 class ({names[0]!r}); a classifier needs at "
            "least 2 label values."
        )
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], "int64"), names


def split(n: int, seed: int, flag: str) -> dict[str, np.ndarray]:
    """Seeded train / validation / test row indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * TEST_FRACTION))
    n_val = max(1, round(n * VALIDATION_FRACTION))
    if n - n_test - n_val < 2:
        raise SystemExit(f"error: {flag} has {n} rows, too few to split.")
    return {
        "train": order[n_test + n_val :],
        "validation": order[n_test : n_test + n_val],
        "test": order[:n_test],
    }


def load_table(
    path: str,
    flag: str,
    args: argparse.Namespace,
    max_rows: int | None,
    columns: list[str] | None = None,
) -> dict:
    """Reads, encodes and splits one CSV; `columns` orders its features."""
    features, x, labels = read_csv(path, args.label_column, flag, max_rows)
    if columns is not None:
        missing = [name for name in columns if name not in features]
        if missing:
            raise SystemExit(
                f"error: {flag} {path} lacks the source's feature columns {missing}."
            )
        x, features = x[:, [features.index(name) for name in columns]], columns
    y, classes = encode_labels(labels, flag)
    rows = split(len(x), args.seed, flag)
    return {
        "features": features,
        "classes": classes,
        "x": {part: x[index] for part, index in rows.items()},
        "y": {part: y[index] for part, index in rows.items()},
    }


def report(
    args, model, twin, history, scratch_history, source, target, paths, metrics,
    seconds,
) -> dict:  # fmt: skip
    """Measures the three benefits, saves the model, the numbers and the curves."""
    xt, yt = target["x"], target["y"]
    transfer_curve = [float(v) for v in history.history["val_accuracy"]]
    scratch_curve = [float(v) for v in scratch_history.history["val_accuracy"]]
    benefit = transfer_benefit(transfer_curve, scratch_curve)
    transfer_test = model.evaluate(xt["test"], yt["test"], return_dict=True, verbose=0)
    scratch_test = twin.evaluate(xt["test"], yt["test"], return_dict=True, verbose=0)
    print(
        f"Transfer vs scratch (validation accuracy): jumpstart "
        f"{benefit['jumpstart']:+.3f}, average gap (AUC) "
        f"{benefit['auc_difference']:+.3f}, final {benefit['final_difference']:+.3f}"
    )
    print(
        f"Test accuracy: transfer {transfer_test['accuracy']:.3f}, "
        f"scratch {scratch_test['accuracy']:.3f}"
    )
    out = Path(args.out)
    paths["metrics"] = out / "metrics.json"
    paths["learning curves"] = out / "learning_curve.png"
    model.save(paths["model"])
    figure = plot_transfer_vs_scratch(
        transfer_curve, scratch_curve, labels=("transfer (frozen body)", "scratch")
    )
    figure.axes[0].set_ylabel("validation accuracy")
    figure.savefig(paths["learning curves"], dpi=120)
    metrics.update(
        {
            "source_csv": args.source_csv,
            "target_csv": args.target_csv,
            "weights": args.weights,
            "label_column": args.label_column,
            "features": target["features"],
            "hidden_units": args.hidden_units,
            "head_units": args.head_units,
            "source_classes": None if source is None else source["classes"],
            "class_names": target["classes"],
            "num_examples": {k: len(v) for k, v in yt.items()},
            "epochs": len(history.epoch),
            "phase_epochs": history.phase_epochs,
            "learning_rates": {
                "head": args.head_lr,
                "fine_tune": args.fine_tune_lr,
                "scratch": args.scratch_lr,
            },
            # The three benefits (transfer minus scratch, validation accuracy)
            # and when each curve first reached the twin's final accuracy.
            **{k: None if math.isnan(v) else v for k, v in benefit.items()},
            "test_accuracy": float(transfer_test["accuracy"]),
            "scratch_test_accuracy": float(scratch_test["accuracy"]),
            "curves": {"transfer": transfer_curve, "scratch": scratch_curve},
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "seconds": round(seconds, 1),
            "backend": keras.backend.backend(),
            "model_path": str(paths["model"]),
            "source_model_path": str(paths.get("source model", args.weights)),
            "plot_path": str(paths["learning curves"]),
        }
    )
    paths["metrics"].write_text(json.dumps(metrics, indent=2))
    for name, path in paths.items():
        print(f"Saved the {name} to {path}")
    return metrics


if __name__ == "__main__":
    main()
