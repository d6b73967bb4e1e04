"""`ImageSplits`: the in-memory container checks its splits and prints a summary."""

import numpy as np
import pytest

from tests.data_helpers import make_hermetic
from tlrecipes.lab.imagesplits import ImageSplits


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    """No downloads, no user data directory, an empty Keras and tfds cache."""
    make_hermetic(monkeypatch, tmp_path)


def test_imagesplits_checks_lengths_and_prints_a_summary():
    x, y = np.zeros((4, 2, 2, 1), "uint8"), np.arange(4) % 2
    with pytest.raises(ValueError, match="same length"):
        ImageSplits(x, y[:3], x, y, ["a", "b"], "toy")
    with pytest.raises(ValueError, match="both or neither"):
        ImageSplits(x, y, x, y, ["a", "b"], "toy", x_val=x)
    text = repr(ImageSplits(x, y, x[:2], y[:2], ["a", "b"], "toy"))
    assert text == (
        "ImageSplits(train=4, val=None, test=2, image_shape=(2, 2, 1), "
        "num_classes=2, source='toy')"
    )
