"""Backbones: the cuttable small convnet and keras.applications by friendly name."""

import keras
import numpy as np
import pytest

# `application` stays in the kit (tlrecipes/backbones.py) for now; its tests
# stay here until it moves to tlrecipes/applications.py.
from tlrecipes.backbones import application
from tlrecipes.lab.backbones import (
    SMALL_CONVNET_PARAMS,
    block_names,
    cut_after_block,
    small_convnet,
)

pytestmark = pytest.mark.multibackend


def test_small_convnet_default_parameter_count_and_shape():
    base = small_convnet()
    assert base.count_params() == SMALL_CONVNET_PARAMS == 93_344
    moving = sum(
        int(np.prod(w.shape))
        for layer in base.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in (layer.moving_mean, layer.moving_variance)
    )
    assert moving == 448
    assert base.output_shape == (None, 4, 4, 128)
    assert base.name == "convnet"


def test_small_convnet_block_layer_names_and_widths():
    base = small_convnet((12, 12, 3), blocks=2, width=8)
    names = [layer.name for layer in base.layers[1:]]
    assert names == [
        f"block{i}_{kind}" for i in (1, 2) for kind in ("conv", "bn", "relu", "pool")
    ]
    assert base.get_layer("block1_conv").filters == 8
    assert base.get_layer("block2_conv").filters == 16
    assert not base.get_layer("block1_conv").use_bias  # BatchNorm carries the offset
    assert block_names(base) == ["block1", "block2"]


def test_small_convnet_batchnorm_momentum_defaults_to_point_nine():
    base = small_convnet()
    bns = [
        layer
        for layer in base.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(bns) == 3 and all(bn.momentum == pytest.approx(0.9) for bn in bns)
    custom = small_convnet(bn_momentum=0.99, name="slow")
    assert custom.get_layer("block1_bn").momentum == pytest.approx(0.99)


def test_small_convnet_without_batchnorm_has_biases():
    base = small_convnet((8, 8, 1), blocks=2, width=4, batchnorm=False)
    kinds = {layer.name.split("_")[1] for layer in base.layers[1:]}
    assert kinds == {"conv", "relu", "pool"}
    assert base.get_layer("block1_conv").use_bias


def test_small_convnet_many_blocks_never_shrink_to_zero():
    base = small_convnet((8, 8, 1), blocks=5, width=2)
    assert base.output_shape == (None, 1, 1, 32)
    out = base.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0)
    assert out.shape == (2, 1, 1, 32)


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"blocks": 0}, "Received: blocks=0"),
        ({"width": 2.5}, "Received: width=2.5"),
        ({"bn_momentum": 1.0}, "Received: bn_momentum=1.0"),
        ({"input_shape": (28, 28)}, "add the channel axis"),
    ],
)
def test_small_convnet_invalid_arguments(kwargs, text):
    with pytest.raises(ValueError, match=text):
        small_convnet(**kwargs)


def test_cut_after_block_shares_weights_with_base():
    base = small_convnet((8, 8, 1), blocks=3, width=4)
    cut = cut_after_block(base, 2)
    assert cut.name == "convnet_cut2"
    assert cut.output_shape == (None, 2, 2, 8)
    assert [layer.name for layer in cut.layers][-1] == "block2_pool"
    assert cut.get_layer("block1_conv") is base.get_layer("block1_conv")
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    before = cut.predict(x, verbose=0)
    kernel = base.get_layer("block1_conv").kernel
    kernel.assign(keras.ops.convert_to_numpy(kernel) * 2.0)
    assert not np.allclose(before, cut.predict(x, verbose=0))  # a view, not a copy


def test_cut_after_block_out_of_range_lists_blocks():
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    with pytest.raises(
        ValueError, match=r"\[1, 2\].*Received: n=3.*'block1', 'block2'"
    ):
        cut_after_block(base, 3)
    with pytest.raises(ValueError, match="Received: n=0"):
        cut_after_block(base, 0)


def test_cut_after_block_on_a_wrapped_model_points_to_the_base():
    base = small_convnet((8, 8, 1), blocks=2, width=4)
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(base(inputs)))
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match=r"model.get_layer\('convnet'\)"):
        cut_after_block(model, 1)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="small_convnet"):
        cut_after_block(plain, 1)


def test_cut_after_block_works_on_vgg16_names():
    vgg = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    assert block_names(vgg) == [f"block{i}" for i in range(1, 6)]
    assert cut_after_block(vgg, 2).output_shape == (None, 8, 8, 128)


def test_application_friendly_names_and_matching_preprocessing():
    base, preprocess = application("MobileNet_V2", (32, 32, 3), weights=None)
    assert base.name.startswith("mobilenetv2")
    assert base.output_shape[-1] == 1280  # no top, no pooling
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(np.asarray(preprocess(pixels.copy())), [[[[-1, 0, 1]]]])


def test_application_passes_no_top_and_pairs_efficientnet_preprocessing(monkeypatch):
    calls = []

    def fake_efficientnet(**kwargs):  # building the real one takes 20 s on jax
        calls.append(kwargs)
        return small_convnet((32, 32, 3), blocks=1, width=2)

    monkeypatch.setattr(keras.applications, "EfficientNetB0", fake_efficientnet)
    _, preprocess = application("efficientnet-b0", (32, 32, 3), weights=None)
    assert calls == [
        {"include_top": False, "weights": None, "input_shape": (32, 32, 3)}
    ]
    # EfficientNet rescales inside the model: its preprocess_input passes through.
    assert preprocess is keras.applications.efficientnet.preprocess_input
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(np.asarray(preprocess(pixels.copy())), pixels)


def test_application_unknown_name_lists_closest():
    with pytest.raises(ValueError, match=r"name='mobilenet2'.*mobilenetv2"):
        application("mobilenet2", weights=None)


def test_application_missing_weights_file():
    with pytest.raises(ValueError, match=r"file does not exist.*'/nowhere/w.h5'"):
        application("mobilenetv2", (32, 32, 3), weights="/nowhere/w.h5")


def test_application_offline_error_gives_the_fix(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError) as info:
        application("vgg16", (32, 32, 3), weights="imagenet")
    message = str(info.value)
    assert "VGG16" in message and "URL fetch failure" in message
    assert "weights=None" in message and "weights='/path/to/file.h5'" in message


def test_every_application_name_is_a_keras_application():
    """The name table matches Keras's spelling (ConvNeXtXLarge, not ...Xlarge)."""
    from tlrecipes import backbones

    for name, (constructor, module) in backbones._APPLICATIONS.items():
        assert hasattr(keras.applications, constructor), name
        assert hasattr(getattr(keras.applications, module), "preprocess_input"), name
