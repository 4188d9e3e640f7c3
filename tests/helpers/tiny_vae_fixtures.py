"""Test-only tiny VAE, dataset and metric, plus a config writer and a tool loader for the tool / engine tests.

Importable as the top-level module ``tiny_vae_fixtures``: ``tests/helpers`` is on ``sys.path`` through the
``pythonpath`` setting of ``[tool.pytest.ini_options]`` in ``pyproject.toml``; the configs written by
:func:`write_config` load it through ``custom_imports`` (the tool subprocesses get ``PYTHONPATH`` from
:func:`subprocess_env`). Registered names carry a ``Test`` prefix so they never clash with the real components.
"""
from __future__ import annotations

import os
import os.path as osp
import socket
import subprocess
import sys
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch.utils.data import Dataset

from transvae.registry import DATASETS, METRICS, MODELS

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.abspath(osp.join(HERE, '..', '..'))
PYTHON = sys.executable


@MODELS.register_module(name='TestTinyVAE', force=True)
class TinyVAE(BaseModel):
    """f2, 4-channel latent conv VAE (a few hundred parameters); samples its latent (uses the torch RNG).

    Args:
        ch: hidden channels.
        nan_at_iters: training iterations (message-hub ``iter``) whose loss is made NaN.
        init_cfg: mmengine ``init_cfg`` (e.g. a ``Pretrained`` checkpoint).
    """

    def __init__(self, ch: int = 8, nan_at_iters: tuple = (), data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.enc = nn.Sequential(nn.Conv2d(3, ch, 3, 2, 1), nn.SiLU(), nn.Conv2d(ch, 8, 1))
        self.dec = nn.Sequential(nn.Conv2d(4, ch, 3, 1, 1), nn.SiLU(), nn.Upsample(scale_factor=2),
                                 nn.Conv2d(ch, 3, 3, 1, 1))
        self.nan_at_iters = set(nan_at_iters)

    @staticmethod
    def _to_float(inputs) -> torch.Tensor:
        x = torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs
        return x.float() / 127.5 - 1.0

    def encode(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        mean, logvar = self.enc(x).chunk(2, dim=1)
        if sample:
            return mean + torch.randn_like(mean) * (0.5 * logvar.clamp(-10, 10)).exp()
        return mean

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.encode(x, sample=False)).clamp(-1, 1)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        x = self._to_float(inputs)
        if mode == 'loss':
            rec = self.dec(self.encode(x))
            loss = F.l1_loss(rec, x)
            it = MessageHub.get_current_instance().get_info('iter')
            if it in self.nan_at_iters:
                loss = loss * float('nan')
            return dict(loss_rec=loss, rec_l1=loss.detach())
        rec = self.reconstruct(x)
        if mode == 'predict':
            out = []
            if isinstance(data_samples, dict):  # pseudo_collate turns a list of dicts into a dict of lists
                paths = list(data_samples.get('img_path', [None] * x.shape[0]))
            else:
                paths = [(d or {}).get('img_path') for d in (data_samples or [None] * x.shape[0])]
            for i in range(x.shape[0]):
                out.append(dict(pred_img=((rec[i] + 1) / 2).cpu(), gt_img=((x[i] + 1) / 2).cpu(),
                                img_path=paths[i]))
            return out
        return rec


@DATASETS.register_module(name='TestTinyImages', force=True)
class TinyImages(Dataset):
    """``num`` deterministic smooth random uint8 images of ``size``² (index-seeded)."""

    def __init__(self, num: int = 8, size: int = 16, data_root: str = '', pipeline: Optional[list] = None,
                 test_mode: bool = False) -> None:
        self.num, self.size, self.data_root = num, size, data_root
        self.pipeline = pipeline or []

    @property
    def metainfo(self) -> dict:
        return dict(name='tiny')

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, idx: int) -> dict:
        g = torch.Generator().manual_seed(idx)
        low = torch.rand(1, 3, 4, 4, generator=g)
        img = F.interpolate(low, size=(self.size, self.size), mode='bilinear', align_corners=False)[0]
        img = (img * 255).round().to(torch.uint8)
        return dict(inputs=img, data_samples=dict(img_path=f'img_{idx:03d}.png'))


@DATASETS.register_module(name='TestLabelledImages', force=True)
class LabelledImages(Dataset):
    """``n`` random 16 x 16 uint8 images (one seeded draw) packed like PackVAEInputs, labelled ``i % 3``: the
    latent-extraction tests' data."""

    def __init__(self, n: int = 6, pipeline: Optional[list] = None) -> None:
        self.imgs = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.imgs[i].clone(), data_samples=dict(label=i % 3, img_path=f'{i}.png'))


