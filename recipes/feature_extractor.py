"""Feature extractor: a frozen pretrained base with a new classifier on top.

What it does: builds a pretrained backbone without its classifier, freezes all
of it, puts a new head on it (global pooling -> dropout -> dense softmax) and
trains only the head on your images. Optionally the base is cut first, so the
head reads features from an earlier block instead of the last one.

When to use it: you have little data (tens to a few hundred images per class).
If your images look like the backbone's source (everyday photos for ImageNet),
use the whole base. If they look different (X-rays, spectrograms, satellite
tiles), try features from an earlier, more general block (`--cut-after-block`
or `--cut-at`) and compare with `recipes/scratch_baseline.py`.

Run it on your own images (one subfolder per class; a `train/` and `test/`
split is used when you have one, otherwise 20% of the images are held out as
test and 10% of the rest as validation):

    python feature_extractor.py --data-dir path/to/images
    python feature_extractor.py --data-dir xrays --cut-at block_6_expand_relu
    python feature_extractor.py --data-dir xrays --backbone small_convnet \\
        --weights runs/source/model.keras --cut-after-block 2
    python feature_extractor.py --data-dir path/to/images --quick   # smoke run

`--weights imagenet` (the default) downloads the ImageNet weights once into
~/.keras/models; `--weights none` starts from random weights (a smoke test, not
transfer); a path to a `.keras` model saved by any of these recipes reuses the
weights of its base, layer by layer (pass the `--backbone` it was built with).

The head trains for at least `--min-head-steps` (200) optimisation steps: with
a small folder, `--epochs` is raised to reach them (the number that ran is
printed and in metrics.json).

It writes, in `--out` (default runs/feature_extractor): `model.keras` (takes
raw images with values in [0, 255], resized to `--image-size`), `metrics.json`
and `learning_curve.png`, and prints where it saved each.

Needs `pip install tlrecipes tensorflow` (TensorFlow reads the image folder;
set KERAS_BACKEND=jax or torch to train on another backend).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow start-up

import keras  # noqa: E402

from tlrecipes import add_head, trainable_summary, two_phase_fit  # noqa: E402
from tlrecipes.backbones import application  # noqa: E402
from tlrecipes.heads import find_base  # noqa: E402
from tlrecipes.lab.backbones import cut_after_block, small_convnet  # noqa: E402
from tlrecipes.lab.folders import load_image_folder  # noqa: E402
from tlrecipes.lab.plots import plot_learning_curves  # noqa: E402
from tlrecipes.precision import set_precision  # noqa: E402

RECIPE = "feature_extractor"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
QUICK_IMAGE_SIZE = 32  # --quick: tiny images, one epoch, a few batches
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
        "--epochs",
        type=int,
        default=20,
        help="epochs of the head, raised to reach --min-head-steps "
        "(default: %(default)s)",
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
        "--learning-rate", type=float, default=1e-3, help="(default: %(default)s)"
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
        "--min-head-steps",
        type=int,
        default=200,
        help="the head trains for at least this many optimisation steps; 0 "
        "trains exactly --epochs (default: %(default)s)",
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
    parser.add_argument(
        "--cache-features",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the frozen base once and train the head on its stored features "
        "(the folder pipeline has no random augmentation) (default: %(default)s)",
    )
    parser.add_argument(
        "--mixed-precision",
        default="float32",
        help="float32, bf16, fp16 or auto (bf16 on CPU/TPU and recent GPUs, fp16 "
        "on older GPUs) (default: %(default)s)",
    )
    parser.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="XLA-compile the training step (default: Keras's choice)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 1
        args.image_size = args.image_size or QUICK_IMAGE_SIZE
        args.min_head_steps = 0
    args.image_size = args.image_size or 160
    for name in ("epochs", "image_size", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.min_head_steps < 0:
        parser.error("--min-head-steps must be 0 or more")
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


def cut_base(base: keras.Model, after_block: int | None, at_layer: str | None):
    """Returns the base up to an earlier block or layer (sharing its weights)."""
    if after_block is not None:
        try:
            return cut_after_block(base, after_block)
        except ValueError as err:
            raise SystemExit(
                f"error: --cut-after-block {after_block}: {err} "
                "For other bases use --cut-at LAYER."
            ) from None
    if at_layer is not None:
        names = [layer.name for layer in base.layers]
        if at_layer not in names:
            close = difflib.get_close_matches(at_layer, names, n=5, cutoff=0.3)
            raise SystemExit(
                f"error: --cut-at {at_layer}: {base.name} has no such layer; "
                f"closest names: {close}."
            )
        output = base.get_layer(at_layer).output
        return keras.Model(base.input, output, name=f"{base.name}_to_{at_layer}")
    return base


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    check_image_folder(args.data_dir)
    # Mixed precision is read when layers are built: set it before the base.
    print(f"Precision: {set_precision(args.mixed_precision)}")

    # 1. The pretrained base, cut if asked, frozen under a new head.
    base, preprocessing = build_base(args.backbone, args.weights, args.image_size)
    if args.weights not in ("imagenet", "none"):
        copy_saved_base(base, args.weights)
    elif args.weights == "none":
        print("Note: --weights none starts from random weights: this is not transfer.")
    base = cut_base(base, args.cut_after_block, args.cut_at)

    # 2. Your images: float32 in [0, 255]; the model scales them itself.
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
    if args.quick:
        train, test = train.take(QUICK_BATCHES), test.take(QUICK_BATCHES)
        if validation is not None:
            validation = validation.take(QUICK_BATCHES)

    model = add_head(
        base,
        data.num_classes,
        input_shape=data.image_shape,
        preprocessing=preprocessing,  # inside the model: it takes raw images
    )
    print(trainable_summary(model))

    # 3. Train the head only (for at least --min-head-steps optimisation steps).
    start = time.perf_counter()
    history = two_phase_fit(
        model,
        train,
        validation_data=validation,
        head_epochs=args.epochs,
        fine_tune_epochs=0,
        head_lr=args.learning_rate,
        min_head_steps=args.min_head_steps,
        seed=args.seed,
        checkpoint_dir=args.checkpoint_dir,
        cache_features=args.cache_features,
        jit_compile=args.jit_compile,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    if history.phase_epochs["head"] > args.epochs:
        print(
            f"Note: the head trained for {history.phase_epochs['head']} epochs, not "
            f"{args.epochs}, to reach {args.min_head_steps} optimisation steps."
        )
    test_scores = model.evaluate(test, return_dict=True, verbose=0)
    print(f"Test accuracy: {test_scores['accuracy']:.3f}")

    # 4. Save the model, the numbers and the learning curves.
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
        "image_size": args.image_size,
        "batch_size": args.batch_size,
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
