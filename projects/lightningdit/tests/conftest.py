"""Test setup of the LightningDiT project: the core modules and the project's registered, ``transvae`` the default
scope, 2 CPU threads (what ``tests/conftest.py`` does for the core tests; these tests also run on their own:
``.venv/bin/python -m pytest projects/lightningdit/tests``). The repository root is on the path through pytest's
``pythonpath`` setting in pyproject.toml, so the project imports as ``projects.lightningdit.lightningdit``."""

import torch

import projects.lightningdit.lightningdit  # noqa: F401  (registers the DiT into the core registries)
from tests.helpers.threads import threads_per_test_process
from transvae.apis import register_all_modules

torch.set_num_threads(threads_per_test_process())
register_all_modules()