@METRICS.register_module(name='TestPSNRMetric', force=True)
class TinyPSNR(BaseMetric):
    default_prefix = 'tiny'

    def process(self, data_batch, data_samples) -> None:
        for s in data_samples:
            mse = F.mse_loss(s['pred_img'], s['gt_img']).clamp_min(1e-10)
            self.results.append(float(10 * torch.log10(1.0 / mse)))

    def compute_metrics(self, results) -> dict:
        return dict(psnr=sum(results) / len(results))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([HERE, REPO, env.get('PYTHONPATH', '')])
    env.setdefault('OMP_NUM_THREADS', '1')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_checked(cmd: list, timeout: float = 240, pythonpath: Optional[str] = None,
                **env: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` in the repository with :func:`subprocess_env` (``pythonpath`` prepended); fail the test with the
    output tails unless it exits 0."""
    full_env = subprocess_env(**env)
    if pythonpath:
        full_env['PYTHONPATH'] = os.pathsep.join([pythonpath, full_env['PYTHONPATH']])
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}'
    return proc


# the data / evaluator part of the tiny distributed-run configs (32² TestTinyImages, PSNR)
TINY_DIST_DATA_CFG = '''_loader = dict(batch_size=2, num_workers=0, collate_fn=dict(type='transvae.skip_none_collate'))
train_dataloader = dict(_loader, sampler=dict(type='DefaultSampler', shuffle=True),
                        dataset=dict(type='TestTinyImages', num=8, size=32))
val_dataloader = dict(_loader, sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type='TestTinyImages', num=4, size=32, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='TestPSNRMetric')
test_evaluator = val_evaluator
'''

CONFIG_TEMPLATE = '''
_base_ = [{runtime!r}]
custom_imports = dict(imports=['tiny_vae_fixtures'], allow_failed_imports=False)
model = dict(type='TestTinyVAE', ch=8, nan_at_iters={nan_at_iters!r})
train_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='TestTinyImages', num=8, size=16, data_root='unused',
                 pipeline=[dict(type='RandomCrop', size=16), dict(type='PackVAEInputs')]))
val_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='TestTinyImages', num=4, size=16, data_root='unused', test_mode=True,
                 pipeline=[dict(type='ResizeShortSide', size=16), dict(type='CenterCrop', size=16),
                           dict(type='PackVAEInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(type='TestPSNRMetric')
test_evaluator = val_evaluator
optim_wrapper = dict(type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.5, 0.9)),
                     max_consecutive={max_consecutive})
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters}, val_interval={val_interval})
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={ckpt_interval}, max_keep_ckpts=2))
randomness = dict(seed=0)
custom_hooks = {custom_hooks!r}
presets = dict(
    quick=dict(train_cfg=dict(max_iters=3), optim_wrapper=dict(optimizer=dict(lr=5e-4))),
    swap=dict(optim_wrapper=dict(_delete_=True, type='SafeOptimWrapper', optimizer=dict(type='SGD', lr=0.1))),
)
'''


def write_config(path: str, max_iters: int = 2, val_interval: int = 2, ckpt_interval: int = 1,
                 nan_at_iters: tuple = (), max_consecutive: int = 5, custom_hooks: Optional[list] = None,
                 extra: str = '') -> str:
    """Write a tiny training config to ``path`` (based on the real ``configs/_base_/default_runtime.py``)."""
    text = CONFIG_TEMPLATE.format(runtime=osp.join(REPO, 'configs', '_base_', 'default_runtime.py'),
                                  nan_at_iters=tuple(nan_at_iters), max_consecutive=max_consecutive,
                                  max_iters=max_iters, val_interval=val_interval, ckpt_interval=ckpt_interval,
                                  custom_hooks=list(custom_hooks or []))
    with open(path, 'w') as f:
        f.write(text + extra)
    return path


def build_runner(cfg_path: str, work_dir: str, cfg_options: Optional[dict] = None):
    """An in-process ``TransVAERunner`` for the config at ``cfg_path``."""
    from mmengine.config import Config

    from transvae.registry import RUNNERS
    from transvae.apis import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    return RUNNERS.build(cfg)


def load_ckpt(path: str) -> dict:
    """A checkpoint written by the toolkit, read the way the tools read it (``weights_only=True``, decoded)."""
    from transvae.engine.checkpoint_io import load_checkpoint_file
    return load_checkpoint_file(path)
