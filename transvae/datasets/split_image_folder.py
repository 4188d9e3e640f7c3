"""``SplitImageFolderDataset``: one folder of one's own images, split into train and val without touching it.

The dataset of ``configs/transvae/transvae-micro_f8d16_1xb16_own-images.py`` (``scripts/train_own_images.sh DIR``).
Two layouts of ``DIR``:

* ``train_val``: ``DIR/train/`` and ``DIR/val/`` (images anywhere below each, recursively; the split is the user's).
* ``flat``: every image below ``DIR`` (recursively), split by a stable hash of its path: an image is held out for
  validation when ``int(sha256(rel_path)[:16], 16) / 16**16 < val_fraction`` (``rel_path`` relative to ``DIR``,
  ``/``-separated, e.g. ``holiday/img_001.jpg``). A file's split depends only on its own path, so adding or removing
  images never moves the others. When that leaves a split empty (a few images), the image with the smallest hash
  goes to val, or the one with the largest to train; at least 2 images are needed.
* ``auto`` (default): ``train_val`` when ``DIR/train`` and ``DIR/val`` are both folders, else ``flat``.

Files whose extension is not an image extension, and hidden files and folders, are ignored; images are unlabelled
(``gt_label = -1``). Nothing under ``DIR`` is ever written.
"""
from __future__ import annotations

import hashlib
import os.path as osp
from typing import Optional

from transvae.registry import DATASETS

from .errors import DataRootError, DataRootNotFoundError
from .image_folder import ImageFolderDataset, scan_images

SPLIT_LAYOUTS = ('auto', 'train_val', 'flat')
_HINT = 'give the folder of your images with --data-root DIR (`bash scripts/train_own_images.sh DIR`)'


def hash_fraction(rel_path: str) -> float:
    """Where ``rel_path`` falls in ``[0, 1)``: ``int(sha256(rel_path)[:16], 16) / 16**16`` (UTF-8 path)."""
    return int(hashlib.sha256(rel_path.encode('utf-8')).hexdigest()[:16], 16) / 16 ** 16


def hash_split(rel_paths: list[str], val_fraction: float) -> dict[str, list[str]]:
    """Split image paths into ``{'train': [...], 'val': [...]}`` (each sorted) by :func:`hash_fraction`.

    A path goes to val when its fraction is below ``val_fraction``. An empty split takes one image: val the one with
    the smallest fraction, train the one with the largest. Needs at least 2 paths.
    """
    if len(rel_paths) < 2:
        raise ValueError(f'hash_split needs at least 2 paths, got {len(rel_paths)}')
    frac = {p: hash_fraction(p) for p in rel_paths}
    val = {p for p in rel_paths if frac[p] < val_fraction}
    if not val:
        val = {min(rel_paths, key=lambda p: (frac[p], p))}
    if len(val) == len(rel_paths):
        val.discard(max(rel_paths, key=lambda p: (frac[p], p)))
    return dict(train=sorted(p for p in rel_paths if p not in val), val=sorted(val))


