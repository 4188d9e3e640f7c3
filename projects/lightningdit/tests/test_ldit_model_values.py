"""LightningDiT ``models``: values the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md) found unpinned.

adaLN-Zero closes every gate at initialisation, so a freshly built model's output does not depend on most of its
weights; here every weight is perturbed first. References are written with torch ops from the weights (one block,
the output layer, the patch embedding, unpatchify), on a non-square grid, and the core layers (norm, attention, FFN,
position encodings: pinned by their own tests) are used as given."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from projects.lightningdit.lightningdit.models import (ColumnFirstSinCosAPE, FinalLayer, LabelEmbedder,
                                                       LightningDiTBlock, TimestepEmbedder,
                                                       column_first_sincos_table, modulate, seeded_noise)
from projects.lightningdit.lightningdit.models.flops import dit_forward_flops
from projects.lightningdit.lightningdit.models.official_keys import official_to_ours
from transvae.engine.config_validation import ConfigValueError
from transvae.registry import MODELS

NORM = dict(type='RMSNorm', eps=1e-6)
ATTN = dict(type='MultiHeadSelfAttention', qk_norm_cfg=None, qkv_bias=True)
FFN = dict(type='SwiGLUFFN', ffn_ratio=4.0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def perturb(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Add noise to every parameter (opens the adaLN-Zero gates, makes the output projection non-zero)."""
    g = gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


def block_by_hand(block: LightningDiTBlock, x, c, hw, rope):
    """One block from its weights: SiLU -> Linear -> chunks, then the two gated residual branches."""
    lin = block.adaLN_modulation[1]
    mod = F.linear(F.silu(c), lin.weight, lin.bias)
    d = x.shape[-1]
    if block.wo_shift:
        sc1, g1, sc2, g2 = (mod[:, i * d:(i + 1) * d] for i in range(4))
        sh1 = sh2 = torch.zeros_like(sc1)
    else:
        sh1, sc1, g1, sh2, sc2, g2 = (mod[:, i * d:(i + 1) * d] for i in range(6))
    h = block.norm1(x) * (1 + sc1[:, None, :]) + sh1[:, None, :]
    x = x + g1[:, None, :] * block.attn(h, hw, rope)
    h = block.norm2(x) * (1 + sc2[:, None, :]) + sh2[:, None, :]
    return x + g2[:, None, :] * block.ffn(h, hw)


def final_by_hand(layer: FinalLayer, x, c):
    lin = layer.adaLN_modulation[1]
    mod = F.linear(F.silu(c), lin.weight, lin.bias)
    d = x.shape[-1]
    h = layer.norm(x) * (1 + mod[:, None, d:]) + mod[:, None, :d]
    return F.linear(h, layer.linear.weight, layer.linear.bias)


# ============================================================================================ modulate / block
def test_modulate_by_hand():
    x = torch.randn(2, 5, 3, generator=gen(1))
    shift, scale = torch.randn(2, 3, generator=gen(2)), torch.randn(2, 3, generator=gen(3))
    torch.testing.assert_close(modulate(x, shift, scale), x * (1 + scale[:, None]) + shift[:, None])
    torch.testing.assert_close(modulate(x, None, scale), x * (1 + scale[:, None]))


@pytest.mark.parametrize('wo_shift', [False, True])
def test_block_with_open_gates_by_hand(wo_shift):
    torch.manual_seed(0)
    block = LightningDiTBlock(16, 8, NORM, ATTN, FFN, wo_shift=wo_shift)
    assert block.adaLN_modulation[1].out_features == (4 if wo_shift else 6) * 16
    assert isinstance(block.adaLN_modulation[0], torch.nn.SiLU)
    perturb(block, 1)
    hw = (2, 3)
    x, c = torch.randn(2, 6, 16, generator=gen(4)), torch.randn(2, 16, generator=gen(5))
    rope = MODELS.build(dict(type='RoPE2D', head_dim=8, theta=100.0)).qk_transform(hw)
    out = block(x, c, hw, rope)
    torch.testing.assert_close(out, block_by_hand(block, x, c, hw, rope), atol=1e-5, rtol=1e-5)
    # the rotary transform reaches attention
    assert not torch.allclose(out, block(x, c, hw, None), atol=1e-4)
    # zero_init closes the block again (both weight and bias of the modulation)
    block.zero_init()
    assert block.adaLN_modulation[1].weight.abs().sum() == 0 and block.adaLN_modulation[1].bias.abs().sum() == 0
    torch.testing.assert_close(block(x, c, hw, rope), x)


