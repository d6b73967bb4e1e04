"""Learning-rate schedules for fine-tuning.

- `OneCycle`: Smith's one-cycle policy as fastai's `fit_one_cycle` runs it:
  a cosine warm-up from `max_lr / div_factor` to `max_lr`, then a cosine
  anneal to almost zero. The high middle acts as a regulariser; the low end
  settles the weights.
- Linear warm-up then cosine decay, the schedule most fine-tuning recipes
  use, is Keras's own: `keras.optimizers.schedules.CosineDecay(
  initial_learning_rate=0.0, warmup_target=peak, warmup_steps=w,
  decay_steps=total - w)`.
- `lr_find` (in `tlrecipes.lr_finder`) measures which rate to start from.

`OneCycle` is a `keras.optimizers.schedules.LearningRateSchedule` registered
with Keras, so an optimizer holding one saves and loads with the model, and
`two_phase_fit(head_lr=..., fine_tune_lr=...)` takes it (or any Keras
schedule) in either phase (each phase's optimizer counts its steps from 0).
"""

from __future__ import annotations

import math
from typing import Any

import keras

from tlrecipes.validation import check_positive_int, check_positive_number

__all__ = ["OneCycle"]


def _steps(value: Any, name: str, minimum: int = 1) -> int:
    fix = "count optimizer steps, e.g. epochs * ceil(len(x) / batch_size)."
    if minimum <= 1:
        return check_positive_int(value, name, fix)
    count = check_positive_int(value, name, fix)
    if count < minimum:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected an integer >= "
            f"{minimum}. Received: {name}={value!r}. Fix: e.g. {name}=100."
        )
    return count


def _cosine(start, end, progress):
    """From `start` at progress 0 to `end` at progress 1 along half a cosine."""
    progress = keras.ops.clip(progress, 0.0, 1.0)
    return end + (start - end) * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))


@keras.saving.register_keras_serializable(package="tlrecipes")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle learning-rate policy (Smith 2018; fastai's `fit_one_cycle`).

    The rate rises along a cosine from `max_lr / div_factor` to `max_lr` over
    the first `pct_start` of the steps, then falls along a cosine to
    `max_lr / (div_factor * final_div_factor)` at `total_steps`, and stays
    there. Warming up protects a freshly initialised head and pretrained
    weights from large early steps; the high middle lets training move far
    quickly; the long low tail settles the weights. (fastai also cycles
    Adam's `beta_1` between 0.95 and 0.85; this schedule sets the rate only.)

    Args:
        max_lr: The peak learning rate.
        total_steps: Optimizer steps in the cycle: `epochs * steps_per_epoch`.
        pct_start: Fraction of the steps spent rising. Defaults to 0.25
            (fastai).
        div_factor: The cycle starts at `max_lr / div_factor`. Defaults to 25.
        final_div_factor: The cycle ends at `max_lr / (div_factor *
            final_div_factor)`. Defaults to 1e4 (PyTorch's `OneCycleLR`).
        name: Name of the schedule. Defaults to `"one_cycle"`.

    Raises:
        ValueError: For a non-positive rate, factor or step count, or
            `pct_start` outside [0, 1).

    Example:

    >>> from tlrecipes.schedules import OneCycle
    >>> s = OneCycle(1e-3, total_steps=100)
    >>> [f"{float(s(step)):.1e}" for step in (0, 25, 100)]
    ['4.0e-05', '1.0e-03', '4.0e-09']
    """

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.25,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        name: str = "one_cycle",
    ) -> None:
        super().__init__()
        self.max_lr = check_positive_number(max_lr, "max_lr", "e.g. max_lr=1e-3.")
        self.total_steps = _steps(total_steps, "total_steps")
        if not (isinstance(pct_start, (int, float)) and 0 <= float(pct_start) < 1):
            raise ValueError(
                "Received an invalid value for `pct_start`, expected a fraction in "
                f"[0, 1). Received: pct_start={pct_start!r}. Fix: e.g. 0.25."
            )
        self.pct_start = float(pct_start)
        self.div_factor = check_positive_number(div_factor, "div_factor", "e.g. 25.")
        self.final_div_factor = check_positive_number(
            final_div_factor, "final_div_factor", "e.g. 1e4."
        )
        self.name = name

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def final_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = float(math.floor(self.pct_start * self.total_steps))
        rising = _cosine(self.initial_lr, self.max_lr, step / max(warm, 1.0))
        falling = _cosine(
            self.max_lr,
            self.final_lr,
            (step - warm) / max(self.total_steps - warm, 1.0),
        )
        return keras.ops.where(step < warm, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "name": self.name,
        }
