"""Test setup of the example variant package: the core modules registered, ``transvae`` the default scope, 2 CPU
threads (what ``tests/conftest.py`` does for the core tests; these tests also run on their own:
``.venv/bin/python -m pytest projects/example_variant/tests``). The package itself is imported by each test the
way a user's ``PYTHONPATH=projects/example_variant`` does."""

import torch

from tests.helpers.threads import threads_per_test_process
from transvae.apis import register_all_modules

torch.set_num_threads(threads_per_test_process())
register_all_modules()
