"""SkipEmptyValLoop / SkipEmptyTestLoop: a batch whose every file was unreadable is passed over by the loop (hooks
still count the skips); the model never sees it, and without these loops the data preprocessor names them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner
from PIL import Image

from transvae.datasets import empty_batch
from transvae.engine.hooks.skipped_images_hook import SkippedImagesHook
from transvae.registry import MODELS


class _ToyModel(BaseModel):
    """Knows nothing of empty batches: it would fail on one (``torch.stack([])``)."""

    def __init__(self) -> None:
        super().__init__(data_preprocessor=dict(type='VAEDataPreprocessor'))
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return dict(loss=(inputs.mean() - self.w).pow(2))
        return [dict(img_path=d['img_path']) for d in data_samples]


class _Count(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return dict(n_images=len(results))


def _folder(root) -> None:
    """Sorted names: batch 0 = two unreadable files, batch 1 = one good image + one unreadable."""
    root.mkdir()
    (root / 'a_bad.jpg').write_bytes(b'')
    (root / 'b_bad.jpg').write_text('not an image\n')
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(str(root / 'c_good.png'))
    (root / 'd_bad.jpg').write_bytes(b'\xff\xd8\xff')


@pytest.mark.parametrize('mode', ['val', 'test'])
def test_loop_passes_over_empty_batch(tmp_path, mode):
    _folder(tmp_path / 'imgs')
    loader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='transvae.skip_none_collate'),
                  dataset=dict(type='ImageFolderDataset', data_root=str(tmp_path / 'imgs'), test_mode=True,
                               pipeline=[dict(type='LoadImageRGB'), dict(type='PackVAEInputs')]))
    kind = 'Val' if mode == 'val' else 'Test'
    runner = Runner(model=_ToyModel(), work_dir=str(tmp_path / 'work'), default_scope='transvae',
                    **{f'{mode}_dataloader': loader, f'{mode}_evaluator': Evaluator(_Count()),
                       f'{mode}_cfg': dict(type=f'SkipEmpty{kind}Loop')},
                    custom_hooks=[dict(type='SkippedImagesHook')], default_hooks=dict(checkpoint=None),
                    log_level='WARNING')
    metrics = runner.val() if mode == 'val' else runner.test()
    assert metrics['n_images'] == 1
    hook = next(h for h in runner.hooks if isinstance(h, SkippedImagesHook))
    assert hook.events[mode] == 3 and len(hook.files[mode]) == 3


def test_preprocessor_names_the_loops():
    pre = MODELS.build(dict(type='VAEDataPreprocessor'))
    with pytest.raises(ValueError, match='SkipEmptyValLoop'):
        pre(empty_batch(['x.jpg']), False)
    out = pre(dict(inputs=[torch.zeros(3, 4, 4, dtype=torch.uint8)], data_samples=[{}]), False)
    assert out['inputs'].shape == (1, 3, 4, 4) and float(out['inputs'].min()) == -1.0
