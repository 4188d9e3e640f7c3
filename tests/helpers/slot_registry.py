"""The registered classes of each model slot, found in the registry (so a newly registered class is tested too).

A class belongs to a slot when it is defined in the slot's module or subclasses a class defined there (a variant
registered from a user package, e.g. ``projects/example_variant``, once imported).
"""
from __future__ import annotations

import inspect

from transvae.registry import MODELS
from transvae.utils import register_all_modules

register_all_modules(init_default_scope=False)


def registered(module: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names registered in ``MODELS`` whose class comes from ``module`` (or subclasses one that does), sorted."""
    roots = [c for c in MODELS.module_dict.values() if inspect.isclass(c) and c.__module__ == module]
    names = [n for n, c in MODELS.module_dict.items()
             if inspect.isclass(c) and any(issubclass(c, r) for r in roots) and n not in exclude]
    return sorted(names)


def accepts(name: str, arg: str) -> bool:
    """Whether the registered class ``name`` takes constructor argument ``arg``."""
    return arg in inspect.signature(MODELS.get(name).__init__).parameters
