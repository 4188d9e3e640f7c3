"""The two latent folder layouts a DiT reads, recognised by their files, and the writer of the official one.

* ``transvae`` (:mod:`transvae.utils.latent_shards`, written by ``tools/extract_latents.py``):
  ``latents_{i:05d}.safetensors`` shards in item order, ``latents_stats.safetensors``, ``latents_provenance.json``.
* ``lightningdit`` (the official LightningDiT ``extract_features.py``): per-rank shards
  ``latents_rank{r:02d}_shard{s:03d}.safetensors`` holding ``latents`` ``(n, d, h, w)``, ``latents_flip`` (same
  shape) and ``labels`` ``(n,)`` int64, with string metadata ``total_size`` / ``dtype`` / ``device``; and
  ``latents_stats.pt``, a ``torch.save`` of ``{'mean', 'std'}`` ``(1, d, 1, 1)``. The official reader
  (``datasets/img_latent_dataset.py``) takes **every** ``*.safetensors`` of the folder in sorted file-name order, so
  item ``k`` is the ``k``-th row of that order; :meth:`LightningDiTLayout.list_shards` keeps that order and refuses
  a stray ``.safetensors`` file (the official reader would read it as a shard). ``latents_stats.pt`` is loaded with
  ``torch.load(weights_only=True)`` (no code runs).

:func:`layout_of` names the layout of a folder by its shard files (a folder with shards of both is refused);
:func:`write_official_folder` writes a ``transvae`` folder in the official layout (the converter behind
``tools/model_converters/latents_to_official.py``): rank 0's shards in item order, so official item ``k`` is our item
``k``, statistics copied from the source or recomputed in a named convention, our provenance kept in
``latents_provenance.json`` and in each shard's ``json`` metadata (the official reader ignores both).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import re
from typing import ClassVar, Optional

import torch

from transvae.utils.errors import InputNotFoundError, UserInputError
from transvae.utils.latent_shards import (PROVENANCE_FILE, SHARD_PATTERN, STATS_FILE, LatentFileError, atomic_save,
                                          check_shard, check_stats, list_shards, load_stats, read_provenance,
                                          read_shard, shard_metadata, stats_metadata)

__all__ = ['LatentFolderLayout', 'TransvaeLayout', 'LightningDiTLayout', 'LAYOUTS', 'layout_of',
           'OFFICIAL_SHARD_PATTERN', 'OFFICIAL_STATS_FILE', 'official_shard_path', 'list_official_shards',
           'load_official_stats', 'write_official_folder']

#: an official shard: ``latents_rank{rank:02d}_shard{shard:03d}.safetensors``
OFFICIAL_SHARD_PATTERN = re.compile(r'^latents_rank(\d{2,})_shard(\d{3,})\.safetensors$')
#: the official statistics file (``torch.save`` of ``{'mean', 'std'}``)
OFFICIAL_STATS_FILE = 'latents_stats.pt'


def official_shard_path(out: str, rank: int, shard: int) -> str:
    """Path of the official shard ``shard`` of ``rank`` in ``out`` (``extract_features.py``'s name)."""
    return osp.join(out, f'latents_rank{rank:02d}_shard{shard:03d}.safetensors')


def list_official_shards(folder: str) -> list[str]:
    """The official shards of ``folder`` in the official reader's order (sorted file names).

    Raises:
        InputNotFoundError: no folder, or no official shard in it.
        LatentFileError: another ``*.safetensors`` file beside them (the official reader would take it for a
            shard), or a rank whose shard numbers have a gap (a shard missing).
    """
    if not osp.isdir(folder):
        raise InputNotFoundError(f'latent folder {folder} does not exist')
    names = sorted(f for f in os.listdir(folder) if f.endswith('.safetensors'))
    stray = [f for f in names if not OFFICIAL_SHARD_PATTERN.match(f)]
    shards = [f for f in names if OFFICIAL_SHARD_PATTERN.match(f)]
    if not shards:
        raise InputNotFoundError(f'no latents_rankRR_shardSSS.safetensors shard in {folder}')
    if stray:
        raise LatentFileError(f'{folder}: {stray[0]} is not an official shard, but the official LightningDiT reader '
                              'takes every *.safetensors of the folder as one: move it out of the folder')
    by_rank: dict[int, list[int]] = {}
    for f in shards:
        m = OFFICIAL_SHARD_PATTERN.match(f)
        by_rank.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    for rank, nums in sorted(by_rank.items()):
        missing = sorted(set(range(max(nums) + 1)) - set(nums))
        if missing:
            raise InputNotFoundError(f'{folder}: rank {rank} has shards up to {max(nums)} but not '
                                     f'{osp.basename(official_shard_path(folder, rank, missing[0]))}')
    return [osp.join(folder, f) for f in shards]


def load_official_stats(folder: str, num_channels: Optional[int] = None,
                        stats_file: str = OFFICIAL_STATS_FILE) -> dict[str, torch.Tensor]:
    """``{'mean', 'std'}`` ``(1, d, 1, 1)`` float32 of ``folder/latents_stats.pt`` (``stats_file`` may be absolute),
    loaded with ``torch.load(weights_only=True)`` and validated (:func:`~transvae.utils.latent_shards.check_stats`)."""
    path = folder if osp.isfile(folder) else (stats_file if osp.isabs(stats_file) else osp.join(folder, stats_file))
    if not osp.isfile(path):
        raise InputNotFoundError(f'latent statistics {path} not found: the official extract_features.py writes them '
                                 'at its end (its ImgLatentDataset(latent_norm=True)); or convert our folder with '
                                 'tools/model_converters/latents_to_official.py')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError / RuntimeError / EOFError: name the file
        raise LatentFileError(f'latent statistics {path} cannot be loaded safely (torch.load weights_only=True: '
                              f'{str(e).splitlines()[0][:160]})') from None
    if not isinstance(obj, dict) or not all(torch.is_tensor(obj.get(k)) for k in ('mean', 'std')):
        raise LatentFileError(f'latent statistics {path}: expected a dict with tensors "mean" and "std", got '
                              f'{type(obj).__name__}' + (f' with keys {sorted(map(str, obj))}'
                                                        if isinstance(obj, dict) else ''))
    mean, std = check_stats({'mean': obj['mean'], 'std': obj['std']}, path, num_channels)
    return {'mean': mean, 'std': std}


# --------------------------------------------------------------------------------------------------------- layouts
class LatentFolderLayout:
    """A latent folder layout: how its shards are found (in item order), its statistics and provenance read.

    Subclasses are listed in :data:`LAYOUTS`; :func:`layout_of` picks the one whose shards a folder holds.
    """

    name: ClassVar[str] = ''
    stats_file: ClassVar[str] = ''
    shard_pattern: ClassVar[re.Pattern] = SHARD_PATTERN

    @classmethod
    def holds(cls, folder: str) -> bool:
        """Whether ``folder`` has a shard file of this layout."""
        return osp.isdir(folder) and any(cls.shard_pattern.match(f) for f in os.listdir(folder))

    @classmethod
    def list_shards(cls, folder: str) -> list[str]:
        """Every shard, in item order; an incomplete folder is an error."""
        raise NotImplementedError

    @classmethod
    def load_stats(cls, folder: str, num_channels: Optional[int] = None,
                   stats_file: Optional[str] = None) -> dict[str, torch.Tensor]:
        """``{'mean', 'std'}`` ``(1, d, 1, 1)`` float32 (``stats_file``: another file name or an absolute path)."""
        raise NotImplementedError

    @classmethod
    def stats_info(cls, folder: str) -> dict:
        """How the folder's statistics were computed, where recorded (``convention``, ``count``, ...); ``{}``
        when not."""
        raise NotImplementedError

    @classmethod
    def provenance(cls, folder: str) -> Optional[dict]:
        """What wrote the folder (``latents_provenance.json``, else the first shard's ``json`` metadata);
        ``None`` when nothing is recorded."""
        rec = read_provenance(folder)
        if rec is None:
            shards = cls.list_shards(folder)
            rec = shard_metadata(shards[0]) or None
        return rec


class TransvaeLayout(LatentFolderLayout):
    """``tools/extract_latents.py``'s folder (:mod:`transvae.utils.latent_shards`)."""

    name = 'transvae'
    stats_file = STATS_FILE
    shard_pattern = SHARD_PATTERN

    @classmethod
    def list_shards(cls, folder: str) -> list[str]:
        return list_shards(folder, complete=True)

    @classmethod
    def load_stats(cls, folder: str, num_channels: Optional[int] = None,
                   stats_file: Optional[str] = None) -> dict[str, torch.Tensor]:
        return load_stats(folder, num_channels, stats_file or STATS_FILE)

    @classmethod
    def stats_info(cls, folder: str) -> dict:
        return stats_metadata(folder)


class LightningDiTLayout(LatentFolderLayout):
    """The official LightningDiT ``extract_features.py`` folder (module docstring)."""

    name = 'lightningdit'
    stats_file = OFFICIAL_STATS_FILE
    shard_pattern = OFFICIAL_SHARD_PATTERN

    @classmethod
    def list_shards(cls, folder: str) -> list[str]:
        return list_official_shards(folder)

    @classmethod
    def load_stats(cls, folder: str, num_channels: Optional[int] = None,
                   stats_file: Optional[str] = None) -> dict[str, torch.Tensor]:
        return load_official_stats(folder, num_channels, stats_file or OFFICIAL_STATS_FILE)

    @classmethod
    def stats_info(cls, folder: str) -> dict:
        """The record :func:`write_official_folder` keeps in the provenance (the official code records none)."""
        return dict((cls.provenance(folder) or {}).get('stats') or {})


#: every layout :func:`layout_of` recognises
LAYOUTS: tuple[type[LatentFolderLayout], ...] = (TransvaeLayout, LightningDiTLayout)


def layout_of(folder: str) -> type[LatentFolderLayout]:
    """The layout whose shards ``folder`` holds.

    Raises:
        InputNotFoundError: no folder, or no shard of any layout in it.
        LatentFileError: shards of two layouts in one folder.
    """
    if not osp.isdir(folder):
        raise InputNotFoundError(f'latent folder {folder} does not exist (write it with tools/extract_latents.py)')
    found = [lay for lay in LAYOUTS if lay.holds(folder)]
    if not found:
        raise InputNotFoundError(f'no latents_XXXXX.safetensors shard (tools/extract_latents.py) nor '
                                 f'latents_rankRR_shardSSS.safetensors shard (the official LightningDiT '
                                 f'extract_features.py) in {folder}')
    if len(found) > 1:
        raise LatentFileError(f'{folder} holds shards of two layouts ({", ".join(lay.name for lay in found)}): '
                              'keep one extraction per folder')
    return found[0]


# ---------------------------------------------------------------------------------------------------------- writer
def _atomic_torch_save(obj: dict, path: str) -> None:
    tmp = f'{path}.tmp.{os.getpid()}'
    torch.save(obj, tmp)
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_official_folder(src: str, out: str, shard_size: int = 10000, stats: Optional[dict] = None,
                          progress: bool = True) -> dict:
    """Write the ``transvae`` folder ``src`` in the official layout into ``out`` (module docstring).

    Args:
        src: a complete folder of ``tools/extract_latents.py --flip`` (the official reader draws ``latents_flip``
            for half of its items), every item labelled (``labels >= 0``).
        out: the official folder (created); refused when it already holds a ``.safetensors`` file or
            ``latents_stats.pt`` (nothing is overwritten).
        shard_size: items per official shard (``extract_features.py``: ``10000 // batch_size * batch_size``).
        stats: the ``{'mean', 'std'}`` to write to ``latents_stats.pt`` (and how they were computed, recorded in
            the provenance); ``None``: ``src``'s ``latents_stats.safetensors`` values, unchanged.

    Returns:
        ``{'shards': [paths], 'num_items', 'stats': {'mean', 'std'}, 'provenance': dict}``.
    """
    from tqdm import tqdm
    if shard_size < 1:
        raise UserInputError(f'shard_size must be >= 1, got {shard_size}')
    shards = list_shards(src, complete=True)
    infos = [check_shard(p, require_flip=True) for p in shards]  # the official reader needs latents_flip
    if stats is None:
        stats = dict(load_stats(src, num_channels=infos[0].latent_shape[0]), **stats_metadata(src),
                     copied_from=osp.abspath(osp.join(src, STATS_FILE)))
    mean, std = check_stats(stats, 'the statistics to write', infos[0].latent_shape[0])
    if osp.isdir(out):
        taken = sorted(f for f in os.listdir(out) if f.endswith('.safetensors') or f == OFFICIAL_STATS_FILE)
        if taken:
            raise UserInputError(f'{out} already holds {taken[0]}: write the official layout into a new folder '
                                 '(the official reader takes every .safetensors file of it)')
    os.makedirs(out, exist_ok=True)
    prov = dict(read_provenance(src) or shard_metadata(shards[0]))
    prov.update(layout='lightningdit', converted_from=osp.abspath(src),
                stats={k: v for k, v in stats.items() if k not in ('mean', 'std')})
    written: list[str] = []
    buf: dict[str, list[torch.Tensor]] = {}
    buffered = total = 0

    def flush() -> None:
        nonlocal buf, buffered
        t = {k: torch.cat(v) for k, v in buf.items()}
        path = official_shard_path(out, 0, len(written))
        meta = {'total_size': f'{t["latents"].shape[0]}', 'dtype': f'{t["latents"].dtype}',
                'device': f'{t["latents"].device}', 'json': json.dumps(dict(prov, shard=len(written)), default=str)}
        atomic_save(t, path, metadata=meta)
        written.append(path)
        buf, buffered = {}, 0

    for path in tqdm(shards, desc='shards', disable=not progress):
        t = read_shard(path, keys=('latents', 'latents_flip', 'labels'), latent_shape=infos[0].latent_shape,
                       expected_from=shards[0])
        if bool((t['labels'] < 0).any()):
            raise LatentFileError(f'{path}: unlabelled items (label -1); the official LightningDiT trainer needs a '
                                  'class for every item: extract from a dataset with class folders')
        j = 0
        n = t['latents'].shape[0]
        while j < n:
            take = min(n - j, shard_size - buffered)
            for k in ('latents', 'latents_flip', 'labels'):
                buf.setdefault(k, []).append(t[k][j:j + take])
            buffered, j, total = buffered + take, j + take, total + take
            if buffered == shard_size:
                flush()
    if buffered:
        flush()
    _atomic_torch_save({'mean': mean, 'std': std}, osp.join(out, OFFICIAL_STATS_FILE))
    tmp = osp.join(out, f'{PROVENANCE_FILE}.tmp.{os.getpid()}')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(prov, f, indent=1, sort_keys=True, default=str)
    os.replace(tmp, osp.join(out, PROVENANCE_FILE))
    return dict(shards=written, num_items=total, stats={'mean': mean, 'std': std}, provenance=prov)
