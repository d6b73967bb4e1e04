"""Parameters for the notebook and solution runs, grouped for pytest-xdist."""

from pathlib import Path

import pytest


def by_number(paths: list[Path]) -> list:
    """`paths` as parameters in one pytest-xdist group per notebook number.

    `make test-notebooks` runs two at a time (`--dist loadgroup`): a notebook
    and its solutions share caches (converted ImageNet weights, features), so
    they go to the same worker and never run at the same time.
    """
    return [pytest.param(p, marks=pytest.mark.xdist_group(p.name[:2])) for p in paths]
