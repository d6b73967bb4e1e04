"""Plots: each figure draws what it promises and saves a readable PNG."""

import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from tlrecipes.lab.experiments import ScratchComparison
from tlrecipes.lab.plots import (
    plot_learning_curves,
    plot_size_sweep,
    plot_transfer_vs_scratch,
    plot_transferability,
)
from tlrecipes.lab.results import ResultStore, load_rows


def png_size(path):
    """(width, height) in pixels of a saved PNG."""
    assert path.exists() and path.stat().st_size > 5_000
    image = matplotlib.image.imread(path)
    return image.shape[1], image.shape[0]


def texts(ax):
    return " ".join(t.get_text() for t in ax.texts)


class FakeTwoPhaseHistory:
    """What plot_learning_curves reads from a TwoPhaseHistory."""

    fine_tune_start_epoch = 3
    history = {
        "loss": [1.1, 0.8, 0.7, 0.5, 0.45, 0.4],
        "accuracy": [0.5, 0.66, 0.7, 0.8, 0.83, 0.85],
        "val_loss": [1.0, 0.85, 0.8, 0.75, 0.7, 0.72],
        "val_accuracy": [0.55, 0.62, 0.66, 0.64, 0.7, 0.71],
    }


def yosinski_rows():
    rows = []
    rng = np.random.default_rng(0)
    shape = {
        "BnB": [0, 0, -2, -1],
        "AnB": [0, -1, -4, -8],
        "BnB+": [0] * 4,
        "AnB+": [1] * 4,
    }
    for seed in range(3):
        rows.append({"variant": "baseB", "n": None, "seed": seed, "accuracy": 0.62})
        for variant, drops in shape.items():
            for n, drop in enumerate(drops, start=1):
                noise = rng.normal(scale=0.005)
                rows.append(
                    {
                        "variant": variant,
                        "n": n,
                        "seed": seed,
                        "accuracy": 0.62 + drop / 100 + noise,
                    }
                )
    return rows


def sweep_rows():
    rows = []
    for seed in range(3):
        for n in (5, 10, 50, 100, 500):
            gain = 0.2 / math.log10(n * 2)
            for strategy, offset in (("scratch", 0.0), ("feature_extractor", gain)):
                accuracy = 0.5 + 0.08 * math.log10(n) + offset + 0.01 * seed
                rows.append(
                    {
                        "strategy": strategy,
                        "n_per_class": n,
                        "seed": seed,
                        "accuracy": accuracy,
                    }
                )
    return rows


def test_learning_curves_mark_where_fine_tuning_starts(tmp_path):
    fig = plot_learning_curves(
        FakeTwoPhaseHistory(), title="two-phase", path=tmp_path / "curves.png"
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_ylabel(), acc_ax.get_ylabel()) == ("loss", "accuracy")
    assert [line.get_label() for line in acc_ax.lines[:2]] == ["training", "validation"]
    boundary = [line for line in acc_ax.lines if line.get_linestyle() == ":"]
    assert boundary and boundary[0].get_xdata()[0] == 3.5  # between epochs 3 and 4
    assert "fine-tuning starts" in texts(acc_ax)
    width, height = png_size(tmp_path / "curves.png")
    assert width > 800 and height > 350


def test_learning_curves_from_a_dict_without_phases():
    fig = plot_learning_curves({"accuracy": [0.1, 0.2]}, metrics=["accuracy", "auc"])
    assert len(fig.axes) == 1 and "fine-tuning" not in texts(fig.axes[0])
    with pytest.raises(ValueError, match=r"metrics=\['auc'\].*\['accuracy'\]"):
        plot_learning_curves({"accuracy": [0.1]}, metrics=["auc"])
    with pytest.raises(TypeError, match="History"):
        plot_learning_curves([0.1, 0.2])


def test_transfer_vs_scratch_annotates_the_three_benefits(tmp_path):
    transfer = [[0.5, 0.7, 0.8, 0.8], [0.52, 0.72, 0.78, 0.82]]
    scratch = [[0.3, 0.5, 0.6, 0.7], [0.32, 0.48, 0.62, 0.7]]
    path = tmp_path / "benefit.png"
    fig = plot_transfer_vs_scratch(transfer, scratch, steps=[20, 40, 60, 80], path=path)
    ax = fig.axes[0]
    words = texts(ax)
    assert "jumpstart +0.200" in words and "final +0.110" in words
    assert "area +0.18" in words
    assert (
        ax.get_legend_handles_labels()[1][2] == "threshold 0.700: reached at 40 vs 80"
    )
    assert ax.get_xlabel() == "optimisation step"
    assert "jumpstart +0.200" in ax.get_title()
    width, height = png_size(path)
    assert width > 600 and height > 400


