"""Fine-tuning controls Keras lacks: per-layer learning rates, gradual
unfreezing and surgical fine-tuning.

Three recipes from the fine-tuning literature, each as a small verb:

- **Discriminative learning rates** (ULMFiT, Howard & Ruder 2018; fastai's
  `slice(lo, hi)`): lower layers hold more general features and should move
  less, so each layer group gets its own learning rate, e.g. the head at the
  base rate and each group below it 2.6 times lower.
  `lr_multipliers(model)` computes the multipliers, `with_lr_multipliers`
  makes any Keras optimizer apply them, and `two_phase_fit(...,
  lr_multipliers=...)` uses them in phase 2.
- **Gradual unfreezing** (ULMFiT): unfreeze one block per stage from the top
  down, so the new head's early, noisy gradients reach the lowest layers
  last. `gradual_unfreeze_fit`.
- **Surgical fine-tuning** (Lee et al. 2022): tune only the block that
  matches the kind of shift (first block for input-level shifts such as a new
  image style, last block or head for a new label set), leave the rest
  frozen. `train_only` and `surgical_fit`.

Keras has no per-layer learning rate (keras-team/keras #5920, #7912,
#11934). The multiplier has to scale the *update*, not the gradient: Adam
divides the gradient by its own running scale, so a scaled gradient leaves
Adam's step unchanged. `with_lr_multipliers` therefore scales the learning
rate each variable's `update_step` receives (and AdamW's decoupled weight
decay with it), which scales the update exactly, on every backend.

Changing `trainable` takes effect at the next `compile()` in Keras 3 (the
optimizer is built for the trainable variables it first sees, and the train
function is traced for them), so the helpers here recompile at each change
of what trains.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tlrecipes.freezing import (
    _apply,
    _block_of,
    flat_layers,
    freeze_until,
    is_batchnorm,
)
from tlrecipes.heads import HEAD_PREFIX, base_bn_training
from tlrecipes.training import (
    FINE_TUNE_LR,
    _validate_data,
    compile_args,
    make_optimizer,
)

__all__ = [
    "ULMFIT_FACTOR",
    "layer_groups",
    "lr_multipliers",
    "with_lr_multipliers",
    "train_only",
    "surgical_fit",
    "gradual_unfreeze_fit",
    "StagedHistory",
]

#: ULMFiT's ratio between the learning rates of two neighbouring layer groups.
ULMFIT_FACTOR = 2.6


# --- layer groups -------------------------------------------------------------


def _group_key(layer: keras.layers.Layer) -> str:
    if layer.name.startswith(HEAD_PREFIX):
        return "head"
    return _block_of("", layer.name)


def layer_groups(
    model: keras.Model, starts: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Splits a model's layers into ordered groups (blocks, then the head).

    Discriminative rates, gradual unfreezing and surgical fine-tuning all
    work on groups of layers rather than single layers. By default a group is
    a run of consecutive layers that share a name prefix such as `block2`
    (`small_convnet`, VGG) or `conv4` (ResNet), and every layer named
    `head_*` (`add_head`) forms the group `"head"`. Layers without weights
    (inputs, activations, pooling) join the group of the layer before them,
    so each group has weights. Nested models are expanded.

    Args:
        model: A Keras model, e.g. one built by `add_head`.
        starts: Names of the layers where each group starts, in model order,
            for networks whose layer names do not follow a block pattern (or
            to merge blocks). Each group is named after its first layer.
            Defaults to None: groups from the layer names as above.

    Returns:
        An ordered dict `{group name: [leaf layer names]}`, input side first.

    Raises:
        ValueError: If a name in `starts` is not a layer of the model, or the
            model has no layer with weights.

    Example:

    >>> from tlrecipes.finetune import layer_groups
    >>> model = add_head(small_convnet(blocks=2, width=4), num_classes=3)
    >>> list(layer_groups(model))
    ['block1', 'block2', 'head']
    """
    leaves = flat_layers(model)
    names = [layer.name for layer in leaves]
    if starts is not None:
        starts = list(starts)
        for name in starts:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
                raise ValueError(
                    f"Received an invalid value for `starts`: no layer named "
                    f"{name!r} in model {model.name!r}. Closest names: "
                    f"{close or names[:5]}. Fix: pass names of layers of the "
                    "model (nested models are expanded)."
                )
        keys, key = [], None
        for name in names:
            key = name if name in starts else key
            keys.append(key)
    else:
        keys = [_group_key(layer) for layer in leaves]
    # A weightless layer goes with the next weighted layer when they share a
    # key (head_pool -> head), else with the group before it (block1_relu).
    following: list[str | None] = []
    nxt = None
    for layer, key in zip(reversed(leaves), reversed(keys), strict=True):
        following.append(nxt)
        if layer.weights:
            nxt = key
    following.reverse()
    groups: dict[str, list[str]] = {}
    pending: list[str] = []  # weightless layers waiting for their group
    current = None
    for layer, key, after in zip(leaves, keys, following, strict=True):
        if not layer.weights and (current is None or key == after != current):
            pending.append(layer.name)
        elif layer.weights and key is not None:
            if key != current and key in groups:
                key = f"{key}#{sum(k.split('#')[0] == key for k in groups) + 1}"
            if key != current:
                groups[key] = pending + [layer.name]
                pending, current = [], key
            else:
                groups[key].append(layer.name)
        else:
            groups[current].append(layer.name)
    if not groups:
        raise ValueError(
            f"Model {model.name!r} has no layer with weights, so there is "
            "nothing to group. Fix: pass a built model with trainable layers."
        )
    return groups


