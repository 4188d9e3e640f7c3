"""LightningDiT model: published sizes, adaLN-Zero identity, label dropout, SwiGLU width, shapes."""
from __future__ import annotations

import pytest
import torch

from projects.lightningdit.lightningdit.models import LightningDiT, LightningDiTBlock
from projects.lightningdit.lightningdit.models.flops import dit_forward_flops
from transvae.registry import MODELS


def reference_count(depth: int, d: int, patch: int, c: int, num_classes: int = 1000) -> int:
    """Parameters of hustvl/LightningDiT ``LightningDiT`` (SwiGLU, RMSNorm, RoPE, no QK-norm, learn_sigma false),
    counted from its module list, *without* its frozen sin-cos ``pos_embed`` parameter."""
    h = int(2 / 3 * int(d * 4.0))
    block = (2 * d  # two RMSNorm weights
             + 3 * d * d + 3 * d + d * d + d  # qkv (bias) + proj
             + d * 2 * h + 2 * h + h * d + d  # SwiGLU w12 + w3
             + d * 6 * d + 6 * d)  # adaLN
    patch_embed = c * patch * patch * d + d
    t_embed = 256 * d + d + d * d + d
    y_embed = (num_classes + 1) * d
    final = d + d * 2 * d + 2 * d + d * patch * patch * c + patch * patch * c
    return depth * block + patch_embed + t_embed + y_embed + final


@pytest.mark.parametrize('arch,in_ch,depth,d,patch', [('B/2', 16, 12, 768, 2), ('B/1', 32, 12, 768, 1),
                                                      ('XL/1', 32, 28, 1152, 1)])
def test_param_counts_match_reference(arch, in_ch, depth, d, patch):
    with torch.device('meta'):
        model = MODELS.build(dict(type='LightningDiT', arch=arch, in_channels=in_ch, num_classes=1000))
    n = sum(p.numel() for p in model.parameters())
    assert n == reference_count(depth, d, patch, in_ch)
    ape = 256 * d  # the reference stores its fixed APE as a (frozen) parameter of 256 tokens; ours is computed
    if arch == 'XL/1':
        assert round((n + ape) / 1e6, 2) == 675.26  # "LightningDiT Parameters: 675.26M" (reference docs/log.txt)
    else:
        assert abs((n + ape) / 1e6 - 130) / 130 < 0.005  # DiT-B's published 130M (SwiGLU 2/3*4D keeps the size)


def test_swiglu_hidden_width():
    for d, hidden in ((768, 2048), (1152, 3072)):
        with torch.device('meta'):
            ffn = MODELS.build(dict(type='SwiGLUFFN', embed_dims=d, ffn_ratio=4.0))
        assert ffn.hidden == hidden


def _micro(**kw):
    torch.manual_seed(0)
    cfg = dict(type='LightningDiT', arch=None, depth=2, embed_dims=32, num_heads=2, patch_size=2, in_channels=4,
               num_classes=5)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_adaln_zero_blocks_are_identity_at_init():
    model = _micro()
    x = torch.randn(2, 16, 32)
    c = torch.randn(2, 32)
    for block in model.blocks:
        assert isinstance(block, LightningDiTBlock)
        assert torch.equal(block(x, c, (4, 4), model.rope.qk_transform((4, 4))), x)
    out = model(torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 4]))
    assert out.shape == (2, 4, 8, 8) and torch.count_nonzero(out) == 0  # zero-initialised output layer
    # once the modulation is non-zero the block is no longer the identity
    torch.nn.init.normal_(model.blocks[0].adaLN_modulation[-1].weight, std=0.1)
    assert not torch.allclose(model.blocks[0](x, c, (4, 4)), x)


def test_forward_backward_and_any_grid():
    model = _micro()
    for m in model.modules():  # leave adaLN-Zero so gradients reach every weight
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.05)
    x = torch.randn(3, 4, 8, 12, requires_grad=True)
    out = model(x, torch.rand(3), torch.tensor([0, 1, 2]))
    assert out.shape == x.shape
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match='multiple of patch'):
        model(torch.randn(1, 4, 7, 8), torch.rand(1), torch.tensor([0]))
    with pytest.raises(ValueError, match='latents'):
        model(torch.randn(1, 3, 8, 8), torch.rand(1), torch.tensor([0]))
    with pytest.raises(ValueError, match='class labels'):
        model(torch.randn(1, 4, 8, 8), torch.rand(1), torch.tensor([6]))


