"""Configs name their hooks and wrappers: the runner validates instead of rewriting, and the tool shortcuts go by
registered capabilities (``resolution_keys`` of transforms, ``amp_variant`` of optim wrappers), not type names."""
import pytest
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.hooks import CheckpointHook, EMAHook

import tiny_vae_fixtures as tv

from transvae.engine.hooks import TransVAEEMAHook
from transvae.engine.optimizers import SafeOptimWrapper
from transvae.engine.hooks import AtomicCheckpointHook
from transvae.engine.config_surgery import set_amp, set_resolution
from transvae.registry import HOOKS, OPTIM_WRAPPERS, TRANSFORMS


@HOOKS.register_module(name='TestOwnCheckpointHook', force=True)
class OwnCheckpointHook(AtomicCheckpointHook):
    """A user's checkpoint hook done right: a subclass of the atomic one."""


@TRANSFORMS.register_module(name='TestSquarePad', force=True)
class SquarePad(BaseTransform):
    """A new registered transform that fixes the output size and says so (no 'crop' / 'resize' in its name)."""

    resolution_keys = ('side', )

    def __init__(self, side: int) -> None:
        self.side = side

    def transform(self, results: dict) -> dict:
        return results


@TRANSFORMS.register_module(name='TestCropLogger', force=True)
class CropLogger(BaseTransform):
    """'Crop' in the name, but it does not set a resolution (a name regex would have rewritten its ``size``)."""

    def __init__(self, size: int = 0) -> None:
        self.size = size

    def transform(self, results: dict) -> dict:
        return results


@OPTIM_WRAPPERS.register_module(name='TestOwnOptimWrapper', force=True)
class OwnOptimWrapper(SafeOptimWrapper):
    """A subclass that does not declare its own mixed-precision variant."""


def _build(tmp_path, **cfg_options):
    path = tv.write_config(str(tmp_path / 'tiny.py'))
    return tv.build_runner(path, str(tmp_path / 'wd'), cfg_options)


def test_default_runtime_names_the_atomic_hook(tmp_path):
    runner = _build(tmp_path)
    assert any(type(h) is AtomicCheckpointHook for h in runner.hooks)


@pytest.mark.parametrize('hook', ['CheckpointHook', 'mmengine.CheckpointHook'])
def test_plain_checkpoint_hook_refused(tmp_path, hook):
    with pytest.raises(ValueError, match="type='AtomicCheckpointHook'"):
        _build(tmp_path, default_hooks=dict(checkpoint=dict(type=hook, interval=1)))


def test_checkpoint_hook_instance_refused_and_subclass_accepted(tmp_path):
    runner = _build(tmp_path, default_hooks=dict(checkpoint=dict(type='TestOwnCheckpointHook', interval=1)))
    assert any(type(h) is OwnCheckpointHook for h in runner.hooks)
    with pytest.raises(ValueError, match='AtomicCheckpointHook'):
        runner.register_hook(CheckpointHook(interval=1))


def test_plain_ema_hook_refused(tmp_path):
    with pytest.raises(ValueError, match="type='TransVAEEMAHook'"):
        _build(tmp_path, custom_hooks=[dict(type='EMAHook', momentum=0.5)])
    runner = _build(tmp_path, custom_hooks=[dict(type='TransVAEEMAHook', momentum=0.5)])
    ema = [h for h in runner.hooks if isinstance(h, EMAHook)]
    assert len(ema) == 1 and type(ema[0]) is TransVAEEMAHook and ema[0].ema_cfg['type'] == 'TrainableEMA'


def _pipeline_cfg(pipeline: list) -> Config:
    ds = dict(type='TestTinyImages', pipeline=pipeline)
    return Config(dict(train_dataloader=dict(dataset=ds), val_dataloader=dict(dataset=dict(ds))))


def test_set_resolution_by_capability():
    cfg = _pipeline_cfg([dict(type='RandomCrop', size=[16, 16]), dict(type='TestSquarePad', side=16),
                         dict(type='TestCropLogger', size=7), dict(type='ResizeShortSide', size=16),
                         dict(type='PackVAEInputs')])
    assert set_resolution(cfg, 32) == 6  # 3 declaring transforms x (train, val)
    for loader in ('train_dataloader', 'val_dataloader'):
        p = cfg[loader].dataset.pipeline
        assert p[0]['size'] == [32, 32] and p[1]['side'] == 32 and p[3]['size'] == 32
        assert p[2]['size'] == 7  # no capability: left alone
    with pytest.raises(ValueError, match='resolution_keys'):
        set_resolution(_pipeline_cfg([dict(type='TestCropLogger', size=7)]), 32)


def test_set_amp_by_declared_variant():
    cfg = Config(dict(optim_wrapper=dict(type='SafeOptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    assert set_amp(cfg) == 'bfloat16'
    assert cfg.optim_wrapper.type == 'SafeAmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    set_amp(cfg)  # already mixed precision: kept
    assert cfg.optim_wrapper.type == 'SafeAmpOptimWrapper'
    gan = Config(dict(optim_wrapper=dict(constructor='VAEGANOptimWrapperConstructor',
                                         generator=dict(type='SafeOptimWrapper', optimizer=dict(type='SGD', lr=1)),
                                         discriminator=dict(type='SafeOptimWrapper', optimizer=dict(type='SGD')))))
    set_amp(gan)
    assert gan.optim_wrapper.generator.type == gan.optim_wrapper.discriminator.type == 'SafeAmpOptimWrapper'
    for typ in ('OptimWrapper', 'TestOwnOptimWrapper'):  # no variant of their own: refused, naming the fix
        cfg = Config(dict(optim_wrapper=dict(type=typ, optimizer=dict(type='SGD', lr=0.1))))
        with pytest.raises(ValueError, match="type='SafeAmpOptimWrapper'"):
            set_amp(cfg)
