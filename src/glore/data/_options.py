"""Checks of the built-in datasets' keyword options; errors name the option and the value given."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np

from glore.errors import ArgumentError


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (numpy integers too, bools not)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_unit(name: str, value) -> float:
    """``value`` as a float in ``(0, 1]``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
    if not ok:
        raise ArgumentError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def check_digit_options(*, digit_size, marker_size, min_distance, bright, dim) -> dict:
    """The options that distant-digits and distant-clips share, checked: digit and marker sizes,
    the minimum gap between the digits, and the bright (cue) and dim intensities."""
    bright, dim = check_unit("bright", bright), check_unit("dim", dim)
    if not dim < bright:
        raise ArgumentError(f"dim must be lower than bright, got dim={dim!r}, bright={bright!r}")
    return {"digit_size": check_int("digit_size", digit_size, 2),
            "marker_size": check_int("marker_size", marker_size, 1),
            "min_distance": check_int("min_distance", min_distance, 0), "bright": bright, "dim": dim}


def check_split(split, num_samples, defaults: dict) -> tuple[str, int]:
    """``split`` (one of ``defaults``' keys) and its size: ``num_samples``, else ``defaults[split]``."""
    if split not in defaults:
        raise ArgumentError(f"split must be one of {list(defaults)}, got {split!r}")
    return split, check_int("num_samples", defaults[split] if num_samples is None else num_samples, 1)


def check_open_unit(name: str, value) -> float:
    """``value`` as a float in ``(0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ArgumentError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def dataset_option(dataset: type, options: Mapping | None, key: str):
    """``options[key]``, else the default of ``dataset``'s keyword ``key``: the value a built-in set
    built from ``data.options`` uses, read where only its shape is needed (export, predict)."""
    options = options or {}
    if key in options:
        return options[key]
    return inspect.signature(dataset).parameters[key].default
