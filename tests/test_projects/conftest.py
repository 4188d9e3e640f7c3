"""The LightningDiT project registers itself into the core registries on import (the repository root is on the
path through the ``pythonpath`` setting of pytest in pyproject.toml)."""
import projects.lightningdit.lightningdit  # noqa: F401
