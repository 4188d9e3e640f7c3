"""Test-session setup: transvae is the default MMEngine scope; tests run on 2 CPU threads."""

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers.threads import threads_per_test_process
from transvae.apis import register_all_modules  # noqa: E402

torch.set_num_threads(threads_per_test_process())
register_all_modules()


@pytest.fixture(scope='module')
def one_thread():
    """Run a module single-threaded: tiny ops on a shared 2-core machine are orders of magnitude faster so."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
