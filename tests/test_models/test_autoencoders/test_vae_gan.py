"""VAEGAN: two-optimizer train_step, disc_start gating, the frozen stage-2 encoder, the optimizer split."""
from __future__ import annotations

import copy

import pytest
import torch
from mmengine.logging import MessageHub

from transvae.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

ARCH = dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4, attn_levels=[],
            mid_attn=False)
OPTIM = dict(constructor='VAEGANOptimWrapperConstructor',
             generator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.5, 0.9),
                                                                weight_decay=0.0)),
             discriminator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.5, 0.9),
                                                                    weight_decay=0.0)))


def build(discriminator=True, freeze_encoder=False, disc_start=2, vf=True):
    torch.manual_seed(0)
    cfg = dict(type='VAEGAN', arch=ARCH, encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
               rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None), disc_start=disc_start,
               freeze_encoder=freeze_encoder)
    if vf:
        cfg['vf_loss'] = dict(type='VFLoss', foundation_cfg=dict(type='VGG16Proxy', pretrained=False, resize=None))
    if discriminator:
        cfg['discriminator'] = dict(type='PatchGANDiscriminator', ndf=8)
        cfg['gan_loss'] = dict(type='HingeGANLoss', disc_weight=0.1)
    return MODELS.build(cfg)


def build_optim(model, cfg=OPTIM):
    cfg = copy.deepcopy(cfg)
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type=cfg.pop('constructor'), optim_wrapper_cfg=cfg))
    return ctor(model)


def batch(n=2, size=32):
    g = torch.Generator().manual_seed(1)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g) for _ in range(n)])


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_two_optimizers_and_disc_start():
    model = build()
    model.train()
    optim = build_optim(model)
    assert set(optim.keys()) == {'generator', 'discriminator'}
    hub = MessageHub.get_current_instance()
    d0, dec0 = snapshot(model.discriminator), snapshot(model.decoder)
    for it in range(2):  # before disc_start
        hub.update_info('iter', it)
        logs = model.train_step(batch(), optim)
        assert 'loss_d' not in logs and 'loss_g' not in logs
    assert same(d0, snapshot(model.discriminator))  # untouched (weights and BN statistics)
    assert not same(dec0, snapshot(model.decoder))
    assert {'loss', 'loss_nll', 'loss_kl', 'loss_vf', 'vf_weight', 'vf_vgg16_proxy'} <= set(logs)
    enc1 = snapshot(model.encoder)
    for it in (2, 3):
        hub.update_info('iter', it)
        logs = model.train_step(batch(), optim)
    assert {'loss_g', 'loss_d', 'g_weight', 'd_real', 'd_fake'} <= set(logs)
    assert not same(d0, snapshot(model.discriminator)) and not same(enc1, snapshot(model.encoder))
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    # logged-only keys never contain 'loss'
    only_logged = set(logs) - {'loss', 'loss_nll', 'loss_kl', 'loss_vf', 'loss_g', 'loss_d'}
    assert not any('loss' in k for k in only_logged)
    hub.update_info('iter', 0)


def test_generator_step_leaves_no_grad_on_discriminator():
    model = build(disc_start=0).train()
    losses, _ = model.generator_losses(torch.rand(2, 3, 32, 32) * 2 - 1, it=0)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.requires_grad for p in model.discriminator.parameters())


def test_stage2_frozen_encoder_bit_identical():
    model = build(freeze_encoder=True, disc_start=0)
    model.train()
    assert not model.encoder.training and model.decoder.training
    optim = build_optim(model)
    ids = {id(p) for w in optim.values() for g in w.optimizer.param_groups for p in g['params']}
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(('encoder.', 'vf_loss.')) for n in frozen)
    assert not any(id(p) in ids for p in model.parameters() if not p.requires_grad)  # no frozen param anywhere
    assert ids == {id(p) for p in model.parameters() if p.requires_grad}
    enc0, dec0, d0 = snapshot(model.encoder), snapshot(model.decoder), snapshot(model.discriminator)
    MessageHub.get_current_instance().update_info('iter', 0)
    for _ in range(2):
        logs = model.train_step(batch(), optim)
    assert same(enc0, snapshot(model.encoder))
    assert not same(dec0, snapshot(model.decoder)) and not same(d0, snapshot(model.discriminator))
    assert 'loss_vf' not in logs and {'loss_g', 'loss_d'} <= set(logs)


def test_without_discriminator_behaves_like_vae():
    model = build(discriminator=False, vf=False).train()
    cfg = dict(type='VAE', arch=ARCH, encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
               rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))
    torch.manual_seed(0)
    vae = MODELS.build(cfg).train()
    vae.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.manual_seed(3)
    a = model.loss(x)
    torch.manual_seed(3)
    b = vae.loss(x)
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k]) for k in a)
    from mmengine.optim import OptimWrapper
    opt = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    logs = model.train_step(batch(), opt)  # a plain OptimWrapper works
    assert 'loss' in logs
    with pytest.raises(ValueError, match='discriminator'):
        build().train_step(batch(), OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3)))


