"""The registered classes of each model slot, found by the slot's base class (so a newly registered class is tested
too, wherever it is defined).

A class belongs to a slot when it derives from the slot's base class (``FFN``, ``Attention``, ``PositionEncoding``,
``Downsampler`` / ``Upsampler``, ``Norm``, ``PatchEmbed`` / ``OutputHead``, ``TokenBlock`` / ``ConvBlock``,
DESIGN.md §3). Importing this module registers every transvae module and the user package
``projects/example_variant`` (its FFN, position encoding and block), so the slot tests check a variant defined outside
``transvae/`` against the same contract.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os.path as osp
import pkgutil
import sys

from transvae.apis.setup_env import register_all_modules
from transvae.registry import MODELS

register_all_modules(init_default_scope=False)

EXAMPLE_VARIANT = osp.join(osp.dirname(__file__), '..', '..', 'projects', 'example_variant', 'example_variant')


def import_example_variants() -> list[str]:
    """Import every module of ``projects/example_variant`` (what a config's ``custom_imports`` does); their names.

    The package is imported under its own name, as ``PYTHONPATH=projects/example_variant`` would, without editing
    ``sys.path``; a second import (e.g. by the project's own tests) finds it in ``sys.modules``.
    """
    if 'example_variant' not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            'example_variant', osp.join(EXAMPLE_VARIANT, '__init__.py'), submodule_search_locations=[EXAMPLE_VARIANT])
        package = importlib.util.module_from_spec(spec)
        sys.modules['example_variant'] = package
        spec.loader.exec_module(package)
    package = sys.modules['example_variant']
    names = [f'example_variant.{m.name}' for m in pkgutil.iter_modules(package.__path__)]
    for name in names:
        importlib.import_module(name)
    return names


EXAMPLE_MODULES = import_example_variants()


def variants(base: type, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names registered in ``MODELS`` whose class derives from the slot base class ``base`` (not abstract), sorted."""
    return sorted(n for n, c in MODELS.module_dict.items()
                  if inspect.isclass(c) and issubclass(c, base) and not inspect.isabstract(c) and n not in exclude)


def registered(module: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names registered in ``MODELS`` whose class comes from ``module`` (or subclasses one that does), sorted.

    The by-file view (a slot is a base class: prefer :func:`variants`).
    """
    roots = [c for c in MODELS.module_dict.values() if inspect.isclass(c) and c.__module__ == module]
    names = [n for n, c in MODELS.module_dict.items()
             if inspect.isclass(c) and any(issubclass(c, r) for r in roots) and n not in exclude]
    return sorted(names)


def accepts(name: str, arg: str) -> bool:
    """Whether the registered class ``name`` takes constructor argument ``arg``."""
    return arg in inspect.signature(MODELS.get(name).__init__).parameters
