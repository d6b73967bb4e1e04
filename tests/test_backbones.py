"""The lab's research backbone: the cuttable small convnet.

ImageNet backbones by name (`tlrecipes.application`) are tested in
tests/test_applications.py.
"""

import keras
import numpy as np
import pytest

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