def test_label_dropout_rate_and_null_class():
    model = _micro()
    emb = model.y_embedder
    assert emb.table.num_embeddings == 6 and emb.null_class == 5
    torch.manual_seed(0)
    labels = torch.zeros(20000, dtype=torch.int64)
    dropped = (emb.drop_labels(labels) == 5).float().mean().item()
    assert abs(dropped - 0.1) < 0.01
    # training mode drops, eval mode never does; forced drops always map to the null row
    y = torch.arange(5).repeat(400)
    assert torch.equal(emb(y, train=False), emb.table(y))
    train_out = emb(y, train=True)
    frac = (train_out == emb.table.weight[5]).all(dim=1).float().mean().item()
    assert 0.06 < frac < 0.14
    forced = emb(torch.tensor([1, 2]), train=False, force_drop=torch.tensor([True, False]))
    assert torch.equal(forced[0], emb.table.weight[5]) and torch.equal(forced[1], emb.table.weight[2])
    no_null = _micro(class_dropout_prob=0.0).y_embedder
    assert no_null.table.num_embeddings == 5
    with pytest.raises(ValueError, match='null class'):
        no_null(torch.tensor([0]), train=False, force_drop=torch.tensor([True]))


def test_unknown_arch_and_positions_are_used():
    with pytest.raises(KeyError, match='unknown LightningDiT arch'):
        LightningDiT(arch='S/3')
    model = _micro()
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.05)
    x = torch.zeros(1, 4, 8, 8)  # a constant input: only the position encodings make tokens differ
    out = model(x, torch.full((1,), 0.5), torch.tensor([1]))
    assert out[0, :, 0:2, 0:2].sub(out[0, :, 4:6, 4:6]).abs().max() > 1e-4


def test_analytic_flops_match_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    from projects.lightningdit.lightningdit.models.flops import dit_forward_flops
    model = _micro(embed_dims=64)
    x = torch.randn(3, 4, 8, 12)
    with FlopCounterMode(display=False) as counter:
        model(x, torch.rand(3), torch.tensor([0, 1, 2]))
    counted = counter.get_total_flops()
    n, d = 24, 64
    attention = 2 * 3 * len(model.blocks) * 2 * n * n * d  # QK^T + AV: the CPU SDPA kernel is not counted by torch
    measured = counted if counted == dit_forward_flops(model, 3, (8, 12)) else counted + attention
    assert measured == dit_forward_flops(model, 3, (8, 12))


@pytest.mark.parametrize('name,arch,in_ch,depth,d,patch,iters', [
    ('lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py', 'B/2', 16, 12, 768, 2, 200000),
    ('lightningdit-b1_transvae-l-f16d32_32xb32-200k_in1k.py', 'B/1', 32, 12, 768, 1, 200000),
    ('lightningdit-xl1_transvae-l-f16d32_32xb32-100k_in1k.py', 'XL/1', 32, 28, 1152, 1, 100000)])
def test_fig6_configs_build_at_the_published_size(name, arch, in_ch, depth, d, patch, iters):
    import os.path as osp

    from mmengine.config import Config

    from transvae.engine.config_surgery import apply_preset
    path = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'configs', name)
    cfg = Config.fromfile(path)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.arch == arch and model.latent_shape[0] == in_ch
    assert model.latent_shape[1] * model.latent_shape[2] // patch ** 2 == 256  # 256 tokens in every panel
    assert sum(p.numel() for p in model.parameters()) == reference_count(depth, d, patch, in_ch)
    assert cfg.train_cfg.max_iters == iters and cfg.train_dataloader.batch_size * 32 == 1024
    opt = cfg.optim_wrapper
    assert opt.dtype == 'bfloat16' and opt.optimizer.lr == 2e-4 and tuple(opt.optimizer.betas) == (0.9, 0.95)
    assert opt.optimizer.weight_decay == 0 and cfg.custom_hooks[0].momentum == 1e-4
    assert model.guidance.scale == 1.0 and model.sampler.shift == 0.3 and model.guidance.guided_channels is None
    # the reference's protocol: `num_sampling_steps: 250` = a 250-point grid = 249 Euler steps
    assert model.sampler.num_steps == 249 and model.sampler.num_grid_points == 250
    assert not model.backbone.use_checkpoint and not model.backbone.blocks[0].wo_shift
    # the generation-FID test set draws noise of the model's latent shape; the metric decodes with an existing VAE
    assert tuple(cfg.test_dataloader.dataset.latent_shape) == model.latent_shape
    assert cfg.test_dataloader.dataset.num_samples == 10000 and cfg.test_report.type == 'GenerationFIDReport'
    assert osp.isfile(osp.join(osp.dirname(path), '..', '..', '..', cfg.test_evaluator.vae_config))
    assert cfg.test_evaluator.latent_dir == cfg.train_dataloader.dataset.data_root
    apply_preset(cfg, 'cpu')
    micro = MODELS.build(cfg.model)
    assert micro.latent_shape == (16, 8, 8) == tuple(cfg.test_dataloader.dataset.latent_shape)
    assert micro.backbone.arch == 'micro' and micro.backbone.num_classes == 21 and micro.backbone.patch_size == 2
    assert dict(cfg.train_dataloader.sampler) == dict(type='ClassBalancedSampler', num_samples=12800)