def test_transfer_vs_scratch_from_a_comparison():
    rows = [
        {"strategy": s, "seed": seed, "curve_steps": [5, 10], "curve_accuracy": c}
        for seed in (0, 1)
        for s, c in (("two_phase", [0.6, 0.7]), ("scratch", [0.4, 0.6]))
    ]
    comparison = ScratchComparison(rows, [], {"strategy": "two_phase"})
    fig = plot_transfer_vs_scratch(comparison, title="mine")
    ax = fig.axes[0]
    assert ax.get_title() == "mine"
    assert [line.get_label() for line in ax.lines[:2]] == ["two_phase", "scratch"]
    assert list(ax.lines[0].get_xdata()) == [5, 10]
    assert ax.get_ylabel() == "test accuracy"
    with pytest.raises(ValueError, match="scratch"):
        plot_transfer_vs_scratch([0.1, 0.2])
    # Runs with a validation split read their curves on it: the axis says so.
    validated = [{**r, "selected_on": "validation"} for r in rows]
    fig = plot_transfer_vs_scratch(
        ScratchComparison(validated, [], {"strategy": "two_phase"})
    )
    assert fig.axes[0].get_ylabel() == "validation accuracy"


def test_transferability_figure_from_saved_results(tmp_path):
    store = ResultStore()
    for i, row in enumerate(yosinski_rows()):
        store.add({"run_id": str(i), **row})
    rows = load_rows(store.to_csv(tmp_path / "yosinski.csv"))  # n=None survives CSV
    path = tmp_path / "yosinski.png"
    fig = plot_transferability(rows, path=path)
    ax = fig.axes[0]
    labels = [c.get_label() for c in ax.containers]
    assert labels == ["AnB", "AnB+", "BnB", "BnB+"]
    base = [line for line in ax.lines if line.get_label().startswith("base B")]
    assert base and base[0].get_ydata()[0] == pytest.approx(0.62)
    assert list(ax.get_xticks()) == [1, 2, 3, 4]
    width, height = png_size(path)
    assert width > 600 and height > 400
    with pytest.raises(ValueError, match="transferability_by_layer"):
        plot_transferability([{"variant": "baseB", "accuracy": 0.5}])


def test_size_sweep_figure_log_axis_one_line_per_strategy(tmp_path):
    path = tmp_path / "soekhoe.png"
    fig = plot_size_sweep(sweep_rows(), title="Soekhoe", path=path)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["scratch", "feature_extractor"]
    assert list(ax.lines[0].get_xdata()) == [5, 10, 50, 100, 500]
    assert len(ax.collections) == 2  # shaded spread over seeds for each line
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "5",
        "10",
        "50",
        "100",
        "500",
    ]
    width, height = png_size(path)
    assert width > 600 and height > 400
    with pytest.raises(ValueError, match="empty"):
        plot_size_sweep([])


def test_plots_draw_into_given_axes():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plot_size_sweep(sweep_rows(), ax=left) is fig
    assert plot_transferability(yosinski_rows(), ax=right) is fig
    assert left.get_title() == "Accuracy vs target dataset size"


def test_examples_grid_shows_the_right_class_in_each_row(tmp_path):
    from tlrecipes.lab.data_figures import plot_examples

    # Class k's images are all k * 50 grey: each row must show only its class.
    y = np.repeat([0, 1, 2], 5)
    x = (y[:, None, None] * 50 + np.zeros((15, 8, 8))).astype("uint8")
    fig = plot_examples(x, y, class_names=["a", "b", "c"], per_class=4,
                        title="t", path=tmp_path / "ex.png")  # fmt: skip
    axes = np.array(fig.axes).reshape(3, 4)
    for label, row in enumerate(axes):
        assert row[0].get_ylabel() == "abc"[label]
        for ax in row:
            (image,) = ax.get_images()
            assert np.allclose(image.get_array(), label * 50 / 255)
    assert (tmp_path / "ex.png").is_file()
    # RGB floats in [0, 1] pass through; a class with fewer images leaves blanks.
    rgb = np.random.default_rng(0).random((3, 8, 8, 3))
    fig = plot_examples(rgb, np.array([0, 0, 1]), per_class=2)
    assert [len(ax.get_images()) for ax in fig.axes] == [1, 1, 1, 0]


def test_examples_grid_rejects_bad_input_before_drawing():
    from tlrecipes.lab.data_figures import plot_examples

    x = np.zeros((4, 8, 8), "uint8")
    with pytest.raises(ValueError, match="expected a stack of images"):
        plot_examples(np.zeros((4, 8)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="one integer label per image"):
        plot_examples(x, [0, 1])
    with pytest.raises(ValueError, match="one integer label per image"):
        plot_examples(x, np.array([0.5, 1, 0, 1]))
    with pytest.raises(ValueError, match="per_class"):
        plot_examples(x, np.array([0, 1, 0, 1]), per_class=0)
    with pytest.raises(ValueError, match="a name for each label"):
        plot_examples(x, np.array([0, 1, 0, 1]), class_names=["only one"])
