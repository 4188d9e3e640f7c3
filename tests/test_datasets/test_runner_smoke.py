"""A 1-epoch Runner run on a folder with corrupt files: train and val complete, SkippedImagesHook counts."""
from __future__ import annotations

import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner

from dataset_helpers import make_corrupt_folder
from transvae.datasets import ImageFolderDataset, empty_batch_outputs, is_empty_batch
from transvae.engine.hooks.skipped_images_hook import SkippedImagesHook  # noqa: F401 (registers the hook)


class ToyModel(BaseModel):
    """Shows the contract for the empty-batch marker: ``val_step`` / ``test_step`` return ``empty_batch_outputs()``."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def val_step(self, data):
        if is_empty_batch(data):
            return empty_batch_outputs()
        return super().val_step(data)

    def test_step(self, data):
        if is_empty_batch(data):
            return empty_batch_outputs()
        return super().test_step(data)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs).float() / 255  # (B, 3, H, W)
        if mode == 'loss':
            return dict(loss=(x.mean() - self.w).pow(2).sum())
        return [dict(img_path=d['img_path']) for d in data_samples]


class CountMetric(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return dict(n_images=len(results))


def test_runner_with_corrupt_files(tmp_path):
    files = make_corrupt_folder(tmp_path / 'imgs')
    pipe = [dict(type='LoadImageRGB'), dict(type='RandomCrop', size=16), dict(type='PackVAEInputs')]
    loader = lambda test_mode: dict(  # noqa: E731
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=not test_mode),
        collate_fn=dict(type='transvae.skip_none_collate'),
        dataset=dict(type='ImageFolderDataset', data_root=str(tmp_path / 'imgs'), pipeline=pipe,
                     test_mode=test_mode))
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=loader(False),
        val_dataloader=loader(True),
        val_evaluator=Evaluator(CountMetric()),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='SkippedImagesHook')],
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        default_scope='transvae',
        randomness=dict(seed=0),
        log_level='WARNING')
    assert isinstance(runner.train_dataloader.dataset, ImageFolderDataset)
    runner.train()
    hook = [h for h in runner.hooks if isinstance(h, SkippedImagesHook)][0]
    assert hook.files['train'] == files['bad'] and hook.events['train'] >= 3
    assert hook.files['val'] == files['bad'] and hook.events['val'] == 3
    assert runner.message_hub.get_info('skipped_images/train') == hook.events['train']
    assert runner.message_hub.get_info('skipped_images/val') == 3
    assert runner.message_hub.get_scalar('val/n_images').current() == 1
