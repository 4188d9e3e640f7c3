"""argparse ``type=`` converters for numeric command-line options: a zero or negative value is an error, not ignored.

``parser.add_argument('--max-iters', type=positive_int)``: argparse turns the :class:`argparse.ArgumentTypeError`
into ``error: argument --max-iters: expected a positive integer (>= 1), got '0'`` and exit status 2, before any
work. Layer 0 (``transvae.utils``): standard library only.
"""
from __future__ import annotations

import argparse
import math

__all__ = ['positive_int', 'non_negative_int', 'positive_float', 'non_negative_float']


def _int(value: str, what: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}') from None


def _float(value: str, what: str) -> float:
    try:
        f = float(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}') from None
    if not math.isfinite(f):
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r} (not finite)')
    return f


def positive_int(value: str) -> int:
    """An integer >= 1 (iterations, epochs, batch sizes, resolutions, counts)."""
    what = 'a positive integer (>= 1)'
    n = _int(value, what)
    if n < 1:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}')
    return n


def non_negative_int(value: str) -> int:
    """An integer >= 0 (worker counts, ranks, seeds)."""
    what = 'a non-negative integer (>= 0)'
    n = _int(value, what)
    if n < 0:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}')
    return n


def positive_float(value: str) -> float:
    """A finite number > 0 (learning rates, scales)."""
    what = 'a positive finite number (> 0)'
    f = _float(value, what)
    if f <= 0:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}')
    return f


def non_negative_float(value: str) -> float:
    """A finite number >= 0."""
    what = 'a non-negative finite number (>= 0)'
    f = _float(value, what)
    if f < 0:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value!r}')
    return f

