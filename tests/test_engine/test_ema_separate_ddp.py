"""EMAHook under MMSeparateDistributedDataParallel (the GAN stage): TrainableEMA, checkpoints, validation, resume.

The 2-rank test trains a tiny stage-2 VAEGAN (frozen CNN encoder, PatchGAN, two optimizers) with
``custom_hooks=[dict(type='TransVAEEMAHook', ...)]`` through ``tools/dist_train.sh`` on gloo, with a probe hook that
records what validation ran on and the EMA state right after ``--resume``.
"""
from __future__ import annotations

import copy
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import tiny_vae_fixtures as tv

from transvae.models.averaged_model import TrainableEMA, named_tensors_unwrapped
from transvae.registry import HOOKS, MODEL_WRAPPERS, MODELS

ARCH = dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4, attn_levels=[],
            mid_attn=False)
GAN = dict(type='VAEGAN', arch=ARCH, encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
           rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=dict(type='LPIPS', net='alex', pretrained=False)),
           vf_loss=dict(type='VFLoss', foundation_cfg=dict(type='VGG16Proxy', pretrained=False, resize=None)),
           discriminator=dict(type='PatchGANDiscriminator', ndf=8), gan_loss=dict(type='HingeGANLoss'),
           freeze_encoder=True, disc_start=0)


