"""The set-up every notebook needs, kept here so its cells stay short.

Four helpers that each notebook used to define for itself: the source model
(loaded, or trained once when none is stored), the target's arrays with an
optionally smaller test split, a matplotlib figure shown as a PNG under any
matplotlib backend, and the closing line that says how long the run took and
on what.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tlrecipes.lab.configs import SourceConfig
from tlrecipes.lab.record import device_description
from tlrecipes.lab.sampling import sample_per_class
from tlrecipes.lab.sources import SourceModel, load_source_model, train_source_model

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tlrecipes.lab.tasks import Task


def get_source(task_name: str, quick: bool = False) -> SourceModel:
    """The source model of a task: the shipped or cached one, else trained once.

    Tries the model shipped with the package (or cached by an earlier run)
    for the default `SourceConfig` first. When there is none, a quick run
    looks for, and otherwise trains, a one-epoch source (`SourceConfig(epochs=1)`,
    seconds on a CPU); a full run trains the default source. A trained model
    is cached, so the training happens once per machine.

    Args:
        task_name: A registered task, e.g. `"fashion_a_to_b"` (see
            `lab.list_tasks()`).
        quick: Whether a missing source may be a one-epoch one. Pass the
            notebook's `QUICK`.

    Returns:
        The `SourceModel` (its `base`, `metrics` and `info`).

    Raises:
        ValueError: If `task_name` is not a registered task.

    Example:

    >>> from tlrecipes import lab
    >>> source = lab.get_source("fashion_a_to_b")
    >>> 0.0 < source.metrics["test_accuracy"] <= 1.0
    True
    """
    try:
        return load_source_model(task_name)
    except FileNotFoundError:
        config = SourceConfig(epochs=1) if quick else SourceConfig()
        try:
            return load_source_model(task_name, config)
        except FileNotFoundError:
            return train_source_model(task_name, config)


def target_arrays(
    task: Task, test_per_class: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The target's `(x_train, y_train, x_test, y_test)`, as `size_sweep` takes them.

    The training split is returned whole (the experiments draw their samples
    from it per seed); the test split is optionally cut to a balanced
    `test_per_class` images per class, to keep quick runs quick. Pixels stay
    as stored (uint8 for the offline tasks): the experiments scale them.

    Args:
        task: A `lab.Task`, e.g. `lab.get_task("fashion_a_to_b")`.
        test_per_class: Test images kept per class, or `None` for the whole
            official test split.
        seed: Seed of the balanced test subsample.

    Returns:
        The four arrays.

    Raises:
        ValueError: If `test_per_class` is not a positive integer or `None`.

    Example:

    >>> from tlrecipes import lab
    >>> task = lab.get_task("fashion_a_to_b")
    >>> x_train, y_train, x_test, y_test = lab.target_arrays(task, 20)
    >>> len(x_test)
    100
    """
    if test_per_class is not None and (
        isinstance(test_per_class, bool)
        or not isinstance(test_per_class, int | np.integer)
        or test_per_class < 1
    ):
        raise ValueError(
            "target_arrays: `test_per_class` must be a positive integer or None "
            f"(the whole test split); received {test_per_class!r}. Pass e.g. 200."
        )
    data = task.target_data()
    x_test, y_test = data.x_test, data.y_test
    if test_per_class is not None:
        x_test, y_test = sample_per_class(x_test, y_test, int(test_per_class), seed)
    return data.x_train, data.y_train, x_test, y_test


def show(fig: Figure, dpi: int = 110) -> Any:
    """A matplotlib figure as a PNG image that a notebook displays.

    Works under any matplotlib backend (Agg included, as in CI and on
    servers), because the figure is rendered to PNG bytes rather than shown
    by pyplot. The last expression of a cell is displayed; elsewhere wrap
    it: `display(lab.show(fig))`.

    Args:
        fig: A `matplotlib.figure.Figure` (e.g. from `lab.plot_examples`).
        dpi: Resolution of the PNG.

    Returns:
        An `IPython.display.Image`.

    Raises:
        TypeError: If `fig` has no `savefig` (is not a matplotlib figure).
        ImportError: If IPython is not installed (install the `notebooks`
            extra: `pip install "tlrecipes[notebooks]"`).

    Example:

    >>> from matplotlib.figure import Figure
    >>> from tlrecipes import lab
    >>> fig = Figure(figsize=(2, 2))
    >>> _ = fig.subplots().plot([0, 1], [1, 0])
    >>> lab.show(fig).data[:4] == b"\\x89PNG"
    True
    """
    import io

    if not hasattr(fig, "savefig"):
        raise TypeError(
            "show: `fig` must be a matplotlib Figure; received "
            f"{type(fig).__name__}. Pass the figure a plotting function returned."
        )
    try:
        from IPython.display import Image
    except ImportError as err:
        raise ImportError(
            "show needs IPython to display a figure; install the notebook "
            'extras: pip install "tlrecipes[notebooks]".'
        ) from err
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return Image(data=buffer.getvalue())


def run_footer(start: float, quick: bool) -> str:
    """The closing line of a notebook: elapsed time, backend, device and mode.

    Args:
        start: `time.perf_counter()` read when the notebook started.
        quick: The notebook's `QUICK`.

    Returns:
        E.g. `"elapsed: 412 s, device CPU: AMD EPYC 7B13, 2 cores
        (tensorflow 2.21.0), mode full"`.

    Example:

    >>> import time
    >>> from tlrecipes import lab
    >>> lab.run_footer(time.perf_counter(), quick=True).endswith("mode quick")
    True
    """
    elapsed = time.perf_counter() - start
    mode = "quick" if quick else "full"
    return f"elapsed: {elapsed:.0f} s, device {device_description()}, mode {mode}"
