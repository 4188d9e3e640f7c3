"""Corrupt files never stop a run; skips are counted and reach SkippedImagesHook through the data."""
from __future__ import annotations

import logging
import uuid

import pytest
import torch
from mmengine.dataset import pseudo_collate, worker_init_fn
from mmengine.logging import MessageHub, MMLogger

from dataset_helpers import make_corrupt_folder
from transvae.datasets import ImageFolderDataset, empty_batch, is_empty_batch, push_skipped, skip_none_collate
from transvae.engine.hooks.skipped_images_hook import SkippedImagesHook, extract_skipped
from transvae.registry import FUNCTIONS, HOOKS

PIPE = [dict(type='LoadImageRGB'), dict(type='RandomCrop', size=16), dict(type='RandomFlip'),
        dict(type='PackVAEInputs')]


class FakeRunner:

    def __init__(self):
        self.message_hub = MessageHub.get_instance(f'skip-test-{uuid.uuid4().hex}')
        self.logger = MMLogger.get_instance(f'skip-test-{uuid.uuid4().hex}')
        self.epoch = 0


class _Capture(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _loader(ds, num_workers, batch_size=2):
    from functools import partial
    init = partial(worker_init_fn, num_workers=num_workers, rank=0, seed=0) if num_workers else None
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=skip_none_collate,
        worker_init_fn=init)


@pytest.mark.parametrize('num_workers', [0, 2])
def test_train_mode_skips_and_counts(tmp_path, num_workers):
    files = make_corrupt_folder(tmp_path / 'imgs')
    ds = ImageFolderDataset(str(tmp_path / 'imgs'), pipeline=PIPE)
    assert len(ds) == 4
    hook, runner = SkippedImagesHook(), FakeRunner()
    hook.before_train(runner)
    seen = 0
    for epoch in range(2):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        for i, batch in enumerate(_loader(ds, num_workers)):
            assert all(x.shape == (3, 16, 16) and x.dtype == torch.uint8 for x in batch['inputs'])
            assert {d['img_path'] for d in batch['data_samples']} <= files['good']  # bad files replaced by good ones
            seen += len(batch['inputs'])
            hook.after_train_iter(runner, i, batch)
        hook.after_train_epoch(runner)
    assert seen == 8  # no sample lost in train mode
    assert hook.files['train'] == files['bad']
    assert hook.events['train'] >= 6  # each bad index is drawn once per epoch (plus possible re-draws)
    assert runner.message_hub.get_info('skipped_images/train') == hook.events['train']
    assert runner.message_hub.get_scalar('train/skipped_images').current() == hook.events['train']


@pytest.mark.parametrize('num_workers', [0, 2])
def test_test_mode_drops_without_duplicates(tmp_path, num_workers):
    files = make_corrupt_folder(tmp_path / 'imgs')
    ds = ImageFolderDataset(str(tmp_path / 'imgs'), pipeline=PIPE, test_mode=True)
    hook, runner = SkippedImagesHook(), FakeRunner()
    hook.before_val_epoch(runner)
    paths, empties = [], 0
    for i, batch in enumerate(_loader(ds, num_workers)):
        paths += [d['img_path'] for d in batch['data_samples']]
        if len(batch['inputs']) == 0:
            empties += 1
        hook.after_val_iter(runner, i, batch)
    hook.after_val_epoch(runner)
    assert sorted(paths) == sorted(files['good'])  # the good image exactly once, no duplicates
    assert empties == 1  # batch 2 = (c_empty, d_text): both bad -> the empty-batch marker
    assert hook.events['val'] == 3 and hook.files['val'] == files['bad']
    assert runner.message_hub.get_info('skipped_images/val') == 3


def test_warned_once_per_file(tmp_path):
    files = make_corrupt_folder(tmp_path / 'imgs')
    cap = _Capture()
    logger = MMLogger.get_current_instance()
    logger.addHandler(cap)
    try:
        ds = ImageFolderDataset(str(tmp_path / 'imgs'), pipeline=PIPE, test_mode=True)
        for _ in range(3):
            for i in range(len(ds)):
                ds[i]
    finally:
        logger.removeHandler(cap)
    msgs = [m for m in cap.messages if 'Skipping unreadable image' in m]
    assert len(msgs) == 3
    assert all(any(p in m for m in msgs) for p in files['bad'])
    assert ds.num_skipped == 9


def test_all_bad_train_raises_clearly(tmp_path):
    root = tmp_path / 'bad'
    root.mkdir()
    (root / 'x.jpg').write_bytes(b'')
    ds = ImageFolderDataset(str(root), pipeline=PIPE)
    with pytest.raises(RuntimeError, match='all 1 images'):
        ds[0]


def test_collate_and_extract():
    assert FUNCTIONS.get('skip_none_collate') is skip_none_collate
    assert HOOKS.get('SkippedImagesHook') is SkippedImagesHook
    s = lambda p, sk: dict(inputs=torch.zeros(3, 2, 2, dtype=torch.uint8),  # noqa: E731
                           data_samples=dict(img_path=p, ori_shape=(2, 2), img_shape=(2, 2), label=-1, skipped=sk))
    push_skipped('w')  # a test-mode skip in this worker, before the batch
    batch = skip_none_collate([s('a', ['x']), None, s('b', ['y', 'z'])])
    assert len(batch['inputs']) == 2 and [d['img_path'] for d in batch['data_samples']] == ['a', 'b']
    assert batch['data_samples'][0]['ori_shape'] == (2, 2)
    assert [d['skipped'] for d in batch['data_samples']] == [['w', 'x'], ['y', 'z']]
    assert set(batch) == {'inputs', 'data_samples'}  # nothing else reaches model.forward(**data)
    assert extract_skipped(batch) == ['w', 'x', 'y', 'z']
    push_skipped('v')
    empty = skip_none_collate([None, None])
    assert empty == empty_batch(['v']) and is_empty_batch(empty) and not is_empty_batch(batch)
    assert extract_skipped(empty) == ['v']
    # pseudo_collate-style per-sample lists (equal length) and lists of samples
    assert extract_skipped(pseudo_collate([s('a', ['x']), s('b', ['y'])])) == ['x', 'y']
    assert extract_skipped([s('a', ['x']), None]) == ['x']
