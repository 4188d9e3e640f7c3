from __future__ import annotations

import pytest

from dataset_helpers import write_rgb
from transvae.datasets import ImageFolderDataset
from transvae.registry import DATASETS

PIPE = [dict(type='LoadImageRGB'), dict(type='CenterCrop', size=16), dict(type='PackVAEInputs')]


def _imagenet(root):
    for cls, names in {'n02': ['b.JPEG', 'a.png'], 'n01': ['z.jpg'], 'n03': []}.items():
        (root / cls).mkdir(parents=True)
        for i, n in enumerate(names):
            write_rgb(root / cls / n, 20, 24, seed=i, fmt='JPEG' if n.lower().endswith(('jpg', 'jpeg')) else None)
    (root / 'n01' / 'notes.txt').write_text('x')
    (root / 'n01' / '.hidden.jpg').write_text('x')


def test_imagenet_layout(tmp_path):
    _imagenet(tmp_path / 'train')
    ds = DATASETS.build(dict(type='ImageFolderDataset', data_root=str(tmp_path), data_prefix='train', pipeline=PIPE))
    assert ds.metainfo['classes'] == ('n01', 'n02', 'n03')
    assert len(ds) == 3
    infos = [ds.get_data_info(i) for i in range(3)]
    assert [i['img_path'].split('train/')[1] for i in infos] == ['n01/z.jpg', 'n02/a.png', 'n02/b.JPEG']
    assert [i['gt_label'] for i in infos] == [0, 1, 1]
    sample = ds[1]
    assert sample['inputs'].shape == (3, 16, 16)
    assert sample['data_samples']['label'] == 1 and sample['data_samples']['ori_shape'] == (20, 24)
    assert sample['data_samples']['img_path'].endswith('n02/a.png')
    # fixed class list, max_images
    ds2 = ImageFolderDataset(str(tmp_path / 'train'), metainfo=dict(classes=['n02']), pipeline=PIPE, max_images=1)
    assert len(ds2) == 1 and ds2.get_data_info(0)['gt_label'] == 0 and ds2.metainfo['classes'] == ('n02', )


def test_flat_layout(tmp_path):
    root = tmp_path / 'val2017'
    root.mkdir()
    for n in ['3.jpg', '1.png', '2.JPG']:
        write_rgb(root / n, 18, 18, fmt='JPEG' if 'jp' in n.lower() else None)
    (root / 'sub').mkdir()
    write_rgb(root / 'sub' / '0.png')
    ds = ImageFolderDataset(str(tmp_path), data_prefix='val2017', pipeline=PIPE, test_mode=True)
    names = [ds.get_data_info(i)['img_path'].split('val2017/')[1] for i in range(len(ds))]
    assert names == ['1.png', '2.JPG', '3.jpg', 'sub/0.png']
    assert all(ds.get_data_info(i)['gt_label'] == -1 for i in range(len(ds)))
    assert ds[0]['data_samples']['label'] == -1
    assert len(ImageFolderDataset(str(root), recursive=False, pipeline=PIPE)) == 3
    assert len(ImageFolderDataset(str(root), extensions=['png'], pipeline=PIPE)) == 2
    assert len(ImageFolderDataset(str(root), max_images=2, pipeline=PIPE)) == 2


def test_file_list(tmp_path):
    _imagenet(tmp_path / 'imgs')
    (tmp_path / 'list.txt').write_text('# comment\nn02/b.JPEG 7\n\nn01/z.jpg\nn02/a.png 2\n')
    ds = ImageFolderDataset(str(tmp_path), data_prefix='imgs', ann_file='list.txt', pipeline=PIPE)
    assert len(ds) == 3
    assert [ds.get_data_info(i)['gt_label'] for i in range(3)] == [7, -1, 2]
    assert ds[0]['data_samples']['img_path'].endswith('n02/b.JPEG')
    assert ds[0]['data_samples']['label'] == 7


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found.*nope'):
        ImageFolderDataset(str(tmp_path), data_prefix='nope', pipeline=PIPE)
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'a.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match=r"no images found.*empty.*\.jpg"):
        ImageFolderDataset(str(tmp_path / 'empty'), pipeline=PIPE)
    with pytest.raises(FileNotFoundError, match='file list not found'):
        ImageFolderDataset(str(tmp_path), ann_file='missing.txt', pipeline=PIPE)
    with pytest.raises(ValueError, match='layout'):
        ImageFolderDataset(str(tmp_path), layout='coco', pipeline=PIPE)
