"""The backbones' channels-last forward: same values and gradients as NCHW, NCHW out, and really NHWC inside."""
from __future__ import annotations

import copy

import pytest
import torch

from transvae.models.blocks.stages import TransformerStage
from transvae.registry import MODELS

CL = torch.channels_last
TINY_HYBRID = dict(type='VAE', arch=dict(widths=[16, 16, 32, 64], depths=[1, 1, 1, 1], latent_channels=8,
                                         head_dim=16),
                   encoder=dict(type='TransVAEEncoder'), decoder=dict(type='TransVAEDecoder'))
TINY_CNN = dict(type='VAE', arch=dict(base_channels=16, channel_mults=[1, 2, 2], num_res_blocks=1, latent_channels=4,
                                      attn_levels=[2], norm_cfg=dict(type='GN', num_groups=8)),
                encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'))


def _pair(cfg: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights built with ``channels_last`` on (the default) and off."""
    torch.manual_seed(0)
    on = MODELS.build(copy.deepcopy(cfg))
    off_cfg = copy.deepcopy(cfg)
    off_cfg['arch']['channels_last'] = False
    off = MODELS.build(off_cfg)
    off.load_state_dict(on.state_dict())
    return on, off


def _conv_input_layouts(backbone: torch.nn.Module, x: torch.Tensor) -> set[bool]:
    """Whether each map conv's input was channels-last (C > 1, H, W > 1, so the two layouts differ). The FFN's
    conv in a Transformer block is left out: it reads the token-major hidden state, NHWC in either case."""
    seen: set[bool] = set()
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.add(a[0].is_contiguous(memory_format=CL)))
             for n, m in backbone.named_modules()
             if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and '.ffn.' not in n]
    with torch.no_grad():
        backbone(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize('cfg', [TINY_HYBRID, TINY_CNN], ids=['transvae', 'cnn'])
def test_channels_last_is_the_default_and_runs_nhwc_inside(cfg):
    on, off = _pair(cfg)
    assert on.encoder.channels_last and on.decoder.channels_last and not off.encoder.channels_last
    x = torch.rand(2, 3, 32, 24) * 2 - 1
    z = torch.randn(2, on.latent_channels, 8, 6)
    assert _conv_input_layouts(on.encoder, x) == {True}
    assert _conv_input_layouts(on.decoder, z) == {True}
    assert _conv_input_layouts(off.encoder, x) == {False}
    assert _conv_input_layouts(off.decoder, z) == {False}


@pytest.mark.parametrize('cfg', [TINY_HYBRID, TINY_CNN], ids=['transvae', 'cnn'])
def test_channels_last_equals_nchw_forward_and_gradients(cfg):
    on, off = _pair(cfg)
    x = torch.rand(2, 3, 40, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    outs, grads = [], []
    for m in (on, off):
        m.zero_grad(set_to_none=True)
        post = m.encode(x)
        rec = m.decode(post.mean)
        assert rec.is_contiguous() and post.mean.shape[0] == 2  # NCHW out, whatever runs inside
        (rec.square().mean() + post.mean.abs().mean()).backward()
        outs.append(rec.detach())
        grads.append({n: p.grad for n, p in m.named_parameters() if p.grad is not None})
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_transformer_stage_keeps_the_input_layout_without_copies():
    stage = TransformerStage(32, 1, dict(type='TransVAEBlock'), dict(type='RoPE2D'), head_dim=16).eval()
    x = torch.randn(2, 32, 6, 5)
    with torch.no_grad():
        nchw = stage(x)
        tokens = []
        h = stage.blocks[0].register_forward_pre_hook(lambda m, a: tokens.append(a[0]))
        xc = x.contiguous(memory_format=CL)
        nhwc = stage(xc)
        h.remove()
    assert nchw.is_contiguous() and not nchw.is_contiguous(memory_format=CL)
    assert nhwc.is_contiguous(memory_format=CL) and not nhwc.is_contiguous()
    assert tokens[0].data_ptr() == xc.data_ptr()  # the tokens are a view of the channels-last map
    torch.testing.assert_close(nhwc, nchw, atol=1e-6, rtol=1e-6)


def _nhwc_kernel_ran(out: torch.Tensor) -> bool:
    """A convolution's output is channels-last (channel stride 1) exactly when oneDNN ran its NHWC kernel."""
    return out.stride(1) == 1 and not out.is_contiguous()


def test_every_conv_runs_nhwc_at_batch_one():
    """At B = 1 a token view ``u.transpose(1, 2).reshape(1, C, H, W)`` has batch stride C: it passes
    ``is_contiguous(channels_last)`` but the convolution does not take it for channels-last and copied it to NCHW.
    Every 3x3 conv, the FFN's included, must get true channels-last strides at batch 1 as at batch 2."""
    on, _ = _pair(TINY_HYBRID)
    ran: dict[str, bool] = {}
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: ran.__setitem__(n, _nhwc_kernel_ran(o)))
             for n, m in on.named_modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    with torch.no_grad():
        on.decode(on.encode(torch.rand(1, 3, 32, 24) * 2 - 1).mean)
    for h in hooks:
        h.remove()
    assert any('.ffn.' in n for n in ran) and len(ran) > 8
    assert all(ran.values()), sorted(n for n, ok in ran.items() if not ok)


@pytest.mark.parametrize('channels,out', [(8, 16), (8, 32), (8, 8), (6, 12)])
@pytest.mark.parametrize('layout', [torch.contiguous_format, CL], ids=['nchw', 'nhwc'])
def test_dc_average_shortcut_is_unshuffle_then_mean_in_either_layout(channels, out, layout):
    """The averaging shortcut's pooled forms equal the definition (pixel-unshuffle, mean of consecutive channel
    groups) bit for bit, values and gradients, and keep the input's layout."""
    import torch.nn.functional as F

    from transvae.models.layers import space_to_channel_average
    x0 = torch.randn(2, channels, 8, 12, generator=torch.Generator().manual_seed(0))
    x = x0.clone(memory_format=layout).requires_grad_()
    ref_in = x0.clone().requires_grad_()
    u = F.pixel_unshuffle(ref_in, 2)
    ref = u if u.shape[1] == out else u.view(2, out, u.shape[1] // out, 4, 6).mean(2)
    got = space_to_channel_average(x, out)
    assert torch.equal(got, ref)
    assert got.is_contiguous(memory_format=layout)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    got.backward(g)
    ref.backward(g)
    assert torch.equal(x.grad, ref_in.grad)
