"""The resolution capability of transforms: which constructor arguments set a pipeline's output size.

A transform class that fixes the spatial size of its output declares the names of those arguments in the class
attribute ``resolution_keys`` (``ResizeShortSide``, ``CenterCrop``, ``RandomCrop`` and ``RandomResizedCrop``
declare ``('size',)``). Tools that change the resolution of a config's pipelines (``tools/train.py --resolution``,
``tools/test.py --resolutions``) ask the registered class through :func:`resolution_keys` instead of matching type
names, so a new registered crop / resize transform (or a subclass of one) takes part by declaring the attribute.
"""
from __future__ import annotations

from typing import Any, Optional

from transvae.registry import TRANSFORMS, resolve_type

__all__ = ['transform_class', 'resolution_keys', 'set_pipeline_resolution']


def transform_class(cfg: Any) -> Optional[type]:
    """The class a transform config dict (``type`` a registered name or a class) or instance stands for.

    Returns ``None`` for anything that names no known transform (e.g. an unregistered name).
    """
    return resolve_type(cfg, TRANSFORMS, missing_ok=True)


def resolution_keys(cfg: Any) -> tuple[str, ...]:
    """The ``resolution_keys`` declared by the transform ``cfg`` stands for (``()`` when none)."""
    cls = transform_class(cfg)
    return tuple(getattr(cls, 'resolution_keys', ()) or ()) if cls is not None else ()


def set_pipeline_resolution(pipeline: Any, resolution: int) -> int:
    """Set every resolution argument of the transform dicts in ``pipeline`` to ``resolution`` (in place).

    A pair-valued argument (``(h, w)``) becomes ``[resolution, resolution]``; a transform dict that does not state a
    declared key gets it. Returns the number of transforms changed.
    """
    changed = 0
    for t in pipeline or []:
        if not isinstance(t, dict):
            continue
        keys = resolution_keys(t)
        for key in keys:
            old = t.get(key)
            t[key] = [resolution, resolution] if isinstance(old, (list, tuple)) else resolution
        changed += bool(keys)
    return changed
