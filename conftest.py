"""Root conftest: doctests in tlrecipes/ see the public API (kit and lab), quietly."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    import keras
    import numpy as np

    import tlrecipes

    keras.utils.set_random_seed(0)
    kit = {name: getattr(tlrecipes, name) for name in tlrecipes.__all__}
    doctest_namespace.update({**kit, "keras": keras, "np": np})
    try:
        from tlrecipes import lab
    except ImportError:  # the kit alone
        return
    doctest_namespace.update({name: getattr(lab, name) for name in lab.__all__})
