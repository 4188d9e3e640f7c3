"""Speed-only code paths of the layers (issue 24 item 5) give bit-identical values and gradients.

* ``RMSNorm`` on CPU runs torch's own rms_norm composite without its final copy: the same bits as
  ``F.rms_norm``, forward and backward, with the layout of the input kept (per-head Q / K stay token-major);
* ``MultiHeadSelfAttention`` splits Q / K / V off the token-major QKV view: the same bits as the head-major split;
* ``DCUpsample`` with ``C_in == C_out`` up-samples once for both paths at inference: the same bits as the two-path
  forward that autograd runs.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transvae.models.layers import RMSNorm
from transvae.models.layers.attention import MultiHeadSelfAttention
from transvae.models.layers.position import RoPE2D
from transvae.models.layers.sampling import build_sampler

pytestmark = pytest.mark.usefixtures('one_thread')


def _qk_view(seed: int) -> torch.Tensor:
    """A per-head view ``(B, heads, N, hd)`` of a token-major ``(B, N, 3, heads, hd)`` tensor, as attention makes."""
    qkv = torch.randn(2, 35, 3, 2, 16, generator=torch.Generator().manual_seed(seed))
    return qkv[:, :, 1].transpose(1, 2).requires_grad_(False)


@pytest.mark.parametrize('affine', [True, False])
def test_rmsnorm_cpu_path_is_torch_rms_norm_bit_for_bit(affine):
    norm = RMSNorm(16, eps=1e-3, affine=affine)
    if affine:
        with torch.no_grad():
            norm.weight.copy_(0.5 + torch.rand(16, generator=torch.Generator().manual_seed(1)))
    x = _qk_view(0).detach().requires_grad_(True)
    x_ref = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
    y = norm(x)
    y_ref = F.rms_norm(x_ref, (16,), norm.weight, norm.eps)
    assert torch.equal(y, y_ref)
    # the input's token-major layout is kept (torch's composite ends in a copy to head-major memory)
    assert y.stride() == (35 * 32, 16, 32, 1) and not y.is_contiguous()
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    params = [norm.weight] if affine else []
    grads = torch.autograd.grad(y, [x, *params], g)
    grads_ref = torch.autograd.grad(y_ref, [x_ref, *params], g)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_ref))


def _mhsa_head_major_split(attn: MultiHeadSelfAttention, x: torch.Tensor, hw, pos) -> torch.Tensor:
    """The split before issue 24: ``permute(2, 0, 3, 1, 4).unbind(0)`` of the QKV projection."""
    b, n, c = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if pos is not None:
        q, k = pos(q, k)
    out = F.scaled_dot_product_attention(q, k, v)
    return attn.proj(out.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize('qk_norm_cfg', [dict(type='RMSNorm'), None])
def test_mhsa_token_major_split_is_bit_identical(qk_norm_cfg):
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(64, head_dim=32, qk_norm_cfg=qk_norm_cfg)
    hw = (5, 7)
    pos = RoPE2D(head_dim=32).qk_transform(hw)
    x = torch.randn(2, 35, 64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    y = attn(x, hw, pos)
    grads = torch.autograd.grad(y.square().sum(), [x, *attn.parameters()])
    y_ref = _mhsa_head_major_split(attn, x, hw, pos)
    grads_ref = torch.autograd.grad(y_ref.square().sum(), [x, *attn.parameters()])
    assert torch.equal(y, y_ref)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_ref))


@pytest.mark.parametrize('channels', [8, 12])
def test_dc_upsample_single_upsampling_at_inference_is_bit_identical(channels):
    torch.manual_seed(0)
    up = build_sampler(dict(type='DCUpsample'), channels, channels)
    x = torch.randn(2, channels, 5, 7, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = up(x)  # one nearest up-sampling for the conv and the shortcut
    y_two_paths = up(x.requires_grad_(True))  # under autograd: conv(up(x)) + duplicate(x)
    assert y.shape == (2, channels, 10, 14)
    assert torch.equal(y, y_two_paths.detach())
    torch.testing.assert_close(y, up.conv(F.interpolate(x.detach(), scale_factor=2.0)) + x.detach().repeat_interleave(
        2, -1).repeat_interleave(2, -2), atol=0, rtol=0)