# --- discriminative learning rates ------------------------------------------


def lr_multipliers(
    model: keras.Model,
    factor: float = ULMFIT_FACTOR,
    *,
    lowest: float | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Per-layer learning-rate multipliers that fall from the head to the input.

    ULMFiT's discriminative fine-tuning: the last group (the head) trains at
    the optimizer's rate, the group below it at `1 / factor` of it, the next
    at `1 / factor**2`, and so on, because lower layers hold general features
    that should change least. With `lowest`, the multipliers are instead
    spaced geometrically from `lowest` (first group) to 1 (last group), which
    is fastai's `slice(lo, hi)` with `lo / hi = lowest`.

    Args:
        model: The model to fine-tune.
        factor: Ratio between neighbouring groups. Defaults to 2.6 (ULMFiT).
        lowest: Multiplier of the first group for geometric spacing; when
            given, `factor` is ignored. Defaults to None.
        groups: The groups, as returned by `layer_groups`. Defaults to None:
            `layer_groups(model)`.

    Returns:
        `{layer name: multiplier}` for every layer with weights, ready for
        `with_lr_multipliers` or `two_phase_fit(..., lr_multipliers=...)`.

    Raises:
        ValueError: If `factor` is below 1 or `lowest` is not in (0, 1].

    Example:

    >>> from tlrecipes.finetune import lr_multipliers
    >>> model = add_head(small_convnet(blocks=2, width=4), num_classes=3)
    >>> m = lr_multipliers(model, factor=2.0)
    >>> m["block1_conv"], m["block2_conv"], m["head_output"]
    (0.25, 0.5, 1.0)
    """
    if lowest is None and not (
        isinstance(factor, (int, float))
        and not isinstance(factor, bool)
        and factor >= 1
    ):
        raise ValueError(
            "Received an invalid value for `factor`, expected a number >= 1 (the "
            f"ratio between neighbouring groups). Received: factor={factor!r}. "
            "Fix: use factor=2.6 (ULMFiT)."
        )
    if lowest is not None and not 0 < float(lowest) <= 1:
        raise ValueError(
            "Received an invalid value for `lowest`, expected a multiplier in "
            f"(0, 1]. Received: lowest={lowest!r}. Fix: e.g. lowest=0.01 for "
            "fastai's slice(lr / 100, lr)."
        )
    groups = layer_groups(model) if groups is None else groups
    n = len(groups)
    by_name = {layer.name: layer for layer in flat_layers(model)}
    result: dict[str, float] = {}
    for i, members in enumerate(groups.values()):
        below_top = n - 1 - i
        if lowest is not None:
            value = float(lowest) ** (below_top / (n - 1)) if n > 1 else 1.0
        else:
            value = float(factor) ** -below_top
        for name in members:
            if name in by_name and by_name[name].weights:
                result[name] = value
    return result


def _check_multipliers(multipliers: Any, name: str = "multipliers") -> dict[str, float]:
    if not isinstance(multipliers, Mapping):
        raise TypeError(
            f"`{name}` must be a dict of layer name (or glob pattern) -> "
            f"multiplier. Received: {name}={type(multipliers).__name__}. Fix: "
            "use tlrecipes.lr_multipliers(model) or e.g. {'block1_*': 0.1}."
        )
    checked = {}
    for key, value in multipliers.items():
        ok = isinstance(value, (int, float, np.floating, np.integer))
        if not isinstance(key, str) or not ok or isinstance(value, bool):
            raise TypeError(
                f"`{name}` maps layer names to numbers. Received the entry "
                f"{key!r}: {value!r}. Fix: e.g. {{'block1_conv': 0.1}}."
            )
        if not (math.isfinite(float(value)) and float(value) >= 0):
            raise ValueError(
                f"Received an invalid multiplier for {key!r}, expected a finite "
                f"number >= 0. Received: {value!r}. Fix: use 0 to freeze a "
                "layer's updates, 1 for the base rate."
            )
        checked[key] = float(value)
    return checked


class _LRMultipliers:
    """Mixin: scales each variable's learning rate (so its update) by a factor.

    The multiplier of a variable is found from its path (`layer/.../name`):
    the deepest path component that a key of `lr_multipliers` names, exactly
    or as a glob pattern, decides; variables no key matches use
    `default_multiplier`. Layer paths survive saving and loading, so the
    multipliers do too.
    """

    def __init__(
        self,
        *args: Any,
        lr_multipliers: Mapping[str, float] | None = None,
        default_multiplier: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._lr_multipliers = tuple(
            _check_multipliers(lr_multipliers or {}, "lr_multipliers").items()
        )
        self._default_multiplier = _check_multipliers(
            {"default_multiplier": default_multiplier}
        )["default_multiplier"]
        self._multiplier_cache = {}

    @property
    def lr_multipliers(self) -> dict[str, float]:
        """The `{layer name or pattern: multiplier}` this optimizer applies."""
        return dict(self._lr_multipliers)

    def multiplier(self, variable: Any) -> float:
        """The learning-rate multiplier this optimizer applies to `variable`."""
        path = getattr(variable, "path", None) or getattr(variable, "name", "")
        if path in self._multiplier_cache:
            return self._multiplier_cache[path]
        parts = path.split("/")[:-1] or [path]
        exact = dict(self._lr_multipliers)
        value = self._default_multiplier
        for part in reversed(parts):
            if part in exact:
                value = exact[part]
                break
            matches = [
                v for k, v in self._lr_multipliers if fnmatch.fnmatchcase(part, k)
            ]
            if matches:
                value = matches[0]
                break
        self._multiplier_cache[path] = value
        return value

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        groups: dict[float, tuple[list, list]] = {}
        for grad, variable in zip(grads, trainable_variables, strict=True):
            grouped = groups.setdefault(self.multiplier(variable), ([], []))
            grouped[0].append(grad)
            grouped[1].append(variable)
        for value, (group_grads, group_vars) in groups.items():
            if value == 0.0:
                continue  # a zero multiplier: no update, optimizer state kept
            lr = (
                learning_rate
                if value == 1.0
                else keras.ops.multiply(learning_rate, value)
            )
            super()._backend_update_step(group_grads, group_vars, lr)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        for variable in variables:
            value = self.multiplier(variable)
            if value and self._use_weight_decay(variable):
                lr = keras.ops.cast(self.learning_rate, variable.dtype)
                wd = keras.ops.cast(self.weight_decay * value, variable.dtype)
                variable.assign(variable - variable * wd * lr)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["lr_multipliers"] = dict(self._lr_multipliers)
        config["default_multiplier"] = self._default_multiplier
        return config


_WRAPPED: dict[type, type] = {}


def _public_class(optimizer: keras.optimizers.Optimizer) -> type:
    """The public optimizer class (torch swaps in a backend-specific subclass)."""
    public = {
        getattr(keras.optimizers, name)
        for name in dir(keras.optimizers)
        if isinstance(getattr(keras.optimizers, name), type)
    }
    for cls in type(optimizer).__mro__:
        if cls in public or cls.__module__.split(".")[0] != "keras":
            return cls
    return type(optimizer)


def _wrapped_class(cls: type) -> type:
    if issubclass(cls, _LRMultipliers):
        return cls
    if cls not in _WRAPPED:
        name = f"Discriminative{cls.__name__}"
        wrapped = type(
            name,
            (_LRMultipliers, cls),
            {
                "__module__": __name__,
                "__doc__": f"`{cls.__name__}` with per-layer learning-rate "
                "multipliers (see `tlrecipes.with_lr_multipliers`).",
            },
        )
        _WRAPPED[cls] = keras.saving.register_keras_serializable(package="tlrecipes")(
            wrapped
        )
    return _WRAPPED[cls]


# Registered at import, so saved models compiled with them load by name.
for _name in ("SGD", "Adam", "AdamW", "RMSprop", "Nadam", "Adamax", "Adagrad", "Lion"):
    if hasattr(keras.optimizers, _name):
        _wrapped_class(getattr(keras.optimizers, _name))


def with_lr_multipliers(
    optimizer: str | keras.optimizers.Optimizer,
    multipliers: Mapping[str, float],
    *,
    learning_rate: Any = None,
    default_multiplier: float = 1.0,
) -> keras.optimizers.Optimizer:
    """Returns an optimizer that scales each layer's learning rate (discriminative LRs).

    The returned optimizer is the same kind (Adam, AdamW, SGD, ...) with the
    same settings, plus per-layer multipliers: a variable of layer `L` is
    updated with `learning_rate * multipliers[L]`. The multiplier scales the
    *update*: for SGD (with or without momentum) and Adam the step is exactly
    `multiplier` times the step at the base rate, and AdamW's decoupled weight
    decay is scaled too. (Scaling the gradient would do nothing under Adam,
    which divides it by its own running magnitude.) A multiplier of 0 stops a
    layer's updates without recompiling.

    The optimizer is a registered class (`tlrecipes>DiscriminativeAdam`, ...):
    a model compiled with it saves and loads with `keras.models.load_model`
    (optimizer included, multipliers restored) once `tlrecipes` is imported.

    Args:
        optimizer: An optimizer instance (its configuration is copied; the
            instance is not changed) or a Keras name such as `"adam"`.
        multipliers: `{layer name: multiplier}`, e.g. from `lr_multipliers`.
            Keys may be glob patterns (`"block1_*"`); a variable takes the
            multiplier of the deepest layer on its path that a key matches.
        learning_rate: Base learning rate (float or schedule). Defaults to
            None: the optimizer's own.
        default_multiplier: Multiplier of variables no key matches. Defaults
            to 1.0.

    Returns:
        A new `keras.optimizers.Optimizer` of class `Discriminative<Name>`.

    Raises:
        TypeError: If `multipliers` is not a dict of names to numbers.
        ValueError: For a negative or non-finite multiplier, or an unknown
            optimizer name.

    Example:

    >>> from tlrecipes.finetune import with_lr_multipliers
    >>> model = keras.Sequential([keras.Input((2,)),
    ...     keras.layers.Dense(2, name="low"), keras.layers.Dense(1, name="top")])
    >>> opt = with_lr_multipliers("sgd", {"low": 0.1}, learning_rate=0.5)
    >>> type(opt).__name__, [opt.multiplier(w) for w in model.trainable_weights]
    ('DiscriminativeSGD', [0.1, 0.1, 1.0, 1.0])
    """
    if isinstance(optimizer, str):
        base = make_optimizer(
            optimizer, 1e-3 if learning_rate is None else learning_rate
        )
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        rate = learning_rate
        if rate is None:
            config = optimizer.get_config()
            rate = config["learning_rate"]
            if isinstance(rate, dict):
                rate = keras.optimizers.schedules.deserialize(rate)
        base = make_optimizer(optimizer, rate)
    else:
        raise TypeError(
            "`optimizer` must be a name or a keras.optimizers.Optimizer. "
            f"Received: optimizer={type(optimizer).__name__}. Fix: e.g. 'adam'."
        )
    multipliers = _check_multipliers(multipliers)
    config = base.get_config()
    config["lr_multipliers"] = multipliers
    config["default_multiplier"] = default_multiplier
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = base._learning_rate  # the schedule object
    return _wrapped_class(_public_class(base))(**config)


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
    >>> model = add_head(small_convnet(blocks=3, width=4), num_classes=3)
    >>> _ = train_only(model, "middle")
    >>> sorted({w.path.split("/")[0] for w in model.trainable_weights})
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
    _apply(model, flags)
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


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive integer. "
            f"Received: {name}={value!r}. Fix: e.g. {name}=1."
        )
    return int(value)


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
    >>> model = add_head(small_convnet(blocks=2, width=4), num_classes=3)
    >>> x, y = np.random.rand(16, 28, 28, 1).astype("float32"), np.arange(16) % 3
    >>> conv2 = model.get_layer("convnet").get_layer("block2_conv")
    >>> before = keras.ops.convert_to_numpy(conv2.kernel)
    >>> h = surgical_fit(model, x, y, block="first", epochs=1, verbose=0)
    >>> after = keras.ops.convert_to_numpy(conv2.kernel)
    >>> bool((before == after).all())
    True
    """
    epochs = _positive(epochs, "epochs")
    _no_epochs(fit_kwargs)
    if train_bn is None:
        train_bn = base_bn_training(model)
    compiled = compile_args(model, y)
    _validate_data(model, x, y, validation_data, compiled["loss"])  # safety.py
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
    >>> model = add_head(small_convnet(blocks=2, width=4), num_classes=3)
    >>> x, y = np.random.rand(16, 28, 28, 1).astype("float32"), np.arange(16) % 3
    >>> h = gradual_unfreeze_fit(model, x, y, verbose=0)
    >>> [(s["first_epoch"], s["unfreeze_from"]) for s in h.stages]
    [(0, 'block2_conv'), (1, 'block1_conv')]
    """
    epochs_per_stage = _positive(epochs_per_stage, "epochs_per_stage")
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
    _validate_data(model, x, y, validation_data, compiled["loss"])  # safety.py
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
