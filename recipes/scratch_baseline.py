"""Transfer against a from-scratch twin: was it really transfer?

What it does: builds the transfer model (a pretrained base under a new head)
and its from-scratch twin (the same architecture with every weight freshly
initialised and every layer trainable, `tlrecipes.lab.scratch_twin`),
trains both on your images with the same budget (the same epochs, batches and
head learning rate), and measures the three benefits of transfer on their
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
the epochs, then the whole base at `--fine-tune-lr`), `feature_extractor` (only
the head, base frozen) or `finetune_all` (every layer from the first step at
`--fine-tune-lr`). The twin trains every layer at `--learning-rate` for all
`--epochs`. The budget is in epochs and is not raised for small folders, so
both models get exactly the same number of optimisation steps.

`--weights imagenet` (the default) downloads the ImageNet weights once into
~/.keras/models; `--weights none` starts from random weights (then both models
are from scratch: a smoke test); a path to a `.keras` model saved by any of
these recipes reuses the weights of its base, layer by layer (pass the
`--backbone` it was built with).

It writes, in `--out` (default runs/scratch_baseline): `model.keras` (the
transfer model) and `scratch_model.keras` (both take raw images with values in
[0, 255], resized to `--image-size`), `metrics.json` and `learning_curve.png`
(both curves), and prints where it saved each.

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
from tlrecipes.backbones import application  # noqa: E402
from tlrecipes.heads import find_base  # noqa: E402
from tlrecipes.lab.backbones import small_convnet  # noqa: E402
from tlrecipes.lab.folders import load_image_folder  # noqa: E402
from tlrecipes.lab.model_copies import scratch_twin  # noqa: E402
from tlrecipes.lab.plots import plot_transfer_vs_scratch  # noqa: E402
from tlrecipes.lab.results import transfer_benefit  # noqa: E402

RECIPE = "scratch_baseline"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
QUICK_IMAGE_SIZE = 32  # --quick: tiny images, two epochs, a few batches
QUICK_BATCHES = 3


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
        default="mobilenetv2",
        help="a keras.applications name (mobilenetv2, efficientnetb0, resnet50, "
        "...) or small_convnet (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet, none, or the path of a .keras model whose base to reuse "
        "(default: %(default)s)",
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
        help="images are resized to this side in pixels (default: 160; 32 with "
        "--quick)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="rate of the scratch twin and of the transfer model's head "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=1e-4,
        help="rate at which the transfer model's base trains (default: %(default)s)",
    )
    parser.add_argument(
        "--out", default=f"runs/{RECIPE}", help="output folder (default: %(default)s)"
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
    args.image_size = args.image_size or 160
    for name in ("epochs", "image_size", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    return args


def check_image_folder(data_dir: str) -> None:
    """Checks that `data_dir` holds one subfolder of images per class."""
    root = Path(data_dir)
    if not root.is_dir():
        raise SystemExit(
            f"error: --data-dir {data_dir} does not exist; point it at a folder "
            "with one subfolder of images per class."
        )
    if (root / "train").is_dir():  # the train/ + test/ layout
        root = root / "train"
    classes = sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
    )
    empty = [
        name
        for name in classes
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in (root / name).rglob("*"))
    ]
    if not classes or len(empty) == len(classes):
        raise SystemExit(
            f"error: --data-dir {data_dir} holds no images; expected one subfolder "
            f"per class with {'/'.join(sorted(IMAGE_SUFFIXES))} files in it."
        )
    if empty:
        raise SystemExit(f"error: class folders without images in {root}: {empty}.")
    if len(classes) < 2:
        raise SystemExit(
            f"error: --data-dir {data_dir} has 1 class ({classes[0]}); a "
            "classifier needs at least 2 class subfolders."
        )


def build_base(backbone: str, weights: str, image_size: int):
    """Returns the base named by --backbone and the layer that scales its inputs."""
    shape = (image_size, image_size, 3)
    if backbone.lower() == "small_convnet":
        if weights == "imagenet":
            raise SystemExit(
                "error: small_convnet has no ImageNet weights; pass --weights none "
                "or --weights path/to/model.keras."
            )
        base = small_convnet(shape, name="small_convnet")
        return base, keras.layers.Rescaling(1 / 255)  # images to [0, 1]
    try:  # the keras.applications model and the preprocess_input it was trained with
        return application(
            backbone, shape, "imagenet" if weights == "imagenet" else None
        )
    except ValueError as err:
        raise SystemExit(
            f"error: --backbone {backbone}: {err} (small_convnet is accepted too)"
        ) from None


def copy_saved_base(base: keras.Model, path: str) -> None:
    """Copies the weights of the base inside a saved model into `base`, by name."""
    if not Path(path).is_file():
        raise SystemExit(
            f"error: --weights {path} is not imagenet, none or a saved .keras file."
        )
    saved = keras.saving.load_model(path)
    source = find_base(saved) or saved  # a model built by add_head nests its base
    names = {layer.name for layer in base.layers}
    copied = [layer for layer in source.layers if layer.weights]
    for layer in copied:
        if layer.name not in names:
            raise SystemExit(
                f"error: the base in {path} has a layer {layer.name!r} that the "
                f"{base.name} base lacks; pass the --backbone the model was built with."
            )
        try:
            base.get_layer(layer.name).set_weights(layer.get_weights())
        except ValueError as err:
            message = f"error: --weights {path}, layer {layer.name}: {err}"
            raise SystemExit(message) from None
    print(f"Copied the weights of {len(copied)} base layers from {path}.")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    check_image_folder(args.data_dir)

    # 1. The transfer model: the pretrained base under a new head.
    base, preprocessing = build_base(args.backbone, args.weights, args.image_size)
    if args.weights not in ("imagenet", "none"):
        copy_saved_base(base, args.weights)
    elif args.weights == "none":
        print("Note: --weights none: both models start from random weights.")

    # 2. Your images: float32 in [0, 255]; the models scale them themselves.
    try:
        data = load_image_folder(
            args.data_dir,
            image_size=args.image_size,
            batch_size=args.batch_size,
            seed=args.seed,
        )
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print(data.source)
    train, validation, test = data.train, data.validation, data.test
    if validation is None:
        raise SystemExit(
            f"error: --data-dir {args.data_dir} has too few images to hold out a "
            "validation set for the learning curves; add images."
        )
    if args.quick:
        train, test = train.take(QUICK_BATCHES), test.take(QUICK_BATCHES)
        validation = validation.take(QUICK_BATCHES)

    model = add_head(
        base,
        data.num_classes,
        input_shape=data.image_shape,
        preprocessing=preprocessing,  # inside the model: it takes raw images
        # The base is called without training=False, so the twin's fresh
        # BatchNorm can learn; the transfer model's stays frozen (train_bn=False
        # below), hence in inference mode.
        bn_training=True,
    )
    # 3. The twin: the same layers, freshly initialised, every layer trainable.
    twin = scratch_twin(model, seed=args.seed)

    # 4. The same budget for both: --epochs over the same batches.
    head_epochs = {
        "two_phase": max(1, args.epochs // 2),
        "feature_extractor": args.epochs,
        "finetune_all": 0,
    }[args.strategy]
    start = time.perf_counter()
    print(f"Training the transfer model ({args.strategy}):")
    history = two_phase_fit(
        model,
        train,
        validation_data=validation,
        head_epochs=head_epochs,
        fine_tune_epochs=args.epochs - head_epochs,
        head_lr=args.learning_rate,
        fine_tune_lr=args.fine_tune_lr,
        train_bn=False,
        min_head_steps=0,  # no extra head epochs: the budgets must match
        seed=args.seed,
        checkpoint_dir=args.checkpoint_dir,
        verbose=2,
    )
    print("Training the scratch twin:")
    twin.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    scratch_history = twin.fit(
        train, validation_data=validation, epochs=args.epochs, verbose=2
    )
    seconds = time.perf_counter() - start

    # 5. The three benefits, read off the two validation curves.
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

    # 6. Save both models, the numbers and the two curves.
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
            "scratch_and_head": args.learning_rate,
            "fine_tune": args.fine_tune_lr,
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
