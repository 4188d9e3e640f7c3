"""Validation of sampling settings at build time: a non-finite or out-of-range number is a config error naming the
key, never all-black samples (``guidance.scale = inf``) or a silently ignored setting (``shift = nan``)."""
from __future__ import annotations

import math
from typing import Any

from transvae.engine.config_validation import ConfigValueError


def check_number(key: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, hint: str = '') -> float:
    """``float(value)`` when it is a finite real number in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Args:
        key: the config key, for the message (e.g. ``'model.guidance.scale'``).
        value: the configured value.
        low / high: the allowed range (``None``: unbounded).
        low_open: exclude ``low`` itself.
        hint: appended to the message (what the setting means).

    Raises:
        ConfigValueError: naming ``key``, the value and the allowed range.
    """
    rng = f'{"(" if low_open else "["}{"-inf" if low is None else low}, {"inf" if high is None else high}]'
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ConfigValueError(f'{key}={value!r}: expected a finite number in {rng}{hint}')
    v = float(value)
    if (low is not None and (v < low or (low_open and v == low))) or (high is not None and v > high):
        raise ConfigValueError(f'{key}={value!r}: expected a number in {rng}{hint}')
    return v
