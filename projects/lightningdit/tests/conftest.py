"""Test setup of the LightningDiT project: the core modules and the project's registered, ``transvae`` the default
scope, 2 CPU threads (what ``tests/conftest.py`` does for the core tests; these tests also run on their own:
``.venv/bin/python -m pytest projects/lightningdit/tests``). The repository root is on the path through pytest's
``pythonpath`` setting in pyproject.toml, so the project imports as ``projects.lightningdit.lightningdit``."""
import os

import torch

import projects.lightningdit.lightningdit  # noqa: F401  (registers the DiT into the core registries)
from transvae.apis import register_all_modules

torch.set_num_threads(min(2, os.cpu_count() or 1))
register_all_modules()
