"""Test setup of the example variant package: the core modules registered, ``transvae`` the default scope, 2 CPU
threads (what ``tests/conftest.py`` does for the core tests; these tests also run on their own:
``.venv/bin/python -m pytest projects/example_variant/tests``). The package itself is imported by each test the
way a user's ``PYTHONPATH=projects/example_variant`` does."""
import os

import torch

from transvae.apis import register_all_modules

torch.set_num_threads(min(2, os.cpu_count() or 1))
register_all_modules()
