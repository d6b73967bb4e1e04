"""The notebooks' shared set-up helpers (`tlrecipes/lab/notebook_setup.py`)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from matplotlib.figure import Figure

from tlrecipes import lab


def test_target_arrays_keeps_train_whole_and_balances_test():
    task = lab.get_task("fashion_a_to_b")
    data = task.target_data()
    x_train, y_train, x_test, y_test = lab.target_arrays(task, 7, seed=3)
    assert len(x_train) == len(data.x_train)
    np.testing.assert_array_equal(y_train, data.y_train)
    assert np.bincount(y_test).tolist() == [7] * len(task.target_classes)
    assert x_test.shape[1:] == data.x_test.shape[1:]
    whole = lab.target_arrays(task)
    assert len(whole[2]) == len(data.x_test)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True])
def test_target_arrays_refuses_a_bad_test_size(bad):
    task = lab.get_task("fashion_a_to_b")
    with pytest.raises(ValueError, match="test_per_class"):
        lab.target_arrays(task, bad)


def test_get_source_returns_the_shipped_model():
    source = lab.get_source("fashion_a_to_b", quick=True)
    shipped = lab.load_source_model("fashion_a_to_b")
    assert source.metrics == shipped.metrics
    for a, b in zip(source.base.get_weights(), shipped.base.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_show_renders_a_png_and_refuses_other_objects():
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [0, 1])
    image = lab.show(fig)
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TypeError, match="matplotlib Figure"):
        lab.show(np.zeros((4, 4)))


def test_run_footer_names_time_device_and_mode():
    line = lab.run_footer(time.perf_counter() - 5, quick=False)
    assert line.startswith("elapsed: 5 s, device ")
    assert line.endswith("mode full")
    assert lab.device_description() in line
