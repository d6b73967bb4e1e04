"""tlrecipes: transfer learning with Keras 3, taught and packaged.

The three helpers every recipe stands on:

- `freeze_until(model, layer)`: freeze everything before a layer (nested models
  included), BatchNorm kept in inference mode.
- `add_head(base, num_classes)`: a new classifier on a frozen base.
- `two_phase_fit(model, x, y, head_epochs=..., fine_tune_epochs=...)`: train the
  head, then unfreeze and fine-tune at a low learning rate.
"""

from tlrecipes.freezing import (
    TrainableSummary,
    flat_layers,
    freeze,
    freeze_until,
    trainable_summary,
    unfreeze,
)
from tlrecipes.heads import add_head
from tlrecipes.training import TwoPhaseHistory, make_optimizer, two_phase_fit

__version__ = "0.1.0"

__all__ = [
    "TrainableSummary",
    "TwoPhaseHistory",
    "add_head",
    "flat_layers",
    "freeze",
    "freeze_until",
    "make_optimizer",
    "trainable_summary",
    "two_phase_fit",
    "unfreeze",
]
