"""Mixed precision and XLA compilation switches for the helpers and recipes.

Mixed precision computes in 16 bits and keeps the weights in float32: about
twice the speed on GPUs and TPUs with 16-bit matrix units, half the
activation memory. Which 16-bit type depends on the hardware:

- **bfloat16** (`"mixed_bfloat16"`) on TPUs, on GPUs of compute capability
  8.0 or newer (A100, H100, RTX 30xx/40xx) and on CPUs: float32's range, so no
  loss scaling is needed;
- **float16** (`"mixed_float16"`) on older GPUs (V100, T4): more precision
  but a small range, so Keras scales the loss (`compile` wraps the optimizer
  in a `LossScaleOptimizer` by itself).

The classifier's output stays float32 in every case (`add_head` builds
`head_logits` with `dtype="float32"`; `with_precision` keeps the output
layers in float32): logits or a softmax computed in 16 bits round small
probabilities to 0 and the loss to inf.

Keras reads the policy when a layer is *built*, so set it before building the
model (`set_precision`), or convert a model that already exists, such as a
loaded source model saved in float32 (`with_precision`). Compilation is a
`compile()` argument: compile the model with `jit_compile=True` before
`two_phase_fit`, which reuses the model's compile options in both phases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

__all__ = [
    "POLICIES",
    "accelerator",
    "default_policy",
    "resolve_policy",
    "set_precision",
    "precision",
    "with_precision",
]

#: Names `resolve_policy` accepts, and the Keras policy each one means.
POLICIES = {
    "float32": "float32",
    "fp32": "float32",
    "mixed_bfloat16": "mixed_bfloat16",
    "bf16": "mixed_bfloat16",
    "bfloat16": "mixed_bfloat16",
    "mixed_float16": "mixed_float16",
    "fp16": "mixed_float16",
    "float16": "mixed_float16",
}


def accelerator() -> tuple[str, float | None]:
    """The kind of device the Keras backend computes on, and its CUDA capability.

    Returns:
        `(kind, capability)`: kind is `"gpu"`, `"tpu"` or `"cpu"`; capability
        is the GPU's CUDA compute capability as a float (9.0 for an H100) when
        the backend reports it, else None.

    Example:

    >>> accelerator()[0] in ("cpu", "gpu", "tpu")
    True
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        kind = device.platform
        capability = getattr(device, "compute_capability", None)
        return ("gpu" if kind in ("gpu", "cuda", "rocm") else kind), _float(capability)
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return "gpu", float(f"{major}.{minor}")
        return "cpu", None
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_logical_devices("TPU"):
            return "tpu", None
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            capability = details.get("compute_capability")
            if capability:
                return "gpu", float(f"{capability[0]}.{capability[1]}")
            return "gpu", None
    return "cpu", None


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def default_policy() -> str:
    """The mixed-precision policy for this machine: bf16 where supported, else fp16.

    bfloat16 on CPUs, TPUs and GPUs of compute capability >= 8.0 (or
    unknown); float16 on older GPUs.

    Returns:
        `"mixed_bfloat16"` or `"mixed_float16"`.

    Example:

    >>> default_policy() in ("mixed_bfloat16", "mixed_float16")
    True
    """
    kind, capability = accelerator()
    if kind == "gpu" and capability is not None and capability < 8.0:
        return "mixed_float16"
    return "mixed_bfloat16"


def resolve_policy(value: str | bool | None) -> str:
    """Turns a user's precision choice into a Keras dtype-policy name.

    Args:
        value: `"auto"` or True (`default_policy()`), None, False or
            `"float32"` (full precision), or one of `POLICIES`
            (`"bf16"`, `"mixed_bfloat16"`, `"fp16"`, `"mixed_float16"`, ...).

    Returns:
        `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"`.

    Raises:
        ValueError: For any other value.

    Example:

    >>> resolve_policy("bf16"), resolve_policy(None)
    ('mixed_bfloat16', 'float32')
    """
    if value is None or value is False:
        return "float32"
    if value is True or value == "auto":
        return default_policy()
    if isinstance(value, str) and value.lower() in POLICIES:
        return POLICIES[value.lower()]
    raise ValueError(
        "Received an invalid value for `precision`, expected 'auto', 'float32', "
        f"'bf16' (mixed_bfloat16) or 'fp16' (mixed_float16). Received: "
        f"precision={value!r}. Fix: use 'auto' to pick bf16 or fp16 for this "
        "device."
    )


def set_precision(value: str | bool | None = "auto") -> str:
    """Sets Keras's global dtype policy; layers built afterwards use it.

    Args:
        value: See `resolve_policy`. Defaults to `"auto"`.

    Returns:
        The policy name that was set.

    Raises:
        ValueError: For an unknown value.

    Example:

    >>> set_precision("bf16")
    'mixed_bfloat16'
    >>> keras.layers.Dense(2).compute_dtype
    'bfloat16'
    >>> set_precision("float32")
    'float32'
    """
    name = resolve_policy(value)
    keras.mixed_precision.set_global_policy(name)
    return name


@contextlib.contextmanager
def precision(value: str | bool | None = "auto") -> Iterator[str]:
    """Context manager: a global dtype policy inside, the previous one after.

    Args:
        value: See `resolve_policy`. Defaults to `"auto"`.

    Yields:
        The policy name in force inside the block.

    Example:

    >>> with precision("bf16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32', 'float32')
    """
    previous = keras.mixed_precision.global_policy()
    try:
        yield set_precision(value)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def with_precision(
    model: keras.Model, value: str | bool | None = "auto"
) -> keras.Model:
    """Returns a copy of `model` computing under another dtype policy.

    For models that already exist (a loaded source model, saved in float32):
    every layer, nested models included, is rebuilt under the policy and
    given the original weights (variables stay float32 under mixed policies).
    The model's output layers stay float32, so a softmax is never computed in
    16 bits. Layer names and the nesting are kept, so `add_head`,
    `freeze_until` and `find_base` work on the copy as on the original; the
    copy's `trainable` flags match the original's.

    Args:
        model: A functional or Sequential Keras model.
        value: See `resolve_policy`. Defaults to `"auto"`.

    Returns:
        A new model with the same weights.

    Raises:
        ValueError: For an unknown precision.

    Example:

    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
    ...                          keras.layers.Dense(2)], name="base")
    >>> fast = with_precision(base, "bf16")
    >>> [layer.compute_dtype for layer in fast.layers]
    ['bfloat16', 'float32']
    """
    name = resolve_policy(value)
    outputs = {id(layer) for layer in _output_layers(model)}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32" if id(layer) in outputs else name
        new = layer.__class__.from_config(config)
        new.trainable = layer.trainable
        return new

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    # compile() reads the model's own policy to decide on loss scaling (fp16).
    copy.dtype_policy = keras.DTypePolicy(name)
    for old, new in zip(_all_layers(model), _all_layers(copy), strict=True):
        new.trainable = old.trainable
    return copy


def _output_layers(model: keras.Model) -> list[keras.layers.Layer]:
    found = []
    for tensor in model.outputs or []:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            found.append(history.operation)
    return found or [model.layers[-1]]


def _all_layers(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    yield model
    for layer in getattr(model, "layers", []):
        yield from _all_layers(layer)
