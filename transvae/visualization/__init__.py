"""Visualizers and vis backends (the mmengine ones are used through the ``transvae`` child registries)."""
__all__: list[str] = []
