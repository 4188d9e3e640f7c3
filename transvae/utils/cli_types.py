"""argparse ``type=`` converters: numeric options (a zero or negative value is an error, not ignored) and
``key=value`` overrides.

``parser.add_argument('--max-iters', type=positive_int)``: argparse turns the :class:`argparse.ArgumentTypeError`
into ``error: argument --max-iters: expected a positive integer (>= 1), got '0'`` and exit status 2, before any
work. Layer 0 (``transvae.utils``): standard library only.
"""
from __future__ import annotations

import argparse
import ast
import math
from typing import Any, Callable

__all__ = ['key_value', 'positive_int', 'non_negative_int', 'positive_float', 'non_negative_float']


def _number(value: str, kind: type, what: str, ok: Callable[[float], bool]) -> Any:
    """``value`` parsed as ``kind`` (``int`` or a finite ``float``) and accepted by ``ok``, else an
    :class:`argparse.ArgumentTypeError` saying ``expected <what>``."""
    try:
        n = kind(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}') from None
    if kind is float and not math.isfinite(n):
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r} (not finite)')
    if not ok(n):
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}')
    return n


def positive_int(value: str) -> int:
    """An integer >= 1 (iterations, epochs, batch sizes, resolutions, counts)."""
    return _number(value, int, 'a positive integer (>= 1)', lambda n: n >= 1)


def non_negative_int(value: str) -> int:
    """An integer >= 0 (worker counts, ranks, seeds)."""
    return _number(value, int, 'a non-negative integer (>= 0)', lambda n: n >= 0)


def positive_float(value: str) -> float:
    """A finite number > 0 (learning rates, scales)."""
    return _number(value, float, 'a positive finite number (> 0)', lambda f: f > 0)


def non_negative_float(value: str) -> float:
    """A finite number >= 0."""
    return _number(value, float, 'a non-negative finite number (>= 0)', lambda f: f >= 0)


def key_value(value: str) -> tuple[str, Any]:
    """``'key=value'`` as ``(key, value)``, the value a Python literal where it parses as one (``2``, ``1e-4``,
    ``[1, 2]``, ``None``) and the plain string otherwise; ``dict(args.cfg_options)`` gives the overrides."""
    key, sep, raw = str(value).partition('=')
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f'expected key=value, got {value!r}')
    try:
        return key.strip(), ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key.strip(), raw
