"""Fine-tuning controls Keras lacks: gradual unfreezing and surgical fine-tuning.

Two recipes from the fine-tuning literature, each as a small verb (the third,
discriminative learning rates, is `tlrecipes.discriminative` with
`tlrecipes.optimizers.with_lr_multipliers`):

- **Gradual unfreezing** (ULMFiT): unfreeze one block per stage from the top
  down, so the new head's early, noisy gradients reach the lowest layers
  last. `gradual_unfreeze_fit`.
- **Surgical fine-tuning** (Lee et al. 2022): tune only the block that
  matches the kind of shift (first block for input-level shifts such as a new
  image style, last block or head for a new label set), leave the rest
  frozen. `train_only` and `surgical_fit`.

Changing `trainable` takes effect at the next `compile()` in Keras 3 (the
optimizer is built for the trainable variables it first sees, and the train
function is traced for them), so the helpers here recompile at each change
of what trains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

from tlrecipes.discriminative import layer_groups
from tlrecipes.freezing import flat_layers, freeze_until, is_batchnorm, set_trainable
from tlrecipes.heads import base_bn_training
from tlrecipes.optimizers import make_optimizer, with_lr_multipliers
from tlrecipes.training import FINE_TUNE_LR, compile_args
from tlrecipes.validation import check_positive_int, validate_fit_data

__all__ = [
    "train_only",
    "surgical_fit",
    "gradual_unfreeze_fit",
    "StagedHistory",
]


# --- choosing what trains -----------------------------------------------------


def _resolve_groups(
    model: keras.Model, names: str | Sequence[str], groups: dict[str, list[str]]
) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    base_groups = [g for g in groups if g != "head"]
    aliases = {}
    if base_groups:
        aliases = {
            "first": base_groups[0],
            "middle": base_groups[len(base_groups) // 2]
            if len(base_groups) % 2
            else base_groups[len(base_groups) // 2 - 1],
            "last": base_groups[-1],
        }
    resolved = []
    for name in names:
        name = aliases.get(name, name)
        if name not in groups:
            raise ValueError(
                f"Received an invalid value for `blocks`: {name!r} is not a "
                f"layer group of model {model.name!r}. Expected one of "
                f"{list(groups)} or 'first', 'middle', 'last'. Fix: pick one of "
                "these (see tlrecipes.layer_groups(model))."
            )
        resolved.append(name)
    return resolved


def train_only(
    model: keras.Model,
    blocks: str | Sequence[str],
    *,
    train_bn: bool = False,
    groups: dict[str, list[str]] | None = None,
) -> keras.Model:
    """Makes only the chosen layer groups trainable (surgical fine-tuning).

    Lee et al. (2022) found that tuning a single block often beats tuning
    everything: the first block for input-level shifts (corruptions, a new
    image style), the last blocks or the head for a new label set. This sets
    the flags; `surgical_fit` also compiles and trains.

    BatchNormalization layers stay frozen (inference mode) unless
    `train_bn=True`, which makes every BatchNorm layer trainable, as
    `freeze_until` does.

    Args:
        model: The model to change in place.
        blocks: Group name(s) from `layer_groups(model)` (`"block2"`,
            `"head"`), or `"first"`, `"middle"`, `"last"` for the base's
            first, middle and last block.
        train_bn: Whether BatchNormalization layers train. Defaults to False.
        groups: The groups, as returned by `layer_groups`. Defaults to None:
            `layer_groups(model)`.

    Returns:
        The same model, for chaining. Recompile before fitting.

    Raises:
        ValueError: For a name that is not a group (the message lists them).

    Example:

    >>> from tlrecipes.finetune import train_only
    >>> base = keras.Sequential([keras.Input((8, 8, 1))] + [
    ...     keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")
    ...     for i in range(1, 4)], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> _ = train_only(model, "middle")
    >>> [layer.name for layer in flat_layers(model) if layer.trainable_weights]
    ['block2_conv']
    """
    groups = layer_groups(model) if groups is None else groups
    chosen = _resolve_groups(model, blocks, groups)
    names = {name for group in chosen for name in groups[group]}
    flags = [
        (leaf.name in names and not is_batchnorm(leaf))
        or (train_bn and is_batchnorm(leaf))
        for leaf in flat_layers(model)
    ]
    set_trainable(model, flags)
    return model


def _compile(
    model: keras.Model,
    optimizer: str | keras.optimizers.Optimizer,
    learning_rate: Any,
    multipliers: Mapping[str, float] | None,
    compiled: dict[str, Any],
    iterations: int = 0,
) -> keras.optimizers.Optimizer:
    opt = make_optimizer(optimizer, learning_rate)
    if multipliers is not None:
        opt = with_lr_multipliers(opt, multipliers)
    if iterations:
        opt.iterations.assign(iterations)  # a schedule continues across stages
    model.compile(optimizer=opt, **compiled)
    return opt


def _no_epochs(fit_kwargs: dict[str, Any]) -> None:
    for key in ("epochs", "initial_epoch"):
        if key in fit_kwargs:
            raise ValueError(
                f"`{key}` is set by this helper. Received: {key}="
                f"{fit_kwargs[key]!r}. Fix: use the helper's own epoch arguments."
            )


def surgical_fit(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    block: str | Sequence[str],
    epochs: int,
    learning_rate: Any = FINE_TUNE_LR,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    train_head: bool = False,
    train_bn: bool | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    validation_data: Any = None,
    **fit_kwargs: Any,
) -> keras.callbacks.History:
    """Fine-tunes only one block of a model whose head is already trained.

    Surgical fine-tuning (Lee et al. 2022): after the head has been trained
    on frozen features (phase 1 of `two_phase_fit`), tune a single block and
    leave everything else frozen. The block that helps most depends on the
    shift: early blocks for input-level shifts, later blocks for changes in
    the labels. Use it as phase 2 instead of unfreezing the whole base:

        two_phase_fit(model, x, y, head_epochs=10, fine_tune_epochs=0)
        surgical_fit(model, x, y, block="first", epochs=5)

    Args:
        model: A model whose head is trained (e.g. built by `add_head`).
        x: Training inputs, as for `model.fit`.
        y: Training labels. Defaults to None.
        block: The group(s) to tune: names from `layer_groups(model)` or
            `"first"`, `"middle"`, `"last"`, `"head"`.
        epochs: Epochs to train.
        learning_rate: Learning rate (float or schedule). Defaults to 1e-4.
        optimizer: Optimizer name or instance (copied). Defaults to `"adam"`.
        train_head: Also train the head. Defaults to False (Lee et al. tune
            one block only).
        train_bn: Whether BatchNormalization layers train. Defaults to None:
            as the model was built (`add_head(..., bn_training=...)`).
        callbacks: Keras callbacks. Defaults to None.
        validation_data: Passed to `model.fit`. Defaults to None.
        **fit_kwargs: Passed to `model.fit` by name (`batch_size`, `verbose`,
            ...).

    Returns:
        The `keras.callbacks.History` of the fit.

    Raises:
        ValueError: For an unknown block (the message lists the groups), a
            non-positive `epochs`, or bad data (labels outside the classes,
            NaN/Inf, wrong image shape, x/y lengths: the checks of
            `two_phase_fit`), before any weight moves.

    Example:

    >>> from tlrecipes.finetune import surgical_fit
    >>> base = keras.Sequential([keras.Input((8, 8, 1))] + [
    ...     keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")
    ...     for i in range(1, 3)], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
    >>> conv2 = base.get_layer("block2_conv")
    >>> before = keras.ops.convert_to_numpy(conv2.kernel)
    >>> h = surgical_fit(model, x, y, block="first", epochs=1, verbose=0)
    >>> after = keras.ops.convert_to_numpy(conv2.kernel)
    >>> bool((before == after).all())
    True
    """
    epochs = check_positive_int(epochs, "epochs")
    _no_epochs(fit_kwargs)
    if train_bn is None:
        train_bn = base_bn_training(model)
    compiled = compile_args(model, y)
    validate_fit_data(model, x, y, validation_data, compiled["loss"])  # safety.py
    blocks = [block] if isinstance(block, str) else list(block)
    if train_head and "head" not in blocks:
        blocks.append("head")
    train_only(model, blocks, train_bn=train_bn)
    _compile(model, optimizer, learning_rate, None, compiled)
    return model.fit(
        x,
        y,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=list(callbacks or []),
        **fit_kwargs,
    )


# --- gradual unfreezing -------------------------------------------------------


class StagedHistory(keras.callbacks.History):
    """The record of `gradual_unfreeze_fit`, shaped like Keras's `History`.

    Attributes:
        history: Per-epoch metric lists over all stages.
        epoch: Epoch numbers, continuous across stages.
        stages: One dict per stage: `first_epoch`, `unfreeze_from` (the
            layer training starts at) and `trainable` (names of the layers
            with trainable weights in that stage).
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stages: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"StagedHistory(epochs={len(self.epoch)}, stages={len(self.stages)})"


def _default_stages(model: keras.Model) -> list[str]:
    groups = layer_groups(model)
    weighted = {layer.name for layer in flat_layers(model) if layer.weights}
    base = [g for g in groups if g != "head"]
    return [next(n for n in groups[g] if n in weighted) for g in reversed(base)]


def gradual_unfreeze_fit(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    epochs_per_stage: int = 1,
    stages: Sequence[int | str] | None = None,
    learning_rate: Any = FINE_TUNE_LR,
    optimizer: str | keras.optimizers.Optimizer = "adam",
    lr_multipliers: Mapping[str, float] | None = None,
    train_bn: bool | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    validation_data: Any = None,
    **fit_kwargs: Any,
) -> StagedHistory:
    """Fine-tunes with gradual unfreezing: one more block per stage, top down.

    ULMFiT's gradual unfreezing: with the head trained (phase 1 of
    `two_phase_fit`), stage 1 trains the last block and the head, stage 2
    opens the block below it, and so on until the whole base trains. The
    lowest, most general layers are opened last, when the gradients reaching
    them come from an already adapted network. BatchNormalization stays
    frozen unless `train_bn`.

    Keras 3 only takes a change of `trainable` into account at `compile()`,
    so each stage recompiles with a fresh optimizer (moments restart; a
    learning-rate schedule continues, its step counter carried over) and
    runs `epochs_per_stage` epochs; epoch numbers continue across stages.

    Args:
        model: A model whose head is trained (e.g. built by `add_head`).
        x: Training inputs, as for `model.fit`.
        y: Training labels. Defaults to None.
        epochs_per_stage: Epochs each stage trains. Defaults to 1 (ULMFiT).
        stages: Layer (name or index into `flat_layers(model)`) from which
            each stage trains, in order. Defaults to None: the first layer of
            each block from `layer_groups`, last block first.
        learning_rate: Learning rate (float or schedule over all stages).
            Defaults to 1e-4.
        optimizer: Optimizer name or instance (copied per stage). Defaults to
            `"adam"`.
        lr_multipliers: Per-layer multipliers (`lr_multipliers(model)`) to
            combine gradual unfreezing with discriminative rates, as ULMFiT
            does. Defaults to None.
        train_bn: Whether BatchNormalization layers train. Defaults to None:
            as the model was built (`add_head(..., bn_training=...)`).
        callbacks: Keras callbacks, passed to every stage. Defaults to None.
        validation_data: Passed to `model.fit`. Defaults to None.
        **fit_kwargs: Passed to `model.fit` by name (`batch_size`, `verbose`,
            ...).

    Returns:
        A `StagedHistory` with the merged `history` and the `stages` run.

    Raises:
        ValueError: For a non-positive `epochs_per_stage`, empty `stages`, a
            stage layer that does not exist, or bad data (the checks of
            `two_phase_fit`), before any weight moves.

    Example:

    >>> from tlrecipes.finetune import gradual_unfreeze_fit
    >>> base = keras.Sequential([keras.Input((8, 8, 1))] + [
    ...     keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")
    ...     for i in range(1, 3)], name="base")
    >>> model = add_head(base, num_classes=3)
    >>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
    >>> h = gradual_unfreeze_fit(model, x, y, verbose=0)
    >>> [(s["first_epoch"], s["unfreeze_from"]) for s in h.stages]
    [(0, 'block2_conv'), (1, 'block1_conv')]
    """
    epochs_per_stage = check_positive_int(epochs_per_stage, "epochs_per_stage")
    _no_epochs(fit_kwargs)
    stages = _default_stages(model) if stages is None else list(stages)
    if not stages:
        raise ValueError(
            "Received an empty `stages`; expected at least one layer to start "
            "training from. Fix: pass e.g. stages=['block3_conv', "
            "'block2_conv'] or leave it None."
        )
    if train_bn is None:
        train_bn = base_bn_training(model)
    compiled = compile_args(model, y)
    validate_fit_data(model, x, y, validation_data, compiled["loss"])  # safety.py
    result = StagedHistory()
    result.set_model(model)
    iterations = 0
    for i, start in enumerate(stages):
        freeze_until(model, start, train_bn=train_bn)
        opt = _compile(
            model, optimizer, learning_rate, lr_multipliers, compiled, iterations
        )
        first = i * epochs_per_stage
        trainable = [
            layer.name for layer in flat_layers(model) if layer.trainable_weights
        ]
        start_name = start if isinstance(start, str) else flat_layers(model)[start].name
        result.stages.append(
            {"first_epoch": first, "unfreeze_from": start_name, "trainable": trainable}
        )
        hist = model.fit(
            x,
            y,
            validation_data=validation_data,
            initial_epoch=first,
            epochs=first + epochs_per_stage,
            callbacks=list(callbacks or []),
            **fit_kwargs,
        )
        iterations = int(keras.ops.convert_to_numpy(opt.iterations))
        for key, values in hist.history.items():
            result.history.setdefault(key, []).extend(float(v) for v in values)
        result.epoch.extend(hist.epoch)
        if model.stop_training:
            break
    return result
