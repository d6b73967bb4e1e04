"""tlrecipes: transfer learning with Keras 3, taught and packaged.

The kit (`import tlrecipes as tl`) is three helpers and the controls around
them:

- `freeze_until(model, layer)`: freeze everything before a layer (nested
  models included), BatchNorm kept in inference mode; `freeze`, `unfreeze`,
  `trainable_summary`.
- `add_head(base, num_classes)`: a new classifier (logits) on a frozen base;
  `predict_proba` reads probabilities from it.
- `two_phase_fit(model, x, y, fine_tune_epochs=...)`: train the head, then
  unfreeze and fine-tune at a low learning rate.
- Fine-tuning controls: `lr_multipliers` / `with_lr_multipliers`
  (discriminative rates), `gradual_unfreeze_fit`, `surgical_fit`, `lr_find`,
  `OneCycle`; ImageNet backbones by name (`application`); `safe_load_model`;
  `set_precision`.

The lab (`tlrecipes.lab`: datasets and tasks, experiments against a
from-scratch twin, the study, plots, advice, the `tlrecipes` command) is built
on the kit; the kit never imports it.

Names are imported on first use, so `import tlrecipes` is instant and needs
no Keras backend until a helper is used. One consequence: tlrecipes' own
Keras classes (`RepeatChannels`, `OneCycle`, the ImageNet preprocessing layer)
are registered with Keras when their module is imported. `tl.safe_load_model`
imports them before loading; to load a saved model with
`keras.saving.load_model` in a fresh process, `import tlrecipes.heads`,
`tlrecipes.schedules` and `tlrecipes.image_preprocessing` first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "add_head": "heads",
    "application": "applications",
    "flat_layers": "freezing",
    "freeze": "freezing",
    "freeze_until": "freezing",
    "gradual_unfreeze_fit": "finetune",
    "layer_groups": "discriminative",
    "lr_find": "lr_finder",
    "lr_multipliers": "discriminative",
    "NaNLossError": "resume",
    "OneCycle": "schedules",
    "predict_proba": "heads",
    "safe_load_model": "safe_loading",
    "set_precision": "precision",
    "surgical_fit": "finetune",
    "trainable_summary": "freezing",
    "two_phase_fit": "training",
    "TwoPhaseHistory": "resume",
    "unfreeze": "freezing",
    "with_lr_multipliers": "optimizers",
}

__all__ = [
    "add_head",
    "application",
    "flat_layers",
    "freeze",
    "freeze_until",
    "gradual_unfreeze_fit",
    "layer_groups",
    "lr_find",
    "lr_multipliers",
    "NaNLossError",
    "OneCycle",
    "predict_proba",
    "safe_load_model",
    "set_precision",
    "surgical_fit",
    "trainable_summary",
    "two_phase_fit",
    "TwoPhaseHistory",
    "unfreeze",
    "with_lr_multipliers",
]

if TYPE_CHECKING:  # pragma: no cover
    from tlrecipes.applications import application
    from tlrecipes.discriminative import layer_groups, lr_multipliers
    from tlrecipes.finetune import gradual_unfreeze_fit, surgical_fit
    from tlrecipes.freezing import (
        flat_layers,
        freeze,
        freeze_until,
        trainable_summary,
        unfreeze,
    )
    from tlrecipes.heads import add_head, predict_proba
    from tlrecipes.lr_finder import lr_find
    from tlrecipes.optimizers import with_lr_multipliers
    from tlrecipes.precision import set_precision
    from tlrecipes.resume import NaNLossError, TwoPhaseHistory
    from tlrecipes.safe_loading import safe_load_model
    from tlrecipes.schedules import OneCycle
    from tlrecipes.training import two_phase_fit


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"tlrecipes.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name == "lab":
        return importlib.import_module("tlrecipes.lab")
    raise AttributeError(f"module 'tlrecipes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "lab"})
