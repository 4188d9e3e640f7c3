"""Every registered block runs in the one stage builder of its kind (token blocks in ``TransformerStage``, window
blocks with ``window_size``, convolutional blocks in ``ConvStage``): shapes, gradients, any grid size. A block's
kind is its base class (``TokenBlock`` / ``ConvBlock``), so a block registered from a user package is checked too."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

from slot_registry import accepts, variants
from transvae.models import blocks
from transvae.models.blocks import Block, ConvBlock, TokenBlock
from transvae.models.blocks.stages import ConvStage, TransformerStage
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

TOKEN_BLOCKS = variants(TokenBlock)
CONV_BLOCKS = variants(ConvBlock)


def test_blocks_are_found():
    assert {'TransVAEBlock', 'ViTBlock', 'SwinBlock', 'LayerScaleTransVAEBlock'} <= set(TOKEN_BLOCKS)
    assert {'ResBlock', 'AttnBlock'} <= set(CONV_BLOCKS)
    assert MODELS.get('LayerScaleTransVAEBlock').__module__ == 'example_variant.layerscale_block'


def test_every_registered_block_has_a_kind():
    """A registered class of ``transvae/models/blocks`` is a token or a conv block (an FSDP unit by its base)."""
    for info in pkgutil.iter_modules(blocks.__path__):
        module = importlib.import_module(f'{blocks.__name__}.{info.name}')
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and cls in MODELS.module_dict.values():
                assert issubclass(cls, (TokenBlock, ConvBlock)), f'{module.__name__}.{name} has no block base class'
                assert cls.fsdp_unit is True
    assert inspect.isabstract(TokenBlock) and inspect.isabstract(ConvBlock) and Block.fsdp_unit is True


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
