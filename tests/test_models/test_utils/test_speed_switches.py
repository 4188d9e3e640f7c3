"""Speed switches (transvae.models.utils.speed): each keeps the model's outputs (no timing assertions)."""
from __future__ import annotations

import copy

import pytest
import torch

from transvae.models.utils.speed import (apply_channels_last, autocast, compile_autoencoder, sdpa_backend,
                                         set_grad_checkpointing, to_channels_last)
from transvae.registry import MODELS

TINY = dict(widths=[16, 16, 32, 32], depths=[1, 1, 1, 1], latent_channels=4, head_dim=16)


@pytest.fixture
def vae():
    torch.manual_seed(0)
    return MODELS.build(dict(type='VAE', arch=dict(TINY), encoder=dict(type='TransVAEEncoder'),
                             decoder=dict(type='TransVAEDecoder'),
                             rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))).eval()


def _rec(model, x):
    with torch.no_grad():
        return model.reconstruct(x)


def test_channels_last_same_output(vae):
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    ref = _rec(vae, x)
    m = apply_channels_last(copy.deepcopy(vae))
    assert m.encoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(_rec(m, to_channels_last(x)), ref, atol=1e-4, rtol=1e-4)


def test_sdpa_backend_math_same_output(vae):
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    ref = _rec(vae, x)
    with sdpa_backend('math'):
        out = _rec(vae, x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        with sdpa_backend('nope'):
            pass


def test_bf16_autocast_runs_close(vae):
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    ref = _rec(vae, x)
    with autocast('cpu', 'bf16'):
        out = _rec(vae, x)
    assert out.dtype in (torch.bfloat16, torch.float32)
    assert (out.float() - ref).abs().mean() < 0.05
    with autocast('cpu', 'fp32'):
        assert not torch.is_autocast_enabled('cpu')


def test_compile_keeps_keys_and_outputs(vae):
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    ref = _rec(vae, x)
    keys = list(vae.state_dict())
    compile_autoencoder(vae, backend='eager')  # wiring only; inductor is exercised by the benchmark
    assert list(vae.state_dict()) == keys
    torch.testing.assert_close(_rec(vae, x), ref)


def test_grad_checkpointing_same_gradients(vae):
    x = torch.rand(2, 3, 32, 32) * 2 - 1

    def grads(model):
        model.train()
        model.zero_grad()
        post = model.encode(x)
        model.decode(post.mean).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    ref = grads(vae)
    m = copy.deepcopy(vae)
    assert set_grad_checkpointing(m, True) == 8  # 4 encoder + 4 decoder stages
    out = grads(m)
    assert out.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], atol=1e-5, rtol=1e-4)
    assert set_grad_checkpointing(m, False) == 8
