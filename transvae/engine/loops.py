"""Validation / test loops that pass over batches whose every image was skipped.

``transvae.skip_none_collate`` returns an *empty batch* (``transvae.datasets.collate.empty_batch``) when every file of
a test-mode batch was unreadable. Such a batch has nothing to run the model on, so the loop -- not the model -- skips
it: the iteration hooks still run (``SkippedImagesHook`` counts the skipped paths from ``data_batch``), with no
outputs, and the evaluator receives nothing. The model and its data preprocessor never see the marker.

Configs name these loops (``val_cfg = dict(type='SkipEmptyValLoop')``, ``test_cfg = dict(type='SkipEmptyTestLoop')``);
with mmengine's plain loops an empty batch reaches the data preprocessor, which raises an error naming them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.runner import TestLoop, ValLoop

from transvae.datasets.collate import is_empty_batch
from transvae.registry import LOOPS


@LOOPS.register_module()
class SkipEmptyValLoop(ValLoop):
    """mmengine's ``ValLoop``; an empty batch (every sample skipped) runs the iteration hooks and nothing else."""

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict] | dict[str, Any]) -> None:
        if is_empty_batch(data_batch):
            self.runner.call_hook('before_val_iter', batch_idx=idx, data_batch=data_batch)
            self.runner.call_hook('after_val_iter', batch_idx=idx, data_batch=data_batch, outputs=[])
            return
        super().run_iter(idx, data_batch)


@LOOPS.register_module()
class SkipEmptyTestLoop(TestLoop):
    """mmengine's ``TestLoop``; an empty batch (every sample skipped) runs the iteration hooks and nothing else."""

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict] | dict[str, Any]) -> None:
        if is_empty_batch(data_batch):
            self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
            self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch, outputs=[])
            return
        super().run_iter(idx, data_batch)
