"""Fine-tune everything: all layers train from the pretrained initialisation.

What it does: builds a pretrained backbone without its classifier, puts a new
head on it and trains every layer from the first step at one learning rate
(`--learning-rate`, low by default). BatchNorm layers keep the source's
statistics in inference mode unless `--train-bn` lets them re-estimate
statistics on your images.

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

`--weights imagenet` (the default) downloads the ImageNet weights once into
~/.keras/models; `--weights none` starts from random weights (then this is
training from scratch); a path to a `.keras` model saved by any of these
recipes reuses the weights of its base, layer by layer (pass the `--backbone`
it was built with).

It writes, in `--out` (default runs/finetune_all): `model.keras` (takes raw
images with values in [0, 255], resized to `--image-size`), `metrics.json` and
`learning_curve.png`, and prints where it saved each.

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
from tlrecipes.backbones import application  # noqa: E402
from tlrecipes.heads import find_base  # noqa: E402
from tlrecipes.lab.backbones import small_convnet  # noqa: E402
from tlrecipes.lab.folders import load_image_folder  # noqa: E402
from tlrecipes.lab.plots import plot_learning_curves  # noqa: E402

RECIPE = "finetune_all"
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
    parser.add_argument("--epochs", type=int, default=20, help="(default: %(default)s)")
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
        default=1e-4,
        help="rate of every layer, head included (default: %(default)s)",
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

    # 1. The pretrained base under a new head.
    base, preprocessing = build_base(args.backbone, args.weights, args.image_size)
    if args.weights not in ("imagenet", "none"):
        copy_saved_base(base, args.weights)
    elif args.weights == "none":
        print("Note: --weights none starts from random weights: this is not transfer.")

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
        bn_training=args.train_bn,  # BatchNorm in training mode when it trains
    )

    # 3. No head-only phase: every layer (BatchNorm unless --train-bn) trains
    #    from the first step, at one low learning rate.
    start = time.perf_counter()
    history = two_phase_fit(
        model,
        train,
        validation_data=validation,
        head_epochs=0,
        fine_tune_epochs=args.epochs,
        fine_tune_lr=args.learning_rate,
        train_bn=args.train_bn,
        seed=args.seed,
        checkpoint_dir=args.checkpoint_dir,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    print(trainable_summary(model))
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
        "train_bn": args.train_bn,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
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
