"""Evaluation datasets on disk: ``NAME=PATH`` specs, their folder layouts, and the dataset configs built for them.

The layout comes from the name's prefix: ``imagenet*`` (class sub-folders of the val split), ``coco*`` (a flat
``val2017`` folder), ``photos*`` (the bundled photo set, its ``val`` split); anything else is read by
``ImageFolderDataset`` with ``layout='auto'``. A subset (``max_images``) of an image folder is a file list of N files
evenly spaced over the sorted files; of the bundled photos (or any dataset class that accepts ``max_images``) its
first N images; of any other mmengine dataset its first N samples (``indices``).
"""
from __future__ import annotations

import inspect
import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Optional

from transvae.registry import DATASETS, resolve_type

__all__ = ['PHOTOS_ROOT', 'LAYOUTS', 'DatasetSpec', 'layout_of', 'parse_datasets', 'subset_file_list',
           'accepts_argument', 'set_max_images', 'eval_dataset_cfg']

#: where the bundled photo set is assembled (``SamplePhotosDataset``)
PHOTOS_ROOT = 'data/sample_photos'
#: recognised name prefixes, in matching order
LAYOUTS = ('imagenet', 'coco', 'photos')


@dataclass(frozen=True)
class DatasetSpec:
    """One ``NAME=PATH`` evaluation set.

    Attributes:
        name: the label in the report.
        layout: ``'imagenet'``, ``'coco'``, ``'photos'`` or ``'auto'``.
        path: the folder.
    """
    name: str
    layout: str
    path: str


def layout_of(name: str) -> str:
    """The layout a dataset name stands for (its prefix, case-insensitive); ``'auto'`` when none matches."""
    for layout in LAYOUTS:
        if name.lower().startswith(layout):
            return layout
    return 'auto'


def parse_datasets(specs: list[str]) -> list[DatasetSpec]:
    """``['NAME=PATH', ...]`` -> specs; ``ValueError`` for a malformed entry or a repeated name."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition('=')
        if not sep or not name or not path:
            raise ValueError(f'--datasets entry {spec!r} is not NAME=PATH')
        out.append(DatasetSpec(name, layout_of(name), path))
    if len({s.name for s in out}) != len(out):
        raise ValueError('--datasets names must be unique')
    return out


def subset_file_list(root: str, layout: str, n: int, out_dir: str) -> tuple[str, int]:
    """Write a file list of ``n`` images evenly spaced over the sorted files under ``root``.

    Args:
        root: the image folder.
        layout: ``'imagenet'`` keeps only images inside class sub-folders.
        n: number of images wanted (all of them when the folder has fewer).
        out_dir: where the list is written (one file per rank).

    Returns:
        ``(path of the list, number of images in the folder)``.
    """
    from mmengine.dist import get_rank

    from transvae.datasets.image_folder import IMG_EXTENSIONS, scan_images
    if not osp.isdir(root):
        raise FileNotFoundError(f'dataset folder not found: {root!r}')
    files = scan_images(root, IMG_EXTENSIONS, recursive=True)
    if layout == 'imagenet':
        files = [f for f in files if '/' in f]  # images inside the class folders only
    total = len(files)
    if n < total:
        step = total / n
        files = [files[int(i * step)] for i in range(n)]
    os.makedirs(out_dir, exist_ok=True)
    path = osp.abspath(osp.join(out_dir, f'filelist_{layout}_{n}_rank{get_rank()}.txt'))
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(files) + '\n')
    return path, total


def accepts_argument(cls: type, name: str) -> bool:
    """Whether constructing ``cls`` accepts the keyword ``name``, following ``**kwargs`` up the class hierarchy."""
    for klass in cls.__mro__:
        init = vars(klass).get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            return False
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def set_max_images(ds: dict, n: int) -> None:
    """Limit the dataset config ``ds`` to ``n`` images (in place).

    A dataset class that accepts ``max_images`` (``ImageFolderDataset``, ``SamplePhotosDataset`` and their
    subclasses) gets it; any other mmengine ``BaseDataset`` gets ``indices=n`` (its first ``n`` samples).
    """
    cls = resolve_type(ds, DATASETS, missing_ok=True)
    if cls is not None and accepts_argument(cls, 'max_images'):
        ds['max_images'] = n
    else:
        ds['indices'] = n


def eval_dataset_cfg(spec: DatasetSpec, pipeline: list[dict[str, Any]], max_images: Optional[int],
                     work_dir: str) -> dict:
    """The test dataset config of an evaluation set.

    Args:
        spec: the evaluation set.
        pipeline: its test pipeline.
        max_images: evaluate at most this many images (``None``: all).
        work_dir: where a subset's file list is written (``<work_dir>/filelists``).
    """
    if spec.layout == 'photos':
        ds = dict(type='SamplePhotosDataset', data_root=spec.path, split='val', test_mode=True, pipeline=pipeline)
        if max_images:
            ds['max_images'] = max_images
        return ds
    ds = dict(type='ImageFolderDataset', data_root=spec.path, data_prefix='', test_mode=True, pipeline=pipeline,
              layout={'imagenet': 'imagenet', 'coco': 'flat'}.get(spec.layout, 'auto'))
    if max_images:
        ds['ann_file'], _ = subset_file_list(spec.path, spec.layout, max_images, osp.join(work_dir, 'filelists'))
        ds.pop('layout')
    return ds