def test_final_layer_by_hand_and_zero_init():
    torch.manual_seed(0)
    layer = FinalLayer(16, 2, 3, NORM)
    assert layer.linear.out_features == 2 * 2 * 3 and layer.adaLN_modulation[1].out_features == 32
    perturb(layer, 2)
    x, c = torch.randn(2, 6, 16, generator=gen(6)), torch.randn(2, 16, generator=gen(7))
    torch.testing.assert_close(layer(x, c), final_by_hand(layer, x, c), atol=1e-5, rtol=1e-5)
    layer.zero_init()
    for lin in (layer.adaLN_modulation[1], layer.linear):
        assert lin.weight.abs().sum() == 0 and lin.bias.abs().sum() == 0


# ============================================================================================ embeddings
def test_timestep_embedder_by_hand():
    torch.manual_seed(0)
    emb = TimestepEmbedder(8, freq_dims=7, max_period=50.0)
    t = torch.tensor([0.0, 0.3, 2.5])
    feats = emb.sinusoidal(t)
    freqs = [math.exp(-math.log(50.0) * k / 3) for k in range(3)]
    want = [[math.cos(tt * f) for f in freqs] + [math.sin(tt * f) for f in freqs] + [0.0] for tt in t.tolist()]
    torch.testing.assert_close(feats, torch.tensor(want), atol=1e-6, rtol=1e-6)
    m = emb.mlp
    torch.testing.assert_close(emb(t), m[2](F.silu(m[0](feats))))
    assert emb.freq_dims == 7 and emb.max_period == 50.0


def test_label_embedder_table_drop_and_checks():
    torch.manual_seed(0)
    emb = LabelEmbedder(4, 6, dropout_prob=0.25)
    assert emb.table.num_embeddings == 5 and emb.null_class == 4
    y = torch.tensor([0, 3, 2, 1])
    torch.testing.assert_close(emb(y, train=False), emb.table.weight[y])
    force = torch.tensor([1, 0, 0, 1])
    torch.testing.assert_close(emb(y, train=False, force_drop=force), emb.table.weight[torch.tensor([4, 3, 2, 4])])
    torch.testing.assert_close(emb.drop_labels(y, force.bool()), torch.tensor([4, 3, 2, 4]))
    # random drop at the configured rate, only in training
    torch.manual_seed(1)
    ys = torch.zeros(4000, dtype=torch.int64)
    dropped = (emb.drop_labels(ys) == 4).float().mean().item()
    assert abs(dropped - 0.25) < 0.03
    torch.manual_seed(2)
    want = torch.where(torch.rand(4000) < 0.25, 4, 0)
    torch.manual_seed(2)
    torch.testing.assert_close(emb(ys, train=True), emb.table.weight[want])
    torch.testing.assert_close(emb(ys, train=False), emb.table.weight[ys])
    # the null class itself is a valid label; beyond it is not
    emb(torch.tensor([4]), train=False)
    with pytest.raises(ValueError, match=r'class labels must be in \[0, 4\] \(4 = null class\), got range \[0, 5\]'):
        emb(torch.tensor([0, 5]), train=False)
    with pytest.raises(ValueError, match=r'got range \[-1, 1\]'):
        emb(torch.tensor([-1, 1]), train=False)
    # no dropout: no null row, and a null label is refused
    plain = LabelEmbedder(4, 6, dropout_prob=0.0)
    assert plain.table.num_embeddings == 4
    torch.testing.assert_close(plain(y, train=True), plain.table.weight[y])
    with pytest.raises(ValueError, match='the null class needs dropout_prob > 0'):
        plain(torch.tensor([4]), train=False)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r'dropout_prob must be in \[0, 1\)'):
            LabelEmbedder(4, 6, dropout_prob=bad)
    LabelEmbedder(4, 6, dropout_prob=0.0)


