"""Transitional: these names moved to `tlrecipes.lab`.

Kept only because the current, eager `tlrecipes/__init__.py` still imports
these names from here. Nothing else may import this module; delete it once
the lazy kit `__init__` lands.
"""

from tlrecipes.lab import (
    run_demo,
    run_study,
)

__all__ = [
    "run_demo",
    "run_study",
]