@MODEL_WRAPPERS.register_module(name='TestPlainWrapper', force=True)
class PlainWrapper(nn.Module):
    """A model wrapper without a process group (stands for the per-submodule DDP of the separate wrapper)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def _wrap_trainable_children(model: nn.Module) -> nn.Module:
    for name, child in list(model._modules.items()):
        if any(p.requires_grad for p in child.parameters()):
            model._modules[name] = PlainWrapper(child)
    return model


# ---------------------------------------------------------------------------------------------------------------------
# single process: what TrainableEMA copies, shares and averages
# ---------------------------------------------------------------------------------------------------------------------
def test_trainable_ema_shares_frozen_and_discriminator_and_unwraps():
    torch.manual_seed(0)
    model = _wrap_trainable_children(MODELS.build(copy.deepcopy(GAN)))
    assert any('.module.' in k for k in model.state_dict())  # wrapped names, as under the separate DDP
    plain_keys = [n for n, _ in named_tensors_unwrapped(model)]
    ema = MODELS.build(dict(type='TrainableEMA', momentum=0.5), default_args=dict(model=model))
    assert isinstance(ema, TrainableEMA)
    # the copy is unwrapped: the plain model's keys, EMAHook's `module.X` <-> `X` swap works
    assert [k for k in ema.state_dict() if k != 'steps'] == ['module.' + k for k in
                                                             MODELS.build(copy.deepcopy(GAN)).state_dict()]
    assert [n for n, _ in ema.module.named_parameters()] == plain_keys
    # averaged: the trainable generator weights; shared (same objects): frozen encoder, VF loss, discriminator,
    # the hidden LPIPS / foundation networks
    assert set(ema.avg_parameters) == {n for n, p in named_tensors_unwrapped(model)
                                       if p.requires_grad and not n.startswith('discriminator.')}
    assert any(n.startswith('decoder.') for n in ema.avg_parameters) and 'rec_loss.logvar' in ema.avg_parameters
    assert ema.module.encoder is model.encoder and ema.module.vf_loss is model.vf_loss
    assert ema.module.discriminator is model.discriminator.module
    assert ema.module.decoder is not model.decoder.module
    assert ema.module.rec_loss.perceptual.lpips_module is model.rec_loss.module.perceptual.lpips_module
    assert all(p.requires_grad for p in model.discriminator.parameters())  # the shared part is not frozen
    # EMA arithmetic: the first update copies, then lerp with the momentum
    w = model.decoder.module.conv_out.weight
    ema.update_parameters(model)
    assert torch.equal(ema.module.decoder.conv_out.weight, w)
    w0 = w.detach().clone()
    with torch.no_grad():
        w.add_(1.0)
    ema.update_parameters(model)
    torch.testing.assert_close(ema.module.decoder.conv_out.weight, w0 + 0.5)
    assert int(ema.steps) == 2
    ema.copy_from(model)
    assert torch.equal(ema.module.decoder.conv_out.weight, w)


def test_runner_refuses_wrapper_copying_ema():
    from mmengine.hooks import EMAHook

    from transvae.engine.runner import TransVAERunner
    model = _wrap_trainable_children(MODELS.build(dict(GAN, vf_loss=None)))
    fake = SimpleNamespace(model=PlainWrapper(model))
    fake._hooks = [HOOKS.build(dict(type='TransVAEEMAHook'))]
    TransVAERunner._check_hooks(fake)  # TrainableEMA: fine
    fake._hooks = [HOOKS.build(dict(type='TransVAEEMAHook', ema_type='ExponentialMovingAverage'))]
    with pytest.raises(ValueError, match="ema_type='TrainableEMA'"):
        TransVAERunner._check_hooks(fake)
    fake._hooks = [EMAHook()]  # mmengine's own hook: refused whatever the model, naming the hook to use
    with pytest.raises(ValueError, match="type='TransVAEEMAHook'"):
        TransVAERunner._check_hooks(fake)


# ---------------------------------------------------------------------------------------------------------------------
# 2 gloo ranks through tools/dist_train.sh
# ---------------------------------------------------------------------------------------------------------------------
PROBE = '''
import os.path as osp
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner.checkpoint import get_state_dict
from transvae.models.utils.unwrap import unwrap_model as unwrap_all
from transvae.registry import HOOKS


def _parts(runner):
    ema = next(h for h in runner.hooks if type(h).__name__ == 'TransVAEEMAHook').ema_model
    return ema, unwrap_all(runner.model)


@HOOKS.register_module(name='TestEMAProbeHook', force=True)
class EMAProbe(Hook):
    priority = 'VERY_HIGH'  # before EMAHook swaps the weights for validation

    def before_val_epoch(self, runner):
        ema, model = _parts(runner)
        self.rec = dict(
            raw=unwrap_all(model.decoder).conv_out.weight.detach().clone(),
            ema=ema.module.decoder.conv_out.weight.detach().clone(),
            shared_disc=ema.module.discriminator is unwrap_all(model.discriminator),
            shared_enc=ema.module.encoder is unwrap_all(model.encoder),
            copied_dec=ema.module.decoder is not unwrap_all(model.decoder))

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self.rec['val'] = unwrap_all(_parts(runner)[1].decoder).conv_out.weight.detach().clone()

    def after_val(self, runner):  # after every hook's after_val_epoch (EMAHook swaps back there)
        self.rec['after'] = unwrap_all(_parts(runner)[1].decoder).conv_out.weight.detach().clone()
        if get_rank() == 0:
            torch.save(self.rec, osp.join(runner.work_dir, f'probe_val_{runner.iter}.pt'))

    def before_train(self, runner):  # after load_or_resume
        ema, model = _parts(runner)
        if get_rank() == 0:
            torch.save(dict(ema=ema.state_dict(), model=get_state_dict(model)),
                       osp.join(runner.work_dir, f'probe_start_{runner.iter}.pt'))
'''

CONFIG = '''
_base_ = [{runtime!r}]
custom_imports = dict(imports=['tiny_vae_fixtures', 'ema_probe'], allow_failed_imports=False)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=3))
model = {model!r}
{data}optim_wrapper = dict(
    constructor='VAEGANOptimWrapperConstructor',
    generator=dict(type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.5, 0.9))),
    discriminator=dict(type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.5, 0.9))))
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
randomness = dict(seed=0)
custom_hooks = [dict(type='TransVAEEMAHook', momentum=0.5), dict(type='TestEMAProbeHook')]
'''


def _train(cfg: str, wd, *args: str, preflight: bool = True) -> str:
    proc = tv.run_checked(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', str(wd), *args],
                          pythonpath=osp.dirname(cfg), PYTHON=tv.PYTHON, PORT=tv.free_port(),
                          PREFLIGHT='1' if preflight else '0')
    return proc.stdout + proc.stderr


def test_ema_under_separate_ddp_two_ranks(tmp_path):
    (tmp_path / 'ema_probe.py').write_text(PROBE)
    cfg = str(tmp_path / 'tiny_gan.py')
    with open(cfg, 'w') as f:
        f.write(CONFIG.format(data=tv.TINY_DIST_DATA_CFG, model=GAN,
                              runtime=osp.join(tv.REPO, 'configs', '_base_', 'default_runtime.py')))
    # one uninterrupted 3-iteration run (validation and checkpoint at iteration 2, checkpoints 1-3); a second run
    # resumes from its iteration-2 checkpoint in another work dir (two 2-rank launches, not three)
    wd = tmp_path / 'wd'
    _train(cfg, wd, '--max-iters', '3')
    log = next(wd.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'TransVAEEMAHook' in log and 'tiny/psnr' in log

    # validation ran on the EMA weights, and the raw weights came back afterwards
    probe = torch.load(str(wd / 'probe_val_2.pt'), weights_only=False)
    assert not torch.equal(probe['raw'], probe['ema'])
    assert torch.equal(probe['val'], probe['ema']) and torch.equal(probe['after'], probe['raw'])
    assert probe['shared_disc'] and probe['shared_enc'] and probe['copied_dec']

    # the checkpoint: plain keys, ema_state_dict; EMA weights in `state_dict`, the raw ones in `ema_state_dict`
    ckpt = tv.load_ckpt(str(wd / 'iter_2.pth'))
    sd, ema = ckpt['state_dict'], ckpt['ema_state_dict']
    assert not any('.module.' in k or k.startswith('module.') for k in sd)
    assert int(ema['steps']) == 2 and set(ema) == {'steps'} | {'module.' + k for k in sd}
    assert torch.equal(sd['decoder.conv_out.weight'], probe['ema'])
    assert torch.equal(ema['module.decoder.conv_out.weight'], probe['raw'])
    for k in sd:  # not averaged: frozen encoder and the discriminator (raw in both entries)
        if k.startswith(('encoder.', 'discriminator.')):
            assert torch.equal(sd[k], ema['module.' + k]), k
    gan = MODELS.build(copy.deepcopy(GAN))
    gan.load_state_dict(sd, strict=True)
    vae = MODELS.build(dict({k: v for k, v in GAN.items()
                             if k not in ('discriminator', 'gan_loss', 'vf_loss', 'freeze_encoder', 'disc_start')},
                            type='VAE'))
    vae.load_state_dict({k: v for k, v in sd.items() if not k.startswith(('discriminator.', 'vf_loss.'))},
                        strict=True)

    # --resume: the average and the model are restored exactly, training continues to the same weights as an
    # uninterrupted run (TransVAERunner's RNG-exact resume)
    resumed_wd = tmp_path / 'resumed'  # the config was pre-flighted by the first launch
    out = _train(cfg, resumed_wd, '--resume', str(wd / 'iter_2.pth'), '--max-iters', '3', preflight=False)
    assert 'missing keys' not in out and 'unexpected key' not in out
    start = torch.load(str(resumed_wd / 'probe_start_2.pt'), weights_only=False)
    assert torch.equal(start['ema']['steps'], ema['steps'])
    for k, v in start['ema'].items():
        if k != 'steps':
            assert torch.equal(v, sd[k[len('module.'):]]), k  # the EMA weights saved in `state_dict`
    for k, v in start['model'].items():
        assert torch.equal(v, ema['module.' + k]), k  # the raw weights saved in `ema_state_dict`
    resumed, full = tv.load_ckpt(str(resumed_wd / 'iter_3.pth')), tv.load_ckpt(str(wd / 'iter_3.pth'))
    assert int(full['meta']['iter']) == int(resumed['meta']['iter']) == 3
    for key in ('state_dict', 'ema_state_dict'):
        for k, v in full[key].items():
            assert torch.equal(v, resumed[key][k]), (key, k)