# ============================================================================================ the whole DiT
def _dit(**kw):
    cfg = dict(type='LightningDiT', arch=None, depth=2, embed_dims=16, num_heads=2, patch_size=2, in_channels=3,
               num_classes=5, rope_cfg=dict(type='RoPE2D', theta=100.0))
    cfg.update(kw)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def dit_by_hand(model, x, t, y, force_drop=None):
    p = model.patch_size
    w = model.x_embedder.proj
    tok = F.conv2d(x, w.weight, w.bias, stride=p)  # (B, D, h, w)
    hw = (tok.shape[2], tok.shape[3])
    tok = model.ape.embed_tokens(tok.flatten(2).transpose(1, 2), hw)
    rope = model.rope.qk_transform(hw)
    labels = y if force_drop is None else torch.where(force_drop.bool(), model.num_classes, y)
    c = model.t_embedder(t) + model.y_embedder.table.weight[labels]
    for block in model.blocks:
        tok = block_by_hand(block, tok, c, hw, rope)
    out = final_by_hand(model.final_layer, tok, c)  # (B, N, p*p*C_out)
    b, co = x.shape[0], model.out_channels
    out = out.reshape(b, hw[0], hw[1], p, p, co).permute(0, 5, 1, 3, 2, 4).reshape(b, co, hw[0] * p, hw[1] * p)
    return out[:, :model.in_channels]


@pytest.mark.parametrize('kw', [dict(),
                                dict(learn_sigma=True, wo_shift=True, ape_cfg=dict(type='ColumnFirstSinCosAPE'))])
def test_dit_forward_with_open_gates_by_hand(kw):
    model = perturb(_dit(**kw), 3).eval()
    x = torch.randn(2, 3, 4, 6, generator=gen(8))  # 2 x 3 tokens
    t, y = torch.tensor([0.2, 0.7]), torch.tensor([1, 4])
    out = model(x, t, y)
    assert out.shape == (2, 3, 4, 6)
    torch.testing.assert_close(out, dit_by_hand(model, x, t, y), atol=1e-5, rtol=1e-5)
    force = torch.tensor([True, False])
    torch.testing.assert_close(model(x, t, y, force), dit_by_hand(model, x, t, y, force), atol=1e-5, rtol=1e-5)
    assert model.out_channels == (6 if kw else 3) and model.learn_sigma == bool(kw)


def test_dit_init_and_checks():
    model = _dit(depth=1)
    for m in model.modules():  # every linear layer: zero bias
        if isinstance(m, torch.nn.Linear):
            assert m.bias is None or m.bias.abs().sum() == 0
    assert model.x_embedder.proj.bias.abs().sum() == 0
    bound = math.sqrt(6 / (3 * 2 * 2 + 16))  # Xavier-uniform of the patch conv as a (D, C p p) matrix
    assert model.x_embedder.proj.weight.abs().max() <= bound and model.x_embedder.proj.weight.abs().max() > bound / 2
    for w in (model.y_embedder.table.weight, model.t_embedder.mlp[0].weight, model.t_embedder.mlp[2].weight):
        assert 0.01 < w.std().item() < 0.03
    for m in (model.blocks[0].adaLN_modulation[1], model.final_layer.adaLN_modulation[1], model.final_layer.linear):
        assert m.weight.abs().sum() == 0 and m.bias.abs().sum() == 0
    with pytest.raises(ValueError, match=r'expected \(B, 3, H, W\) latents, got \(1, 4, 4, 4\)'):
        model(torch.zeros(1, 4, 4, 4), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r'latent size \(4, 5\) is not a multiple of patch 2'):
        model(torch.zeros(1, 3, 4, 5), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r'latent size \(5, 4\) is not a multiple of patch 2'):
        model(torch.zeros(1, 3, 5, 4), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match='arch=None needs depth, embed_dims, num_heads and patch_size'):
        MODELS.build(dict(type='LightningDiT', arch=None, depth=1, embed_dims=16, num_heads=2))
    with pytest.raises(ValueError, match='embed_dims=16 is not divisible by num_heads=3'):
        MODELS.build(dict(type='LightningDiT', arch=None, depth=1, embed_dims=16, num_heads=3, patch_size=1))


