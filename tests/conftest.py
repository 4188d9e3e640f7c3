"""Test-session setup: transvae is the default MMEngine scope; tests run on 2 CPU threads."""
import os

os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

import torch  # noqa: E402

from transvae.utils import register_all_modules  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
register_all_modules()
