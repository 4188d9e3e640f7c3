"""``ImageFolderDataset``: ImageNet (class sub-folders), flat (COCO val2017) and file-list layouts.

Corrupt files never stop a run: a sample whose pipeline returns ``None`` (see ``LoadImageRGB``) is skipped, logged
once per file and counted; the skipped paths travel to the main process inside the data (see
``transvae.datasets.collate``) where ``SkippedImagesHook`` accumulates them.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import MMLogger

from transvae.registry import DATASETS

from .collate import pop_skipped, push_skipped

IMG_EXTENSIONS: tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.ppm', '.pgm', '.bmp', '.tif', '.tiff', '.webp',
                                   '.gif', '.jfif')
LAYOUTS = ('auto', 'imagenet', 'flat')

_WARNED: set[str] = set()  # paths already warned about in this process


def _norm_exts(extensions: Union[str, Sequence[str]]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions, )
    exts = tuple(e.lower() if e.startswith('.') else '.' + e.lower() for e in extensions)
    if not exts:
        raise ValueError('extensions must not be empty')
    return exts


def scan_images(folder: str, extensions: Sequence[str], recursive: bool = True) -> list[str]:
    """Sorted paths (relative to ``folder``, ``/``-separated) of the image files under ``folder``.

    Hidden files and folders (name starting with ``.``) are ignored; symlinks are followed.
    """
    out: list[str] = []
    exts = tuple(extensions)

    def _walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if e.name.startswith('.'):
                continue
            r = f'{rel}/{e.name}' if rel else e.name
            if e.is_dir(follow_symlinks=True):
                if recursive:
                    _walk(e.path, r)
            elif e.name.lower().endswith(exts):
                out.append(r)

    _walk(folder, '')
    return sorted(out)


@DATASETS.register_module()
class ImageFolderDataset(BaseDataset):
    """Images in a folder, labelled by class sub-folder (ImageNet), unlabelled (flat) or listed in a file.

    Layouts:
      * ``imagenet``: ``<root>/<class>/**/<img>``; classes are the sub-folder names sorted (or
        ``metainfo['classes']`` when given), labels their index; ``metainfo['classes']`` is set.
      * ``flat``: ``<root>/<img>`` (and sub-folders when ``recursive``); label ``-1``.
      * file list (``ann_file`` given): one path relative to ``<root>`` per line, optionally followed by a space and
        an integer label (else ``-1``); blank lines and ``#`` comments are ignored; order is the file's.
      * ``auto`` (default): ``imagenet`` when ``<root>`` holds sub-folders but no image file, else ``flat``.

    ``<root>`` is ``data_root`` joined with ``data_prefix``. Scanned layouts are sorted by path (deterministic).

    Skipping: when the pipeline returns ``None`` (a corrupt / truncated / empty / non-image file, or one whose header
    declares more pixels than ``LoadImageRGB(max_pixels=...)`` allows: refused before decoding), in train mode
    another index is drawn (NumPy's seeded global RNG, known-bad files excluded); in test mode ``None`` is returned
    (no duplicated image; use ``collate_fn=dict(type='skip_none_collate')``). Each skip is warned once per file per
    process and counted in ``num_skipped`` (this process only); the paths travel to the main process in
    ``data_samples['skipped']`` for ``SkippedImagesHook``.

    Args:
        data_root: dataset root folder.
        data_prefix: sub-folder of ``data_root`` holding the images (``str`` or ``dict(img_path=...)``).
        ann_file: optional file list (relative to ``data_root`` unless absolute).
        pipeline: transforms (configs or callables); should start with ``LoadImageRGB`` and end with
            ``PackVAEInputs``.
        test_mode: evaluation mode (no re-sampling of skipped files).
        extensions: accepted file extensions (case-insensitive).
        max_images: keep only the first N images (after sorting), e.g. for quick evaluations.
        recursive: descend into sub-folders (of ``<root>`` for ``flat``, of each class folder for ``imagenet``).
        layout: ``auto``, ``imagenet`` or ``flat`` (ignored with ``ann_file``).
        metainfo: optional ``dict(classes=[...])`` fixing the class list / order.
        serialize_data, lazy_init, max_refetch: see ``mmengine.dataset.BaseDataset``.
    """

    METAINFO: dict = dict(classes=None)

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 ann_file: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 extensions: Union[str, Sequence[str]] = IMG_EXTENSIONS,
                 max_images: Optional[int] = None,
                 recursive: bool = True,
                 layout: str = 'auto',
                 metainfo: Optional[dict] = None,
                 serialize_data: bool = True,
                 lazy_init: bool = False,
                 max_refetch: int = 1000) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
        if max_images is not None and max_images <= 0:
            raise ValueError(f'max_images must be positive or None, got {max_images}')
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.extensions = _norm_exts(extensions)
        self.max_images = max_images
        self.recursive = recursive
        self.layout = layout
        self.num_skipped = 0
        self._bad_indices: set[int] = set()
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            serialize_data=serialize_data,
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch)

    # ------------------------------------------------------------------ loading
    @property
    def img_root(self) -> str:
        """The folder the image paths are relative to (``data_root`` joined with ``data_prefix``)."""
        return self.data_prefix.get('img_path', '') or self.data_root or '.'

    def _where(self) -> str:
        return (f"'{self.img_root}' (data_root={self.data_root!r}, data_prefix={self.data_prefix!r}, "
                f'extensions={self.extensions}, recursive={self.recursive}, layout={self.layout!r})')

    def load_data_list(self) -> list[dict]:
        """Build ``[dict(img_path, gt_label), ...]`` for the layout; sets ``metainfo['classes']``."""
        root = self.img_root
        if self.ann_file:
            data_list = self._load_file_list(root)
        else:
            if not osp.isdir(root):
                raise FileNotFoundError(f'ImageFolderDataset: image folder not found: {self._where()}')
            data_list = self._scan(root)
        if not data_list:
            src = f'file list {self.ann_file!r} for ' if self.ann_file else ''
            raise FileNotFoundError(f'ImageFolderDataset: no images found in {src}{self._where()}')
        if self.max_images is not None:
            data_list = data_list[:self.max_images]
        return data_list

    def _scan(self, root: str) -> list[dict]:
        with os.scandir(root) as it:
            entries = [e for e in it if not e.name.startswith('.')]
        subdirs = sorted(e.name for e in entries if e.is_dir(follow_symlinks=True))
        has_files = any(e.is_file() and e.name.lower().endswith(self.extensions) for e in entries)
        layout = self.layout
        if layout == 'auto':
            layout = 'imagenet' if subdirs and not has_files else 'flat'
        if layout == 'flat':
            return [dict(img_path=osp.join(root, p), gt_label=-1)
                    for p in scan_images(root, self.extensions, self.recursive)]
        classes = self._metainfo.get('classes')
        if classes:
            classes = list(classes)
            missing = [c for c in classes if c not in subdirs]
            if missing:
                raise FileNotFoundError(f'ImageFolderDataset: class folders {missing} not found in {self._where()}')
        else:
            classes = subdirs
        self._metainfo['classes'] = tuple(classes)
        data_list = []
        for label, cls in enumerate(classes):
            for p in scan_images(osp.join(root, cls), self.extensions, self.recursive):
                data_list.append(dict(img_path=osp.join(root, cls, p), gt_label=label))
        return data_list

    def _load_file_list(self, root: str) -> list[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ImageFolderDataset: file list not found: {self.ann_file!r} '
                                    f'(data_root={self.data_root!r})')
        data_list = []
        with open(self.ann_file, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                label = -1
                parts = line.rsplit(maxsplit=1)
                if len(parts) == 2:
                    try:
                        label = int(parts[1])
                        line = parts[0]
                    except ValueError:
                        pass  # a path containing a space, no label
                data_list.append(dict(img_path=osp.join(root, line), gt_label=label))
        return data_list

    # ------------------------------------------------------------------ fetching
    def _record_skip(self, idx: int, path: str, reason: Optional[str]) -> None:
        self._bad_indices.add(idx)
        self.num_skipped += 1
        push_skipped(path)
        if path not in _WARNED:
            _WARNED.add(path)
            MMLogger.get_current_instance().warning(
                f'Skipping unreadable image {path!r} ({reason or "pipeline returned None"}); '
                f'{"another image is used in its place" if not self.test_mode else "it is left out"}.')

    def _fetch(self, idx: int) -> Optional[dict]:
        info = self.get_data_info(idx)
        if idx in self._bad_indices:
            out = None  # known bad in this process: do not decode again
        else:
            out = self.pipeline(info)
        if out is None:
            self._record_skip(idx, info['img_path'], info.get('decode_error'))
        return out

    def _rand_good_index(self) -> int:
        n = len(self)
        if len(self._bad_indices) >= n:
            raise RuntimeError(f'ImageFolderDataset: all {n} images in {self._where()} failed to load; '
                               'check the files and the pipeline.')
        for _ in range(100):
            idx = int(np.random.randint(0, n))
            if idx not in self._bad_indices:
                return idx
        good = [i for i in range(n) if i not in self._bad_indices]
        return good[int(np.random.randint(0, len(good)))]

    @staticmethod
    def _attach_skipped(data: Any) -> Any:
        skipped = pop_skipped()
        if not skipped:
            return data
        ds = data.get('data_samples') if isinstance(data, dict) else None
        if isinstance(ds, dict):
            ds['skipped'] = list(ds.get('skipped') or []) + skipped
        else:
            for p in skipped:  # nowhere to carry them in this sample: keep for the next one / the collate
                push_skipped(p)
        return data

    def __getitem__(self, idx: int) -> Any:
        """Return the processed sample ``idx``.

        Train mode: a skipped file is replaced by a random good one and the skipped paths are attached to the
        returned sample's ``data_samples['skipped']``. Test mode: ``None`` for a skipped file (``skip_none_collate``
        drops it and attaches the paths to the batch's first sample, or to an empty batch).
        """
        if not self._fully_initialized:
            MMLogger.get_current_instance().info('Please call `full_init()` method manually to accelerate the speed.')
            self.full_init()
        if self.test_mode:
            data = self._fetch(idx)
            return None if data is None else self._attach_skipped(data)
        for _ in range(self.max_refetch + 1):
            data = self._fetch(idx)
            if data is not None:
                return self._attach_skipped(data)
            idx = self._rand_good_index()
        raise RuntimeError(f'ImageFolderDataset: no loadable image after {self.max_refetch} re-draws in '
                           f'{self._where()}.')