def test_unpatchify_by_hand():
    model = _dit(depth=1)
    x = torch.arange(2 * 6 * 12, dtype=torch.float32).reshape(2, 6, 12)  # (B, h*w, p*p*C) with h, w = 2, 3
    out = model.unpatchify(x, (2, 3))
    assert out.shape == (2, 3, 4, 6)
    for b, c, i, j in [(0, 0, 0, 0), (1, 2, 3, 5), (0, 1, 2, 3), (1, 0, 1, 4)]:
        token = (i // 2) * 3 + j // 2
        assert out[b, c, i, j] == x[b, token, ((i % 2) * 2 + j % 2) * 3 + c]


def test_flops_by_hand():
    model = _dit(depth=3, embed_dims=16, num_heads=2, patch_size=2, in_channels=3, learn_sigma=True)
    n, d, p, b = 2 * 3, 16, 2, 5
    ffn = sum(m.in_features * m.out_features for m in model.blocks[0].ffn.modules()
              if isinstance(m, torch.nn.Linear))
    assert ffn == 3 * d * int(2 / 3 * 4 * d)  # SwiGLU: two input projections and one output of int(2/3 * 4 D)
    block = n * (4 * d * d + ffn) + 2 * n * n * d + d * 6 * d
    macs = 3 * block + n * 3 * p * p * d + n * d * p * p * 6 + 2 * d * d
    t_mlp = 256 * d + d * d
    got = dit_forward_flops(model, b, (4, 6))
    assert type(got) is int
    assert got in (2 * b * (macs + t_mlp), 2 * b * macs + 2 * t_mlp * b), got
    assert dit_forward_flops(model, 1, (4, 6)) * b == got


# ============================================================================================ official layout
def test_official_key_names():
    assert official_to_ours('y_embedder.embedding_table.weight') == 'y_embedder.table.weight'
    assert official_to_ours('blocks.12.mlp.w12.weight') == 'blocks.12.ffn.w12.weight'
    assert official_to_ours('final_layer.norm_final.weight') == 'final_layer.norm.weight'
    assert official_to_ours('blocks.3.attn.qkv.weight') == 'blocks.3.attn.qkv.weight'
    assert official_to_ours('x.y_embedder.embedding_table.weight') == 'x.y_embedder.embedding_table.weight'
    assert official_to_ours('blocks.1.norm1.mlp.x') == 'blocks.1.norm1.mlp.x'


def test_column_first_table_non_square_and_theta():
    d, (h, w), theta = 12, (2, 5), 50.0
    table = column_first_sincos_table(d, (h, w), theta)
    assert table.dtype == torch.float64 and table.shape == (10, 12)
    om = [theta ** (-k / 3) for k in range(3)]
    for y in range(h):
        for x in range(w):
            want = ([math.sin(x * o) for o in om] + [math.cos(x * o) for o in om]
                    + [math.sin(y * o) for o in om] + [math.cos(y * o) for o in om])
            assert table[y * w + x].tolist() == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match='the sin-cos table needs embed_dims divisible by 4, got 10'):
        column_first_sincos_table(10, (2, 2))
    ape = ColumnFirstSinCosAPE(12, theta=theta)
    assert ape.theta == theta and ape.embed_dims == 12
    x = torch.randn(2, 10, 12, dtype=torch.float64, generator=gen(9))
    out = ape.embed_tokens(x, (h, w))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x + table.float().double())
    torch.testing.assert_close(ape.table((h, w)), table.float())
    xb = x.to(torch.bfloat16)  # the table is cast to the tokens' dtype (a float32 table would promote bf16 tokens)
    outb = ape.embed_tokens(xb, (h, w))
    assert outb.dtype == torch.bfloat16
    torch.testing.assert_close(outb, xb + table.to(torch.bfloat16))
    # a second grid of the same size count is another table (the cache is keyed by the grid)
    torch.testing.assert_close(ape.embed_tokens(x, (5, 2)), x + column_first_sincos_table(12, (5, 2), theta).float()
                               .double())
    with pytest.raises(ValueError, match='ColumnFirstSinCosAPE needs embed_dims divisible by 4, got 6'):
        ColumnFirstSinCosAPE(6)


