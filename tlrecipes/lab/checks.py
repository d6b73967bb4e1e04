"""Argument checks shared by the data loaders, the samplers and `to_backbone_input`."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_image_size", "positive_int"]


def check_image_size(image_size, name: str = "image_size") -> tuple[int, int] | None:
    """`(height, width)` from a pair or one int, None kept; else a ValueError."""
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = (int(d) for d in image_size)
        ok = height > 0 and width > 0 and all(float(d) == int(d) for d in image_size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a pair of positive "
            f"integers (height, width) or one integer. Received: {name}="
            f"{image_size!r}. Fix: e.g. {name}=(160, 160)."
        )
    return height, width


def positive_int(value: Any, name: str, fix: str) -> int:
    """`value` as an int if it is a positive integer; else a ValueError naming `fix`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive "
            f"integer. Received: {name}={value!r}. Fix: {fix}"
        )
    return int(value)