@DATASETS.register_module()
class SplitImageFolderDataset(ImageFolderDataset):
    """The ``train`` or ``val`` part of one folder of images (see the module docstring for the layouts and the rule).

    Args:
        data_root: the folder of images (``--data-root DIR``); read only.
        split: ``train`` or ``val``.
        layout: ``auto`` (default), ``train_val`` or ``flat``.
        val_fraction: ``flat`` layout: the fraction of the images held out for validation, in ``(0, 1)``.
        min_length: train split: list the images repeatedly until an epoch has at least this many items (MMEngine's
            ``IterBasedTrainLoop`` pauses 2 s at every epoch end; a folder of 30 images at batch 16 would end an
            epoch every 2 iterations). ``0``: each image once.
        **kwargs: forwarded to :class:`ImageFolderDataset` (``pipeline``, ``test_mode``, ``extensions``,
            ``max_images``, ``recursive``, ...); ``data_prefix`` and ``ann_file`` are fixed by the layout.

    Raises:
        DataRootNotFoundError: ``data_root`` is not a folder.
        DataRootError: too few images (fewer than 2 in ``flat``; an empty ``train/`` or ``val/`` in ``train_val``).
    """

    def __init__(self, data_root: str = '', split: str = 'train', layout: str = 'auto', val_fraction: float = 0.1,
                 min_length: int = 0, **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"SplitImageFolderDataset: split must be 'train' or 'val', got {split!r}")
        if layout not in SPLIT_LAYOUTS:
            raise ValueError(f'SplitImageFolderDataset: layout must be one of {SPLIT_LAYOUTS}, got {layout!r}')
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f'SplitImageFolderDataset: val_fraction must be in (0, 1), got {val_fraction!r}')
        if int(min_length) < 0:
            raise ValueError(f'SplitImageFolderDataset: min_length must be >= 0, got {min_length!r}')
        for key in ('data_prefix', 'ann_file'):
            if key in kwargs:
                raise TypeError(f'SplitImageFolderDataset fixes {key!r} (the layout decides); use '
                                'ImageFolderDataset for a custom layout')
        if not data_root:
            raise DataRootNotFoundError(f'SplitImageFolderDataset: data_root is not set: {_HINT}.')
        self.split = split
        self.split_layout = layout
        self.val_fraction = float(val_fraction)
        self.min_length = int(min_length)
        self.resolved_layout: Optional[str] = None
        self.check_data_root(data_root)
        super().__init__(data_root=data_root, layout='flat', **kwargs)

    @staticmethod
    def check_data_root(data_root: str) -> None:
        """Raise :class:`~transvae.datasets.errors.DataRootNotFoundError` unless ``data_root`` is a folder (reads
        only; the tools call it for ``--data-root`` before anything runs)."""
        if not osp.isdir(data_root):
            what = 'is not a folder' if osp.exists(data_root) else 'does not exist'
            raise DataRootNotFoundError(f'data_root {osp.abspath(data_root)!r} {what}: {_HINT}.')

    def resolve_layout(self, root: str) -> str:
        """``train_val`` or ``flat`` for the folder ``root`` (``auto``: ``train_val`` iff both sub-folders exist)."""
        if self.split_layout != 'auto':
            return self.split_layout
        both = all(osp.isdir(osp.join(root, s)) for s in ('train', 'val'))
        return 'train_val' if both else 'flat'

    def load_data_list(self) -> list[dict]:
        root = self.data_root
        self.check_data_root(root)
        layout = self.resolved_layout = self.resolve_layout(root)
        where = (f"data_root {osp.abspath(root)!r} (layout {layout!r}, extensions {', '.join(self.extensions)}, "
                 f'hidden files ignored)')
        if layout == 'train_val':
            folder = osp.join(root, self.split)
            if not osp.isdir(folder):
                raise DataRootNotFoundError(f'{where}: no {self.split}/ folder; the train_val layout needs '
                                            f'{self.split}/ and {"val" if self.split == "train" else "train"}/.')
            paths = [osp.join(folder, p) for p in scan_images(folder, self.extensions, self.recursive)]
            if not paths:
                raise DataRootError(f'{where}: no image in {self.split}/; put at least one image in train/ and one '
                                    'in val/, or use a flat folder (a held-out fraction is chosen by path hash).')
        else:
            found = scan_images(root, self.extensions, self.recursive)
            if len(found) < 2:
                raise DataRootError(f'{where}: found {len(found)} image(s); at least 2 are needed (one to train on, '
                                    'one held out for validation).')
            paths = [osp.join(root, p) for p in hash_split(found, self.val_fraction)[self.split]]
        data_list = [dict(img_path=p, gt_label=-1) for p in paths]
        if self.max_images is not None:
            data_list = data_list[:self.max_images]
        if self.split == 'train' and self.min_length > len(data_list):
            data_list = data_list * -(-self.min_length // len(data_list))
        return data_list
