"""In-process runner helpers for the reliability tests (built on ``tiny_vae_fixtures``)."""
from __future__ import annotations

import torch
from tiny_vae_fixtures import build_runner, load_ckpt  # noqa: F401 - re-exported for the reliability tests


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