# ============================================================================================ the flow model
def _flow(**kw):
    torch.manual_seed(0)
    cfg = dict(type='LatentFlowModel', latent_size=(2, 4),
               backbone=dict(type='LightningDiT', arch=None, depth=1, embed_dims=16, num_heads=2, patch_size=1,
                             in_channels=3, num_classes=4, class_dropout_prob=0.0),
               timesteps=dict(type='UniformTimesteps'), sampler=dict(type='EulerODESampler', num_steps=2, shift=0.0))
    cfg.update(kw)
    model = MODELS.build(cfg)
    perturb(model.backbone, 4)
    return model


def test_flow_model_loss_by_hand():
    model = _flow()
    assert model.latent_shape == (3, 2, 4) and model.latent_size == (2, 4)
    x1 = torch.randn(2, 3, 2, 4, generator=gen(10))
    y = torch.tensor([1, 3])
    torch.manual_seed(11)
    losses = model.loss(x1, y)
    torch.manual_seed(11)
    x0 = torch.randn_like(x1)
    t = model.timesteps.sample(2, device=x1.device)
    xt = t.view(-1, 1, 1, 1) * x1 + (1 - t.view(-1, 1, 1, 1)) * x0
    want = model.loss_fn(model.backbone(xt, t, y), x1 - x0)
    assert set(losses) == set(want)
    for k in want:
        torch.testing.assert_close(losses[k], want[k])
    # loss mode through forward gives the same with the labels of the data samples
    torch.manual_seed(11)
    via = model(x1, [dict(label=1), dict(label=3)], mode='loss')
    for k in want:
        torch.testing.assert_close(via[k], want[k])
    with pytest.raises(ConfigValueError, match=r'training latents of shape \(3, 4, 2\), the DiT is configured for '
                                               r'\(3, 2, 4\)'):
        model.loss(torch.zeros(2, 3, 4, 2), y)


def test_flow_model_tensor_mode_and_modes():
    model = _flow().eval()
    x = torch.randn(2, 3, 2, 4, generator=gen(12))
    samples = [dict(label=2, t=0.25), dict(label=1, t=0.9)]
    torch.testing.assert_close(model(x, samples, mode='tensor'), model.backbone(x, torch.tensor([0.25, 0.9]),
                                                                                   torch.tensor([2, 1])))
    torch.testing.assert_close(model(x, [dict(label=3), dict(label=0)], mode='tensor'),
                               model.backbone(x, torch.tensor([0.5, 0.5]), torch.tensor([3, 0])))
    torch.testing.assert_close(model(x, None, mode='tensor'),
                               model.backbone(x, torch.tensor([0.5, 0.5]), torch.tensor([0, 0])))
    with pytest.raises(ValueError, match="mode must be 'loss', 'predict' or 'tensor', got 'x'"):
        model(x, samples, mode='x')
    with pytest.raises(ValueError, match=r'need one data sample with a `label` per input \(2\), got 1'):
        model(x, samples[:1], mode='loss')
    with pytest.raises(ValueError, match=r'per input \(2\), got None'):
        model(x, None, mode='loss')
    with pytest.raises(ValueError, match=r"predict mode takes the initial noise \(B, C, h, w\) = \(B, \(3, 2, 4\)\), "
                                         r"got \(1, 3, 4, 2\): the test dataset's latent_shape does not match"):
        model(torch.zeros(1, 3, 4, 2), samples[:1], mode='predict')


def test_flow_model_initial_noise_and_sample():
    model = _flow()
    noise = model.initial_noise(2, seeds=[7, 3])
    torch.testing.assert_close(noise, torch.stack([seeded_noise((3, 2, 4), 7), seeded_noise((3, 2, 4), 3)]))
    torch.testing.assert_close(seeded_noise((3, 2, 4), 7),
                               torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(7)))
    assert model.initial_noise(1, seeds=[7], latent_size=(4, 2)).shape == (1, 3, 4, 2)
    torch.manual_seed(5)
    free = model.initial_noise(2, latent_size=(1, 3))
    torch.manual_seed(5)
    torch.testing.assert_close(free, torch.randn(2, 3, 1, 3))
    assert model.initial_noise(2, device='cpu').device.type == 'cpu'
    # sample: the configured sampler from the given noise, in eval mode, the training flag restored
    model.train()
    y = torch.tensor([0, 2])
    z = model.sample(y, noise=noise)
    assert model.backbone.training
    v0 = model.backbone.eval()(noise, torch.zeros(2), y)
    x_half = noise + 0.5 * v0
    want = x_half + 0.5 * model.backbone(x_half, torch.full((2,), 0.5), y)
    torch.testing.assert_close(z, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.sample(y, seeds=[7, 3]), z, atol=1e-6, rtol=1e-6)
    one = MODELS.build(dict(type='EulerODESampler', num_steps=1, shift=0.0))
    torch.testing.assert_close(model.sample(y, noise=noise, sampler=one), noise + v0, atol=1e-5, rtol=1e-5)
    model.eval()
    model.sample(y, noise=noise)
    assert not model.backbone.training
    preds = model(noise, [dict(label=0, index=4), dict(label=2, index=5)], mode='predict')
    torch.testing.assert_close(torch.stack([p['pred_latent'] for p in preds]), z, atol=1e-5, rtol=1e-5)
    assert [p['index'] for p in preds] == [4, 5]