@pytest.mark.parametrize('name', ['lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py',
                                  'lightningdit-b1_transvae-l-f16d32_32xb32-200k_in1k.py',
                                  'lightningdit-xl1_transvae-l-f16d32_32xb32-100k_in1k.py'])
def test_fig6_configs_inherit_bases_and_state_real_defaults(name):
    """A Fig. 6 config inherits ``_base_`` files only (no sibling leaf config) and states real paths, no
    placeholder: the latents of ``tools/extract_latents.py --out`` and the VAE config's final checkpoint as
    ``tools/train.py`` writes it (``work_dirs/<config name>/iter_<max_iters>.pth``)."""
    import ast
    import json
    import os.path as osp

    from mmengine.config import Config
    configs = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'configs')
    tree = ast.parse(open(osp.join(configs, name), encoding='utf-8').read())
    (bases, ) = [ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and [getattr(t, 'id', None) for t in n.targets] == ['_base_']]
    assert bases and all(b.startswith('./_base_/') for b in bases), bases
    cfg = Config.fromfile(osp.join(configs, name))
    assert 'REPLACE' not in json.dumps(cfg.to_dict(), default=str)
    ev = cfg.test_evaluator
    assert ev.latent_dir == cfg.train_dataloader.dataset.data_root and ev.latent_dir.startswith('data/latents/')
    vae_name = osp.splitext(osp.basename(ev.vae_config))[0]
    vae_iters = Config.fromfile(osp.join(configs, '..', '..', '..', ev.vae_config)).train_cfg.max_iters
    assert ev.vae_checkpoint == f'work_dirs/{vae_name}/iter_{vae_iters}.pth'


def test_wo_shift_is_adaln_with_zero_shift():
    """``wo_shift``: a ``Linear(C, 4C)`` of (scale, gate) x 2 equals the 6C block whose shift rows are zero."""
    torch.manual_seed(0)
    full = _micro().blocks[0]
    cut = _micro(wo_shift=True).blocks[0]
    assert cut.wo_shift and cut.adaLN_modulation[-1].out_features == 4 * 32
    with torch.no_grad():
        w, b = full.adaLN_modulation[-1].weight, full.adaLN_modulation[-1].bias
        w.normal_(std=0.3), b.normal_(std=0.3)
        for i in (0, 3):  # shift1, shift2 of (shift1, scale1, gate1, shift2, scale2, gate2)
            w[i * 32:(i + 1) * 32].zero_(), b[i * 32:(i + 1) * 32].zero_()
        keep = torch.cat([torch.arange(i * 32, (i + 1) * 32) for i in (1, 2, 4, 5)])
        cut.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith('adaLN')}, strict=False)
        cut.adaLN_modulation[-1].weight.copy_(w[keep]), cut.adaLN_modulation[-1].bias.copy_(b[keep])
    x, c = torch.randn(2, 16, 32), torch.randn(2, 32)
    out = cut(x, c, (4, 4))
    assert torch.allclose(out, full(x, c, (4, 4)), atol=1e-6) and not torch.allclose(out, x)
    with torch.device('meta'):
        flops = [dit_forward_flops(_micro(wo_shift=ws), 1, (8, 8)) for ws in (False, True)]
    assert flops[0] - flops[1] == 2 * 2 * 2 * 32 * 32  # 2 blocks x 2C^2 fewer multiply-adds


def test_activation_checkpointing_same_outputs_and_gradients(monkeypatch):
    """``use_checkpoint``: every block goes through torch's checkpoint while training with gradients (not in eval
    or without gradients); outputs and gradients are those without it."""
    import projects.lightningdit.lightningdit.models.lightningdit as ldit
    calls = []

    def counting(fn, *args, **kw):
        calls.append(fn)
        return torch.utils.checkpoint.checkpoint(fn, *args, **kw)

    monkeypatch.setattr(ldit, 'checkpoint', counting)
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([1, 3])
    grads = []
    for use in (False, True):
        model = _micro(use_checkpoint=use)
        for blk in model.blocks:
            torch.nn.init.normal_(blk.adaLN_modulation[-1].weight, std=0.1)
        torch.nn.init.normal_(model.final_layer.linear.weight, std=0.1)
        model.train()
        torch.manual_seed(1)  # the same label dropout draw
        out = model(x, t, y)
        out.square().mean().backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[0][1], grads[1][1]))
    assert len(calls) == 2  # the two blocks of the checkpointed run, none of the plain one
    model.eval()
    model(x, t, y)
    with torch.no_grad():
        model.train()(x, t, y)
    assert len(calls) == 2
