"""The bundled photo set: split by source, deterministic manifest, safe concurrent preparation, configs."""
from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from transvae.datasets import SamplePhotosDataset, prepare_sample_photos
from transvae.datasets.sample_photos import BIKES_FRAMES, CARPHONE_FRAMES, SOURCES, VAL_SOURCES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('sp') / 'sample_photos')
    return prepare_sample_photos(root)


def test_split_disjoint_by_source(photos):
    files = photos['files']
    assert not photos['missing_sources']
    train = {f['source'] for f in files if f['split'] == 'train'}
    val = {f['source'] for f in files if f['split'] == 'val'}
    assert val == set(VAL_SOURCES) and not train & val
    assert train | val == set(SOURCES)
    # no photo, stereo pair or video contributes to both splits: every file's bytes and source are in one split only
    by_hash = {}
    for f in files:
        by_hash.setdefault(f['sha256'], set()).add(f['split'])
    assert all(len(splits) == 1 for splits in by_hash.values())
    videos = {'bikes', 'carphone'}
    assert videos <= train and not videos & val
    stereo = [f for f in files if f['source'] == 'stereo_motorcycle']
    assert len(stereo) == 2 and {f['split'] for f in stereo} == {'train'}
    n_stills_train = sum(split == 'train' for split, _, _ in SOURCES.values()) - len(videos) + 1  # stereo pair: 2
    assert photos['counts'] == dict(train=n_stills_train + len(BIKES_FRAMES) + len(CARPHONE_FRAMES),
                                    val=len(VAL_SOURCES))
    assert len(VAL_SOURCES) >= 8 and len(train) >= 20
    # every source records where it ships from and its licence
    assert set(photos['licences']) == set(SOURCES) and all(photos['licences'].values())
    for f in files:  # every file on disk, in its split folder, with its size
        assert f['path'].startswith(f"{f['split']}/{f['source']}/")
        assert os.path.getsize(os.path.join(photos['root'], f['path'])) == f['bytes']
    assert all(f['height'] >= 256 and f['width'] >= 256 for f in files if f['split'] == 'val')
    assert all(f['height'] >= 64 and f['width'] >= 64 for f in files)


def _prepare(root, q):
    try:
        m = prepare_sample_photos(root)
        q.put(json.dumps(dict(files=m['files'], counts=m['counts'])))
    except Exception as e:  # pragma: no cover
        q.put(f'ERROR {e!r}')


