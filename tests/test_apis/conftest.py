"""Tiny VAEs for the API tests (C = 16-32, f = 8)."""
from __future__ import annotations

import pytest
import torch

from transvae.registry import MODELS

TINY_ARCH = dict(widths=[16, 16, 32, 32], depths=[1, 1, 1, 1], latent_channels=4, head_dim=16)


def tiny_model_cfg() -> dict:
    return dict(type='VAE', arch=dict(TINY_ARCH), encoder=dict(type='TransVAEEncoder'),
                decoder=dict(type='TransVAEDecoder'), rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


@pytest.fixture
def tiny_vae() -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg()).eval()


@pytest.fixture
def tiny_config(tmp_path) -> str:
    path = tmp_path / 'tiny_vae.py'
    path.write_text(f'model = {tiny_model_cfg()!r}\n')
    return str(path)