def test_flow_model_defaults_and_preprocessor():
    from projects.lightningdit.lightningdit.models import LatentDataPreprocessor
    torch.manual_seed(0)
    model = MODELS.build(dict(type='LatentFlowModel', latent_size=3, backbone=dict(
        type='LightningDiT', arch=None, depth=1, embed_dims=16, num_heads=2, patch_size=1, in_channels=2,
        num_classes=3)))
    assert model.latent_size == (3, 3) and model.latent_shape == (2, 3, 3)
    assert type(model.timesteps).__name__ == 'LogitNormalTimesteps'
    assert type(model.path).__name__ == 'LinearPath' and type(model.loss_fn).__name__ == 'VelocityLoss'
    assert type(model.sampler).__name__ == 'EulerODESampler'
    assert (model.sampler.num_steps, model.sampler.shift) == (250, 0.3)
    assert type(model.guidance).__name__ == 'ClassifierFreeGuidance' and model.guidance.scale == 1.0
    assert isinstance(model.data_preprocessor, LatentDataPreprocessor)
    # the preprocessor: a list of (C, H, W) or a (B, C, H, W) tensor -> float32; pseudo_collate's dict of lists
    # -> a list of dicts
    pre = model.data_preprocessor
    a, b = torch.randn(2, 3, 3, dtype=torch.float64), torch.randn(2, 3, 3, dtype=torch.float64)
    out = pre(dict(inputs=[a, b], data_samples=dict(label=[1, 2], index=[7, 8])))
    assert out['inputs'].dtype == torch.float32 and out['inputs'].shape == (2, 2, 3, 3)
    torch.testing.assert_close(out['inputs'], torch.stack([a, b]).float())
    assert out['data_samples'] == [dict(label=1, index=7), dict(label=2, index=8)]
    out = pre(dict(inputs=torch.stack([a, b]), data_samples=[dict(label=0)]))
    torch.testing.assert_close(out['inputs'], torch.stack([a, b]).float())
    assert out['data_samples'] == [dict(label=0)] and pre(dict(inputs=[a]))['data_samples'] is None
    with pytest.raises(KeyError) as err:
        model(torch.zeros(1, 2, 3, 3), [dict(index=0)], mode='loss')
    assert err.value.args == ('every data sample needs a `label` (class index) for the class-conditional DiT',)


