"""Every registered block runs in the one stage builder of its kind (token blocks in ``TransformerStage``, window
blocks with ``window_size``, convolutional blocks in ``ConvStage``): shapes, gradients, any grid size."""
from __future__ import annotations

import pytest
import torch

from slot_registry import accepts, registered
from transvae.models.blocks.stages import ConvStage, TransformerStage

pytestmark = pytest.mark.usefixtures('one_thread')

TOKEN_BLOCKS = registered('transvae.models.blocks.transformer_block') + registered('transvae.models.blocks.swin_block')
CONV_BLOCKS = registered('transvae.models.blocks.resblock') + registered('transvae.models.blocks.attn_block')


def test_blocks_are_found():
    assert {'TransVAEBlock', 'ViTBlock', 'SwinBlock'} <= set(TOKEN_BLOCKS)
    assert {'ResBlock', 'AttnBlock'} <= set(CONV_BLOCKS)


@pytest.mark.parametrize('pe', [None, dict(type='RoPE2D')], ids=['nope', 'rope'])
@pytest.mark.parametrize('name', TOKEN_BLOCKS)
def test_token_block_in_stage(name, pe):
    window = 4 if accepts(name, 'window_size') else None
    torch.manual_seed(0)
    stage = TransformerStage(32, 2, dict(type=name), pe, head_dim=16, window_size=window)
    if window:
        assert [b.shift for b in stage.blocks] == [False, True]
    x = torch.randn(2, 32, 6, 9, requires_grad=True)  # not a multiple of the window
    y = stage(x)
    assert y.shape == x.shape and y.is_contiguous()
    y.square().mean().backward()
    assert all(p.grad is not None for p in stage.parameters())
    stage.with_cp = True  # gradient checkpointing gives the same result
    assert torch.allclose(stage(x), y, atol=1e-6)


@pytest.mark.parametrize('name', CONV_BLOCKS)
def test_conv_block_in_stage(name):
    stage = ConvStage(32, 2, dict(type=name))
    x = torch.randn(1, 32, 5, 7, requires_grad=True)
    y = stage(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert all(p.grad is not None for p in stage.parameters())