def test_runner_two_optimizers_and_ema_used_for_validation(tmp_path):
    """2 iterations through an mmengine Runner: OptimWrapperDict from the config, EMAHook weights in validation."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    from transvae.registry import DATASETS

    @DATASETS.register_module(name='_TinyVAEGANDataset', force=True)
    class _Tiny(Dataset):
        def __init__(self, n=4):
            self.imgs = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8,
                                      generator=torch.Generator().manual_seed(0))

        def __len__(self):
            return len(self.imgs)

        def __getitem__(self, i):
            return dict(inputs=self.imgs[i].clone(), data_samples=dict(label=0, img_shape=(32, 32)))

    seen = {}

    class Probe(Hook):
        priority = 'HIGHEST'  # before EMAHook's swap in before_val_epoch

        def before_val_epoch(self, runner):
            ema = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook')
            seen['raw'] = runner.model.decoder.conv_out.weight.detach().clone()
            seen['ema'] = ema.ema_model.module.decoder.conv_out.weight.detach().clone()

        def before_val_iter(self, runner, batch_idx, data_batch=None):
            seen['val'] = runner.model.decoder.conv_out.weight.detach().clone()

        def after_val_epoch(self, runner, metrics=None):
            seen['metrics'] = metrics

    model = dict(type='VAEGAN', arch=ARCH, encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
                 rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None), freeze_encoder=True, disc_start=0,
                 discriminator=dict(type='PatchGANDiscriminator', ndf=8), gan_loss=dict(type='HingeGANLoss'))
    from transvae.datasets.collate import skip_none_collate
    loader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type=skip_none_collate), dataset=dict(type='_TinyVAEGANDataset'))
    optim = copy.deepcopy(OPTIM)
    for k in ('generator', 'discriminator'):
        optim[k]['type'] = 'SafeOptimWrapper'
    runner = Runner(model=model, work_dir=str(tmp_path), train_dataloader=loader, val_dataloader=loader,
                    train_cfg=dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2), val_cfg=dict(),
                    val_evaluator=dict(type='PSNRMetric'), optim_wrapper=optim,
                    param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)],
                    custom_hooks=[dict(type='EMAHook', momentum=0.5), Probe()],
                    default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                                       logger=dict(type='LoggerHook', interval=1)),
                    default_scope='transvae', log_level='WARNING')
    enc0 = snapshot(runner.model.encoder)
    runner.train()
    assert set(runner.optim_wrapper.keys()) == {'generator', 'discriminator'}
    assert not torch.equal(seen['raw'], seen['ema'])
    assert torch.equal(seen['val'], seen['ema'])  # validation ran on the EMA weights
    assert torch.equal(runner.model.decoder.conv_out.weight.detach(), seen['raw'])  # swapped back after val
    assert 'psnr' in seen['metrics']
    assert same(enc0, snapshot(runner.model.encoder))
    ckpt = torch.load(str(tmp_path / 'iter_2.pth'), map_location='cpu', weights_only=False)
    assert {'generator', 'discriminator'} <= set(ckpt['optimizer']) and 'ema_state_dict' in ckpt
    assert not any(k.startswith('vf_loss.foundation') or 'lpips' in k for k in ckpt['state_dict'])


def test_constructor_shared_keys():
    model = build()
    cfg = copy.deepcopy(OPTIM)
    cfg['optimizer'] = dict(lr=5e-5)  # e.g. a schedule preset / --cfg-options optim_wrapper.optimizer.lr=5e-5
    optim = build_optim(model, cfg)
    assert {w.optimizer.param_groups[0]['lr'] for w in optim.values()} == {5e-5}
    assert all(w.optimizer.param_groups[0]['betas'] == (0.5, 0.9) for w in optim.values())
    gen = build_optim(build(discriminator=False), {k: v for k, v in OPTIM.items() if k != 'discriminator'})
    assert list(gen.keys()) == ['generator']


@pytest.mark.parametrize('name', ['transvae-t_f16d32_8xb32-100e_in1k', 'transvae-t_f16d32_8xb32-10e-gan_in1k',
                                  'transvae-l_f16d32_8xb32-100e_in1k', 'transvae-l_f16d32_8xb32-10e-gan_in1k',
                                  'transvae-l_f8d16_8xb32-100e_in1k', 'transvae-l_f8d16_8xb32-10e-gan_in1k',
                                  'cnn-vae-t_f16d32_8xb32-100e_in1k'])
def test_recipe_configs(name):
    import os.path as osp

    from mmengine.config import Config

    from transvae.engine.config_surgery import apply_preset
    path = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs', 'transvae', f'{name}.py')
    cfg = Config.fromfile(path)
    m = cfg.model
    assert m.type == 'VAEGAN' and m.vf_loss.foundation_cfg.type == 'DINOv2'
    assert m.vf_loss.foundation_cfg.weights_path == 'checkpoints/dinov2_vitl14.safetensors'
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    if name.startswith('transvae'):
        assert (m.vf_loss.loss_weight, m.vf_loss.cos_margin, m.vf_loss.distmat_margin) == (0.1, 0.5, 0.25)
        assert m.kl_loss.loss_weight == 1e-8 and m.rec_loss.perceptual_cfg.net == 'vgg'
    if 'gan' in name:
        assert m.freeze_encoder and m.disc_start == 0 and m.gan_loss.disc_weight == 0.1
        stage1 = Config.fromfile(path.replace('_8xb32-10e-gan_in1k', '_8xb32-100e_in1k'))  # its last checkpoint
        assert cfg.load_from.endswith(f'_8xb32-100e_in1k/iter_{stage1.train_cfg.max_iters}.pth')
        assert cfg.optim_wrapper.constructor == 'VAEGANOptimWrapperConstructor'
    elif name.startswith('transvae'):
        assert 'discriminator' not in m and not m.get('freeze_encoder', False)
    apply_preset(cfg, 'cpu')
    assert cfg.model.vf_loss.foundation_cfg.type == 'VGG16Proxy'
    assert cfg.model.rec_loss.perceptual_cfg.net == 'alex'
    if 'discriminator' in cfg.model:
        assert cfg.model.discriminator.ndf == 16
        # the schedule preset's partial `optimizer` (the CPU lr) reaches both optimizers through the constructor
        ow = dict(cfg.optim_wrapper)
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type=ow.pop('constructor'), optim_wrapper_cfg=ow))
        wrappers = constructor(MODELS.build(cfg.model))
        assert {k: w.optimizer.param_groups[0]['lr'] for k, w in wrappers.items()} == {
            'generator': 2e-4, 'discriminator': 2e-4}


@pytest.mark.parametrize('recipe', ['stage2', 'scaling'])
def test_activation_checkpointing_gives_the_same_steps(recipe):
    """Recipes that train with ``arch.with_cp=True`` because their batch does not fit 80 GB without it take the same
    G and D steps as without, and the checkpoint really runs: TransVAE-L f8d16 stage 2 (frozen encoder, checkpointed
    decoder stages, the GAN adaptive weight an ``autograd.grad`` against the decoder's last conv) and the scaling
    L / H / G recipe (encoder and decoder trained, GAN + VF loss, both adaptive weights)."""
    from unittest import mock

    import transvae.models.blocks.stages as stages

    stage2 = recipe == 'stage2'

    def hybrid(with_cp: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        arch = dict(widths=[8, 8, 16, 16], depths=[1, 1, 1, 1], latent_channels=4, head_dim=8, with_cp=with_cp,
                    cnn_block_cfg=dict(type='ResBlock', norm_cfg=dict(type='GN', num_groups=4)),
                    norm_out_cfg=dict(type='GN', num_groups=4))
        extra = {} if stage2 else dict(vf_loss=dict(type='VFLoss', foundation_cfg=dict(
            type='VGG16Proxy', pretrained=False, resize=None)))
        return MODELS.build(dict(
            type='VAEGAN', arch=arch, encoder=dict(type='TransVAEEncoder'), decoder=dict(type='TransVAEDecoder'),
            rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None), disc_start=0, freeze_encoder=stage2,
            discriminator=dict(type='PatchGANDiscriminator', ndf=8),
            gan_loss=dict(type='HingeGANLoss', disc_weight=0.1), **extra)).train()

    plain, ckpt = hybrid(False), hybrid(True)
    ckpt.load_state_dict(plain.state_dict())
    runs = []
    MessageHub.get_current_instance().update_info('iter', 0)
    for model in (plain, ckpt):
        optim = build_optim(model)
        with mock.patch.object(stages.cp, 'checkpoint', wraps=stages.cp.checkpoint) as spy:
            logs = []
            for step in range(2):
                torch.manual_seed(10 + step)  # the posterior sample
                logs.append(model.train_step(batch(), optim))
        runs.append((spy.call_count, logs, snapshot(model.encoder), snapshot(model.decoder),
                     snapshot(model.discriminator)))
    (n_plain, logs_plain, *nets_plain), (n_ckpt, logs_ckpt, *nets_ckpt) = runs
    # every decoder stage in both steps; the frozen encoder (stage 2) is not checkpointed, a trained one is
    assert n_plain == 0 and n_ckpt >= 2 * (4 if stage2 else 8)
    assert logs_plain[-1]['g_weight'] > 0
    if not stage2:
        assert logs_plain[-1]['vf_weight'] > 0
        assert not same(nets_plain[0], snapshot(hybrid(False).encoder))  # the encoder trains
    for a, b in zip(logs_plain, logs_ckpt):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(torch.as_tensor(b[k]), torch.as_tensor(a[k]), rtol=1e-5, atol=1e-6, msg=k)
    for ref, got in zip(nets_plain, nets_ckpt):
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6, msg=k)
