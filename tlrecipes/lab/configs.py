"""How a source model and each experiment run train: `SourceConfig`, `TrainConfig`.

Both are frozen dataclasses: their fields are part of the hash that keys a
cached source model or a stored run, so a changed setting trains again
instead of returning stale numbers.

Every training run is budgeted in **optimisation steps**, not epochs: with 50
training images and batch size 32 an "epoch" is 2 steps, and a head trained
for a few such epochs has barely moved (measured on this project's machines).
`TrainConfig.min_steps` raises the number of epochs of small runs until each
run gets at least that many steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["SourceConfig", "TrainConfig", "as_config"]


@dataclass(frozen=True)
class SourceConfig:
    """How a source model is built and trained (the key of its cache entry).

    The architecture is `small_convnet(blocks, width, bn_momentum)` with a
    `GlobalAveragePooling -> Dropout -> Dense` head; every layer trains,
    BatchNorm included.

    Attributes:
        blocks: Conv blocks of the `small_convnet` base. Defaults to 3.
        width: Filters of its first block. Defaults to 32.
        bn_momentum: BatchNorm momentum. Defaults to 0.9 (see
            `small_convnet` for why not 0.99).
        dropout: Dropout rate of the head. Defaults to 0.2.
        epochs: Training epochs. Defaults to 5.
        batch_size: Batch size. Defaults to 64.
        learning_rate: Learning rate. Defaults to 1e-3.
        optimizer: Keras optimizer name. Defaults to `"adam"`.
    """

    blocks: int = 3
    width: int = 32
    bn_momentum: float = 0.9
    dropout: float = 0.2
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"

    def to_dict(self) -> dict[str, Any]:
        """Returns the configuration as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """How each run of an experiment trains on the target task.

    Every strategy of an experiment gets the same budget (the same number of
    optimisation steps at the same batch size), so differences come from
    what was transferred, not from how long a model trained.

    Attributes:
        epochs: Epochs of each run, raised for small datasets so that a run
            makes at least `min_steps` optimisation steps. Defaults to 10.
        min_steps: Minimum optimisation steps of each run; 0 disables the
            rule. Defaults to 200: with 10 images per class and 5 classes an
            epoch is 2 steps, and 20 steps leave a new head untrained.
        batch_size: Batch size. Defaults to 32.
        learning_rate: Learning rate of every run in which the base trains
            from the start: scratch, fine-tune all, freeze first k, and the
            Yosinski variants. Defaults to 1e-3.
        head_lr: Learning rate of every run, or phase, in which only the new
            head trains: `"feature_extractor"`, the head phase of
            `"two_phase"`, and any run whose base is entirely frozen.
            Defaults to 1e-2: a linear head on frozen features needs larger
            steps to converge within the budget. Measured on fashion_a_to_b
            (200 steps, CPU, one seed): at 10 images per class the head
            reached 0.76 test accuracy at 1e-3 (training accuracy 0.78, still
            climbing) and 0.84 at 1e-2; at 100 per class, 0.76 and 0.85.
        fine_tune_lr: Learning rate of the fine-tuning phase of
            `"two_phase"`. Defaults to 1e-4 (1e-5 barely moves a small
            network in a few hundred steps).
        head_fraction: Share of the epochs that `"two_phase"` spends on the
            head. Defaults to 0.5.
        optimizer: Keras optimizer name. Defaults to `"adam"`.
        dropout: Dropout rate of the new head. Defaults to 0.2.
        curve_points: Points of each learning curve, evenly spaced over the
            run; each costs one pass over the evaluation set. Defaults to 10.
        val_per_class: Validation images per class, drawn from the target's
            training pool and disjoint from the training images. With them,
            the learning curve is read on validation, the run's final model
            is its best-validation point (ties go to the earliest), and the
            test split is read once, on that model. Defaults to 0: no
            validation, the curve is read on test and the run's score is
            its last point (the protocol before validation splits).
    """

    epochs: int = 10
    min_steps: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    head_lr: float = 1e-2
    fine_tune_lr: float = 1e-4
    head_fraction: float = 0.5
    optimizer: str = "adam"
    dropout: float = 0.2
    curve_points: int = 10
    val_per_class: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Returns the configuration as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def as_config(config: Any, cls: type, name: str) -> Any:
    """`config` as a `cls` instance: None gives the defaults, a dict its fields."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(
                f"Unknown key(s) in `{name}`: {unknown}. Expected keys of "
                f"{cls.__name__}: {sorted(fields)}. Received: {name}={config!r}."
            )
        return cls(**config)
    raise TypeError(
        f"`{name}` must be a {cls.__name__}, a dict of its fields, or None. "
        f"Received: {name}={type(config).__name__}."
    )