def test_constructor_defaults_init_cfg_and_label_dropout_in_training():
    """What the converter's configs and the Fig. 6 configs leave to the defaults: a B/1 for 32-channel latents and
    1000 classes without activation checkpointing, RMSNorm eps 1e-6, label dropout 0.1, theta 10000, latent size 16,
    ``tensor`` mode; ``init_cfg`` reaches mmengine; the whole messages; training-mode label dropout."""
    with torch.device('meta'):  # shapes only: a B/1 without its memory
        b1 = MODELS.build(dict(type='LightningDiT'))
    assert (b1.arch, b1.in_channels, b1.num_classes, b1.use_checkpoint, len(b1.blocks)) == ('B/1', 32, 1000, False, 12)
    assert tuple(b1.x_embedder.proj.weight.shape) == (768, 32, 1, 1)
    assert (b1.blocks[0].norm1.eps, b1.blocks[0].norm2.eps, b1.final_layer.norm.eps) == (1e-6, 1e-6, 1e-6)
    emb = LabelEmbedder(5, 8)
    assert (emb.dropout_prob, emb.table.num_embeddings) == (0.1, 6)
    assert ColumnFirstSinCosAPE(8).theta == 10000.0
    with pytest.raises(KeyError) as err:
        MODELS.build(dict(type='LightningDiT', arch='B/3'))
    assert err.value.args == ("unknown LightningDiT arch 'B/3'; choose from ['B/1', 'B/2', 'L/2', 'XL/1', 'XL/2', "
                              "'micro'] or pass arch=None with depth / embed_dims / num_heads / patch_size",)
    with pytest.raises(ValueError) as err:
        MODELS.build(dict(type='LightningDiT', arch=None, depth=1, embed_dims=16, num_heads=2))
    assert str(err.value) == 'arch=None needs depth, embed_dims, num_heads and patch_size'
    # the patch convolution's Xavier bound as a (D, C p p) matrix, close to reached (not that of a (C, D p p) view)
    bound = math.sqrt(6 / (3 * 2 * 2 + 16))
    assert 0.8 * bound < _dit(depth=1).x_embedder.proj.weight.abs().max() <= bound
    init_cfg = dict(type='Constant', val=0.5, layer='Linear')
    assert _dit(depth=1, init_cfg=init_cfg).init_cfg == init_cfg
    backbone = dict(type='LightningDiT', arch=None, depth=1, embed_dims=16, num_heads=2, patch_size=1, in_channels=2,
                    num_classes=3)
    flow = MODELS.build(dict(type='LatentFlowModel', backbone=backbone, init_cfg=init_cfg))
    assert flow.latent_size == (16, 16) and flow.init_cfg == init_cfg
    x = torch.randn(2, 2, 4, 4)
    assert torch.equal(flow(x), flow(x, mode='tensor'))
    # training mode: each label is replaced by the null class where torch.rand(B) < 0.5 (the first draw of the
    # forward), the same as forcing those drops in eval mode
    model = perturb(_dit(depth=1, class_dropout_prob=0.5))
    x, t, y = torch.randn(4, 3, 4, 4), torch.rand(4), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)
    drop = torch.rand(4) < 0.5
    assert drop.any() and not drop.all()
    torch.manual_seed(1)
    with torch.no_grad():
        train = model.train()(x, t, y)
        assert torch.equal(train, model.eval()(x, t, y, force_drop=drop))
        assert not torch.allclose(train, model(x, t, y))
    # without label dropout the training forward draws nothing from the global generator
    model = _dit(depth=1, class_dropout_prob=0.0).train()
    torch.manual_seed(5)
    with torch.no_grad():
        model(x, t, y)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))


def test_token_grid_reaches_a_spatial_ffn():
    """Every block hands the token grid to its FFN slot: with a depthwise-conv FFN (which folds the tokens back into
    the grid) the forward equals the by-hand one, with and without activation checkpointing."""
    model = perturb(_dit(ffn_cfg=dict(type='DWConvFFN')), 4)
    x = torch.randn(2, 3, 8, 4, generator=gen(9))  # 4 x 2 tokens
    t, y, keep = torch.tensor([0.3, 0.6]), torch.tensor([2, 0]), torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        want = dit_by_hand(model, x, t, y)
        torch.testing.assert_close(model.eval()(x, t, y), want, atol=1e-5, rtol=1e-5)
    model.use_checkpoint = True
    out = model.train()(x, t, y, keep)  # with gradients: every block recomputed in the backward pass
    torch.testing.assert_close(out.detach(), want, atol=1e-5, rtol=1e-5)


def test_flops_of_a_one_block_dit():
    """The FLOP count reads the block sizes from the first (here the only) block."""
    model = _dit(depth=1)  # width 16, patch 2, 3 channels
    n, d, ffn = 2 * 3, 16, 3 * 16 * int(2 / 3 * 4 * 16)
    macs = n * (4 * d * d + ffn) + 2 * n * n * d + d * 6 * d + n * 3 * 4 * d + n * d * 4 * 3 + 2 * d * d
    assert dit_forward_flops(model, 2, (4, 6)) == 2 * 2 * (macs + 256 * d + d * d)
