"""Transitional: these names moved to `tlrecipes.lab`.

Kept only because the current, eager `tlrecipes/__init__.py` still imports
these names from here. Nothing else may import this module; delete it once
the lazy kit `__init__` lands.
"""

from tlrecipes.lab import (
    ResultStore,
    SourceConfig,
    SourceModel,
    TrainConfig,
    aggregate,
    load_rows,
    load_source_model,
    scratch_twin,
    size_sweep,
    train_source_model,
    transfer_benefit,
    transfer_vs_scratch,
    transferability_by_layer,
)

__all__ = [
    "ResultStore",
    "SourceConfig",
    "SourceModel",
    "TrainConfig",
    "aggregate",
    "load_rows",
    "load_source_model",
    "scratch_twin",
    "size_sweep",
    "train_source_model",
    "transfer_benefit",
    "transfer_vs_scratch",
    "transferability_by_layer",
]
