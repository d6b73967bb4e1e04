"""tlrecipes: transfer learning with Keras 3, taught and packaged.

The three helpers every recipe stands on:

- `freeze_until(model, layer)`: freeze everything before a layer (nested models
  included), BatchNorm kept in inference mode.
- `add_head(base, num_classes)`: a new classifier on a frozen base.
- `two_phase_fit(model, x, y, head_epochs=..., fine_tune_epochs=...)`: train the
  head, then unfreeze and fine-tune at a low learning rate.

Around them: offline datasets and transfer tasks (`datasets`, `tasks`),
backbones (`backbones`), experiments that measure transfer against a
from-scratch twin (`experiments`), plots (`plots`), input checks and safe
loading (`safety`), rule-based advice (`advice`), fine-tuning controls (`finetune`:
discriminative learning rates, gradual unfreezing, surgical fine-tuning;
`schedules`: one-cycle, warmup-cosine, `lr_find`) and the main job
(`study`: `tlrecipes study`).
"""

from tlrecipes.advice import Advice, advise
from tlrecipes.backbones import application, block_names, cut_after_block, small_convnet
from tlrecipes.datasets import (
    ImageSplits,
    load_fashion_mnist,
    load_image_folder,
    load_mnist,
    load_tfds,
    random_class_split,
    sample_per_class,
    split_by_class,
    to_backbone_input,
    train_val_split,
)
from tlrecipes.experiments import (
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
from tlrecipes.finetune import (
    StagedHistory,
    gradual_unfreeze_fit,
    layer_groups,
    lr_multipliers,
    surgical_fit,
    train_only,
    with_lr_multipliers,
)
from tlrecipes.freezing import (
    TrainableSummary,
    flat_layers,
    freeze,
    freeze_until,
    trainable_summary,
    unfreeze,
)
from tlrecipes.heads import RepeatChannels, add_head
from tlrecipes.plots import (
    plot_learning_curves,
    plot_size_sweep,
    plot_transfer_vs_scratch,
    plot_transferability,
)
from tlrecipes.safety import ChecksumError, safe_load_model, verify_checksum
from tlrecipes.schedules import LRFinderResult, OneCycle, WarmupCosine, lr_find
from tlrecipes.study import run_demo, run_study
from tlrecipes.tasks import Task, get_task, list_tasks, register_task
from tlrecipes.training import (
    NaNLossError,
    TwoPhaseHistory,
    make_optimizer,
    two_phase_fit,
)

__version__ = "0.1.0"

__all__ = [
    "add_head",
    "Advice",
    "advise",
    "aggregate",
    "application",
    "block_names",
    "ChecksumError",
    "cut_after_block",
    "flat_layers",
    "freeze",
    "freeze_until",
    "get_task",
    "gradual_unfreeze_fit",
    "ImageSplits",
    "layer_groups",
    "list_tasks",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "load_rows",
    "load_source_model",
    "load_tfds",
    "lr_find",
    "lr_multipliers",
    "LRFinderResult",
    "make_optimizer",
    "NaNLossError",
    "OneCycle",
    "plot_learning_curves",
    "plot_size_sweep",
    "plot_transfer_vs_scratch",
    "plot_transferability",
    "random_class_split",
    "register_task",
    "RepeatChannels",
    "ResultStore",
    "run_demo",
    "run_study",
    "safe_load_model",
    "sample_per_class",
    "scratch_twin",
    "size_sweep",
    "small_convnet",
    "SourceConfig",
    "SourceModel",
    "split_by_class",
    "StagedHistory",
    "surgical_fit",
    "Task",
    "to_backbone_input",
    "train_only",
    "train_source_model",
    "train_val_split",
    "trainable_summary",
    "TrainableSummary",
    "TrainConfig",
    "transfer_benefit",
    "transfer_vs_scratch",
    "transferability_by_layer",
    "two_phase_fit",
    "TwoPhaseHistory",
    "unfreeze",
    "verify_checksum",
    "WarmupCosine",
    "with_lr_multipliers",
]
