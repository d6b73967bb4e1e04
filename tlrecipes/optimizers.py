"""Optimizers for the phases: a fresh one per phase, and per-layer learning rates.

`make_optimizer` builds a new optimizer of a given kind at a given rate (each
phase of `two_phase_fit` needs its own: the phase-1 optimizer's slots belong
to the head's variables). `with_lr_multipliers` makes any Keras optimizer
apply per-layer multipliers such as `tlrecipes.lr_multipliers(model)`.

Keras has no per-layer learning rate (keras-team/keras #5920, #7912,
#11934). The multiplier has to scale the *update*, not the gradient: Adam
divides the gradient by its own running scale, so a scaled gradient leaves
Adam's step unchanged. `with_lr_multipliers` therefore scales the learning
rate each variable's `update_step` receives (and AdamW's decoupled weight
decay with it), which scales the update exactly, on every backend.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

__all__ = ["make_optimizer", "with_lr_multipliers"]


def make_optimizer(
    optimizer: str | keras.optimizers.Optimizer, learning_rate: Any
) -> keras.optimizers.Optimizer:
    """Builds a fresh optimizer of the given kind at `learning_rate`.

    Each phase needs its own optimizer: the phase-1 optimizer's slots belong to
    the head's variables only, and its learning rate is the head's.

    Args:
        optimizer: A name Keras knows (`"adam"`, `"adamw"`, `"sgd"`,
            `"rmsprop"`, ...) or an optimizer instance, whose configuration
            (momentum, weight decay, ...) is copied.
        learning_rate: A float or a `keras.optimizers.schedules` schedule.

    Returns:
        A new `keras.optimizers.Optimizer`.

    Raises:
        ValueError: For an unknown optimizer name or a non-positive rate.

    Example:

    >>> round(float(make_optimizer("sgd", 0.01).learning_rate), 6)
    0.01
    """
    if isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool):
        if not learning_rate > 0:
            raise ValueError(
                "Received an invalid learning rate, expected a positive number. "
                f"Received: learning_rate={learning_rate!r}. Fix: use e.g. 1e-3 "
                "for the head and 1e-4 for fine-tuning."
            )
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        config["learning_rate"] = learning_rate
        return type(optimizer).from_config(config)
    if isinstance(optimizer, str):
        try:
            return keras.optimizers.get(
                {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
            )
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"Unknown optimizer {optimizer!r}. Expected a Keras optimizer name "
                "such as 'adam', 'adamw', 'sgd' or 'rmsprop', or an optimizer "
                f"instance. Received: optimizer={optimizer!r}."
            ) from err
    raise TypeError(
        "`optimizer` must be a name or a keras.optimizers.Optimizer. Received: "
        f"optimizer={type(optimizer).__name__}."
    )


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

    >>> from tlrecipes.optimizers import with_lr_multipliers
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
