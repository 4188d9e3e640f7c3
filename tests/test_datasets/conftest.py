from __future__ import annotations

import pytest
from mmengine.registry import init_default_scope


@pytest.fixture(autouse=True)
def _scope():
    from transvae.datasets.collate import pop_skipped
    init_default_scope('transvae')
    pop_skipped()  # skips left by a test that indexed a test-mode dataset without the collate
    yield
    pop_skipped()
