"""`to_backbone_input`: channels, size and each backbone's own preprocessing."""

import keras
import numpy as np
import pytest

from tests.data_helpers import make_hermetic
from tlrecipes.lab.backbone_input import to_backbone_input


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    make_hermetic(monkeypatch, tmp_path)


def test_to_backbone_input_channels_size_and_preprocessing():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 28, 28, 1), dtype="uint8")
    plain = to_backbone_input(gray, (32, 40))
    assert plain.shape == (5, 32, 40, 3) and plain.dtype == np.float32
    np.testing.assert_array_equal(plain[..., 0], plain[..., 2])
    mobile = to_backbone_input(gray, 32, "mobilenet_v2", chunk_size=2)
    np.testing.assert_allclose(
        mobile, to_backbone_input(gray, 32) / 127.5 - 1, atol=1e-5
    )
    assert mobile.min() >= -1 and mobile.max() <= 1
    # EfficientNet rescales inside the model: its input stays in [0, 255].
    np.testing.assert_array_equal(
        to_backbone_input(gray, None, "efficientnetb0"), to_backbone_input(gray)
    )
    caffe = to_backbone_input(gray, None, "ResNet50")
    expected = keras.applications.resnet50.preprocess_input(
        np.repeat(gray, 3, -1).astype("float32")
    )
    np.testing.assert_allclose(caffe, expected, atol=1e-4)
    custom = to_backbone_input(gray, None, lambda x: x / 255.0, chunk_size=3)
    assert custom.max() <= 1.0


def test_to_backbone_input_errors():
    with pytest.raises(ValueError, match="Closest names: \\['mobilenetv2'"):
        to_backbone_input(np.zeros((1, 8, 8, 3)), None, "mobilnetv2")
    with pytest.raises(ValueError, match="x\\[..., None\\]"):
        to_backbone_input(np.zeros((1, 8, 8)))
