"""projects/paper_studies tests: transvae is the default MMEngine scope (the studies build configs, metrics and
models through the registries); tests run on at most 2 CPU threads, as the library's tests do."""

import torch

from tests.helpers.threads import threads_per_test_process
from transvae.apis import register_all_modules

torch.set_num_threads(threads_per_test_process())
register_all_modules()
