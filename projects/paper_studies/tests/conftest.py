"""projects/paper_studies tests: transvae is the default MMEngine scope (the studies build configs, metrics and
models through the registries); tests run on at most 2 CPU threads, as the library's tests do."""
import os

import torch

from transvae.apis import register_all_modules

torch.set_num_threads(min(2, os.cpu_count() or 1))
register_all_modules()
