"""Transitional: these names moved to `tlrecipes.lab`.

Kept only because the current, eager `tlrecipes/__init__.py` still imports
these names from here. Nothing else may import this module; delete it once
the lazy kit `__init__` lands.
"""

from tlrecipes.lab import (
    plot_learning_curves,
    plot_size_sweep,
    plot_transfer_vs_scratch,
    plot_transferability,
)

__all__ = [
    "plot_learning_curves",
    "plot_size_sweep",
    "plot_transfer_vs_scratch",
    "plot_transferability",
]