def test_concurrent_preparation_is_atomic_and_deterministic(photos, tmp_path):
    root = str(tmp_path / 'shared' / 'sample_photos')
    ctx = mp.get_context('fork')
    q = ctx.Queue()
    procs = [ctx.Process(target=_prepare, args=(root, q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert not any(r.startswith('ERROR') for r in results), results
    a, b = (json.loads(r) for r in results)
    assert a == b
    # deterministic: the same manifest as the independent build of the fixture
    assert a['files'] == photos['files'] and a['counts'] == photos['counts']
    # one folder, no temporary leftovers
    assert sorted(os.listdir(tmp_path / 'shared')) == ['sample_photos', 'sample_photos.lock']
    # reused (no rebuild) once complete; rebuilt when stale
    assert prepare_sample_photos(root)['prepare_time_s'] == 0.0
    victim = os.path.join(root, photos['files'][0]['path'])
    with open(victim, 'ab') as f:
        f.write(b'garbage')
    m = prepare_sample_photos(root)
    assert m['prepare_time_s'] > 0 and m['files'] == photos['files']


def test_dataset(photos):
    pipe = [dict(type='LoadImageRGB'), dict(type='ResizeShortSide', size=32), dict(type='CenterCrop', size=32),
            dict(type='PackVAEInputs')]
    val = SamplePhotosDataset(data_root=photos['root'], split='val', pipeline=pipe, test_mode=True)
    assert len(val) == photos['counts']['val']
    assert set(val.metainfo['classes']) == set(VAL_SOURCES)
    s = val[0]
    assert s['inputs'].shape == (3, 32, 32) and s['data_samples']['label'] == 0
    train = SamplePhotosDataset(data_root=photos['root'], split='train', pipeline=pipe, max_images=5)
    assert len(train) == 5
    with pytest.raises(ValueError):
        SamplePhotosDataset(data_root=photos['root'], split='test')


@pytest.mark.parametrize('name', ['sample_photos', 'imagenet', 'coco'])
def test_configs_cpu_preset_build(photos, name):
    cfg = Config.fromfile(os.path.join(REPO, 'configs', '_base_', 'datasets', f'{name}.py'))
    metrics = {e['type'] for e in cfg.test_evaluator}
    assert {'PSNRMetric', 'SSIMMetric', 'LPIPSMetric'} <= metrics
    assert ('FIDMetric' in metrics) == (name != 'sample_photos')  # 8 held-out photos are too few for rFID
    assert 'presets' not in cfg  # base files use <kind>_presets (duplicate keys among bases are an error)
    cfg.merge_from_dict(cfg.dataset_presets['cpu'].to_dict())  # what tools/train.py --preset cpu does
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if key not in cfg:
            continue
        dl_cfg = cfg[key].to_dict() if hasattr(cfg[key], 'to_dict') else dict(cfg[key])
        assert dl_cfg['dataset']['type'] == 'SamplePhotosDataset'
        dl_cfg['dataset']['data_root'] = photos['root']
        dl_cfg['num_workers'] = 0
        dl_cfg['persistent_workers'] = False
        dl_cfg['batch_size'] = 2
        loader = Runner.build_dataloader(dl_cfg, seed=0)
        batch = next(iter(loader))
        size = 64 if key == 'train_dataloader' else 128
        assert len(batch['inputs']) == 2
        assert all(x.shape == (3, size, size) and x.dtype == torch.uint8 for x in batch['inputs'])
        assert [d['skipped'] for d in batch['data_samples']] == [[], []]
        assert all(d['label'] >= 0 and d['img_path'].endswith('.png') for d in batch['data_samples'])


def test_configs_paper_scale():
    sp = Config.fromfile(os.path.join(REPO, 'configs', '_base_', 'datasets', 'sample_photos.py'))
    assert sp.train_dataloader.batch_size == 16 and sp.val_dataloader.batch_size == 4
    assert sp.train_dataloader.sampler.shuffle and not sp.val_dataloader.sampler.shuffle
    assert sp.train_dataloader.num_workers == 2 and not sp.train_dataloader.persistent_workers
    assert sp.val_dataloader.collate_fn.type == 'transvae.skip_none_collate'
    assert sp.train_dataloader.collate_fn.type == 'transvae.skip_none_collate'
    inet = Config.fromfile(os.path.join(REPO, 'configs', '_base_', 'datasets', 'imagenet.py'))
    assert inet.train_dataloader.dataset.data_prefix == 'train'
    # VA-VAE / LDM pipeline: short side to the crop size, random crop, h-flip (no RandomResizedCrop fragments)
    assert [t.type for t in inet.train_dataloader.dataset.pipeline] == [
        'LoadImageRGB', 'ResizeShortSide', 'RandomCrop', 'RandomFlip', 'PackVAEInputs']
    assert inet.train_dataloader.dataset.pipeline[1].size == inet.train_dataloader.dataset.pipeline[2].size == 256
    coco = Config.fromfile(os.path.join(REPO, 'configs', '_base_', 'datasets', 'coco.py'))
    assert 'train_dataloader' not in coco and coco.test_dataloader.dataset.data_prefix == 'val2017'


# ---------------------------------------------------------------------------------------------------------------------
# ownership: the builder rebuilds only a folder it made (issue 20, item 0; tests/reliability/test_user_data_root.py)
# ---------------------------------------------------------------------------------------------------------------------
def _tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns, open(p, 'rb').read() if name in files else b'')
    return out


def test_marker_written_and_only_marked_folders_rebuilt(photos, tmp_path):
    import shutil

    from transvae.datasets import DataRootError
    from transvae.datasets.sample_photos import MARKER, check_sample_photos_root
    assert os.path.isfile(os.path.join(photos['root'], MARKER))
    # a marked, stale copy (one file changed) with a file the user added: refused, nothing touched
    root = str(tmp_path / 'sample_photos')
    shutil.copytree(photos['root'], root)
    with open(os.path.join(root, photos['files'][0]['path']), 'ab') as f:
        f.write(b'garbage')
    with open(os.path.join(root, 'train', 'my_cat.jpg'), 'wb') as f:
        f.write(b'\xff\xd8 not really a jpeg')
    before = _tree(root)
    with pytest.raises(DataRootError, match=r"also holds files transvae did not write \(e.g. 'train/my_cat.jpg'\)"):
        prepare_sample_photos(root)
    assert _tree(root) == before and sorted(os.listdir(tmp_path)) == ['sample_photos']
    # without the user's file it may be rebuilt (the concurrency test above rebuilds one); a folder built before the
    # marker existed (a manifest of the builder's format) counts as the builder's
    os.remove(os.path.join(root, 'train', 'my_cat.jpg'))
    check_sample_photos_root(root, rebuild=True)
    os.remove(os.path.join(root, MARKER))
    check_sample_photos_root(root, rebuild=True)
    os.remove(os.path.join(root, 'manifest.json'))  # neither marker nor manifest: not provably ours
    with pytest.raises(DataRootError, match='holds files transvae did not write'):
        check_sample_photos_root(root, rebuild=True)
    # a missing or empty folder may be claimed; a file may not
    check_sample_photos_root(str(tmp_path / 'new'))
    os.mkdir(tmp_path / 'empty')
    check_sample_photos_root(str(tmp_path / 'empty'), rebuild=True)
    (tmp_path / 'afile').write_text('x')
    with pytest.raises(DataRootError, match='is not a folder'):
        prepare_sample_photos(str(tmp_path / 'afile'))
    assert (tmp_path / 'afile').read_text() == 'x'
