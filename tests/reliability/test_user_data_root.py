"""A user's ``--data-root`` is never deleted or rewritten (issue 20, item 0), and their images can be trained on.

The hostile case itself: a real folder of a user's files (small PNG / JPEG images, some smaller than the crop, a text
file, a hidden file, a sub-folder) given to the bundled-photo builder, to ``set_data_root`` and to the three tools;
each refuses with an error naming the folder and the folder stays byte-identical (sha256 of every file, the set of
paths, mtimes, nothing created beside it). Then the own-images config trains 2 iterations on a flat folder and
evaluates on it through ``scripts/train_own_images.sh`` (real processes), and evaluates on a ``train/`` + ``val/``
folder (in-process; that layout's train split is checked at the dataset level), leaving each byte-identical.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import random

import pytest
import tiny_vae_fixtures as tv
from projects.fault_drill.fault_drill.user_data import (BUNDLED_CONFIG, OWN_CONFIG, TINY_OPTIONS, folder_snapshot,
                                                      make_user_folder, tool_command)

from transvae.apis import extract_latents_cli, test_cli
from transvae.datasets import (DataRootError, DataRootNotFoundError, SamplePhotosDataset, SplitImageFolderDataset,
                               prepare_sample_photos)
from transvae.datasets.split_image_folder import hash_fraction, hash_split

TINY_PIPE = [dict(type='LoadImageRGB'), dict(type='RandomCrop', size=32), dict(type='PackVAEInputs')]


def _user_folder(tmp_path, layout: str = 'flat', n: int = 5, seed: int = 0) -> tuple[str, dict]:
    folder = str(tmp_path / 'user' / 'my photos')
    make_user_folder(folder, layout, random.Random(seed), n=n)
    return folder, folder_snapshot(folder)


# ---------------------------------------------------------------------------------------------------------------------
# the bundled-photo builder and the --data-root shortcut refuse a user's folder
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('layout', ['flat', 'train_val', 'legacy', 'manifest'])
def test_bundled_builder_refuses_user_folder(tmp_path, layout):
    folder, before = _user_folder(tmp_path, layout)
    for build in (lambda: prepare_sample_photos(folder),
                  lambda: SamplePhotosDataset(data_root=folder, split='train', pipeline=TINY_PIPE),
                  lambda: SamplePhotosDataset.check_data_root(folder)):
        with pytest.raises(DataRootError) as e:
            build()
        assert repr(osp.abspath(folder)) in str(e.value) and 'scripts/train_own_images.sh' in str(e.value)
        assert 'did not write' in str(e.value)
    assert folder_snapshot(folder) == before  # byte-identical, nothing beside it (no .lock, no .tmp-*)


def test_set_data_root_refuses_user_folder_for_every_bundled_config(tmp_path):
    from transvae.engine.config_validation import read_config as load_config
    from transvae.engine.config_surgery import apply_preset, set_data_root
    folder, before = _user_folder(tmp_path)
    cases = [(BUNDLED_CONFIG, None), ('configs/_base_/datasets/imagenet.py', 'cpu'),
             ('configs/_base_/datasets/coco.py', 'cpu')]
    for config, preset in cases:
        cfg = load_config(osp.join(tv.REPO, config))
        if preset:
            apply_preset(cfg, preset)
        with pytest.raises(DataRootError, match='did not write'):
            set_data_root(cfg, folder)
    cfg = load_config(osp.join(tv.REPO, OWN_CONFIG))
    set_data_root(cfg, folder)  # the own-images dataset reads the folder: accepted
    assert cfg.train_dataloader.dataset.data_root == folder == cfg.test_dataloader.dataset.data_root
    with pytest.raises(DataRootNotFoundError, match='does not exist'):
        set_data_root(load_config(osp.join(tv.REPO, OWN_CONFIG)), str(tmp_path / 'missing'))
    assert folder_snapshot(folder) == before


# ---------------------------------------------------------------------------------------------------------------------
# the own-images path: train 2 iterations + evaluate, the folder untouched
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def own_run(tmp_path_factory):
    """The documented command, for real: ``bash scripts/train_own_images.sh DIR`` on a flat folder (tools/train.py 2
    iterations, then tools/test.py, each a real process)."""
    tmp = tmp_path_factory.mktemp('own')
    folder, before = _user_folder(tmp, 'flat', n=5, seed=3)
    work = tmp / 'work'
    proc = tv.run_checked(['bash', 'scripts/train_own_images.sh', folder, '--max-iters', '2', '--resolution', '32',
                           '--cfg-options', *TINY_OPTIONS], timeout=900, SKIP_SETUP='1', PYTHON=tv.PYTHON,
                          WORK_DIR=str(work))
    return dict(folder=folder, before=before, work=work, proc=proc, ckpt=str(work / 'iter_2.pth'))


def test_train_own_images_script_flat_folder(own_run):
    work, proc = own_run['work'], own_run['proc']
    assert (work / 'iter_2.pth').is_file() and (work / 'report.md').is_file() and (work / 'report.json').is_file()
    assert f'report: {work}/report.md' in proc.stdout and 'PSNR' in proc.stdout
    assert 'SplitImageFolderDataset' in (work / 'report.md').read_text()
    assert folder_snapshot(own_run['folder']) == own_run['before']


def test_own_images_train_val_folder_evaluates(own_run, tmp_path):
    """``tools/test.py`` (in-process) with the own-images config on a ``train/`` + ``val/`` folder: the 2 val images."""
    folder, before = _user_folder(tmp_path, 'train_val', n=5, seed=1)
    metrics = test_cli.main(tool_command('test', OWN_CONFIG, folder, str(tmp_path / 'test'),
                                                     own_run['ckpt'])[2:])
    assert {'psnr', 'ssim', 'lpips'} <= set(metrics)
    settings = json.loads((tmp_path / 'test' / 'report.json').read_text())['settings']
    assert [(s['num_images'], s['num_skipped'], s['data_root']) for s in settings] == [(2, 0, folder)]
    assert folder_snapshot(folder) == before


def test_tools_refuse_user_folder_with_bundled_config(own_run, tmp_path):
    """``tools/train.py`` / ``test.py`` / ``extract_latents.py`` with the micro demo config: one ``error:`` line."""
    from transvae.apis.train_cli import main as train_main
    folder, before = _user_folder(tmp_path, 'flat', n=4, seed=2)
    mains = dict(train=train_main, test=test_cli.main,
                 extract_latents=extract_latents_cli.main)
    for tool, main in mains.items():
        cmd = tool_command(tool, BUNDLED_CONFIG, folder, str(tmp_path / f'{tool}_work'), own_run['ckpt'])
        with pytest.raises(SystemExit) as e:
            main(cmd[2:])
        msg = str(e.value.code)
        assert msg.startswith('error: data_root ') and repr(osp.abspath(folder)) in msg, (tool, msg)
        assert '\n' not in msg and 'train_own_images.sh' in msg
        assert not (tmp_path / f'{tool}_work').exists()  # refused before anything was written
    assert folder_snapshot(folder) == before


# ---------------------------------------------------------------------------------------------------------------------
# SplitImageFolderDataset: layouts, the hash split, too few / too small images
# ---------------------------------------------------------------------------------------------------------------------
def test_hash_split_is_stable_and_never_empty():
    paths = [f'a/img_{i:03d}.png' for i in range(200)]
    split = hash_split(paths, 0.1)
    assert sorted(split['train'] + split['val']) == paths and not set(split['train']) & set(split['val'])
    assert 10 <= len(split['val']) <= 30 and split['val'] == sorted(p for p in paths if hash_fraction(p) < 0.1)
    more = hash_split(paths + [f'b/new_{i}.jpg' for i in range(50)], 0.1)  # adding images moves no other image
    assert set(split['val']) <= set(more['val']) and set(split['train']) <= set(more['train'])
    for n in (2, 3):  # a few images: one held out, the rest trained on
        small = hash_split(paths[:n], 0.1)
        assert len(small['val']) == 1 and len(small['train']) == n - 1
    assert hash_split(paths[:2], 0.99) == hash_split(paths[:2], 0.99) and len(hash_split(paths[:2], 0.99)['train']) == 1
    with pytest.raises(ValueError):
        hash_split(paths[:1], 0.1)


def test_split_dataset_layouts(tmp_path):
    flat, before = _user_folder(tmp_path, 'flat', n=6)
    kw = dict(data_root=flat, pipeline=TINY_PIPE, val_fraction=0.3)
    train, val = SplitImageFolderDataset(split='train', **kw), SplitImageFolderDataset(split='val', **kw)
    names = sorted(osp.relpath(d['img_path'], flat) for ds in (train, val) for d in ds.load_data_list())
    assert names == ['holiday/img_004.png', 'holiday/img_005.jpg'] + [f'img_{i:03d}.{e}' for i, e in
                                                                        enumerate(['png', 'jpg', 'png', 'jpg'])]
    assert train.resolved_layout == 'flat' and len(val) >= 1 and len(train) >= 1
    for i in range(len(train)):  # 20x24 images are smaller than the 32 px crop: reflection-padded
        s = train[i]
        assert tuple(s['inputs'].shape) == (3, 32, 32) and s['data_samples']['label'] == -1
    assert len(SplitImageFolderDataset(split='train', min_length=50, **kw)) >= 50

    tv_root, tv_before = _user_folder(tmp_path / 'tv', 'train_val', n=5)
    val = SplitImageFolderDataset(data_root=tv_root, split='val', test_mode=True, pipeline=TINY_PIPE)
    assert val.resolved_layout == 'train_val' and all('/val/' in d['img_path'] for d in val.load_data_list())
    assert len(val) == 2
    assert folder_snapshot(flat) == before and folder_snapshot(tv_root) == tv_before


def test_split_dataset_clear_errors(tmp_path):
    one = tmp_path / 'one'
    make_user_folder(str(one), 'flat', n=1)  # img_000.png + holiday/ (2 images): move those out
    for p in (one / 'holiday').iterdir():
        p.unlink()
    with pytest.raises(DataRootError, match=r"found 1 image\(s\); at least 2"):
        SplitImageFolderDataset(data_root=str(one), split='train', pipeline=TINY_PIPE)
    with pytest.raises(DataRootNotFoundError, match='does not exist'):
        SplitImageFolderDataset(data_root=str(tmp_path / 'nope'), split='train')
    empty_val = tmp_path / 'ev'
    make_user_folder(str(empty_val), 'train_val', n=4)
    for p in (empty_val / 'val').iterdir():
        p.unlink()
    with pytest.raises(DataRootError, match='no image in val/'):
        SplitImageFolderDataset(data_root=str(empty_val), split='val', test_mode=True, pipeline=TINY_PIPE)
    with pytest.raises(ValueError, match='val_fraction'):
        SplitImageFolderDataset(data_root=str(empty_val), val_fraction=1.0)
    assert sorted(os.listdir(one)) == ['.hidden_settings', 'holiday', 'img_000.png', 'notes.txt']
