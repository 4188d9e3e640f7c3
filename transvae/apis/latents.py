"""Latent extraction: posterior means of a dataset into safetensors shards, their statistics and provenance.

The library behind ``tools/extract_latents.py`` (:mod:`transvae.apis.extract_latents_cli`); the shard format (names,
keys, validation, reading) has one owner, :mod:`transvae.utils.latent_shards`, which the DiT project reads through.

* :func:`build_dataset`: the dataset of ``cfg.<split>_dataloader`` with the test pipeline (resize short side +
  center crop), also for ``split='train'`` (DiT latents are deterministic centre crops, each image once; ``flip``
  stores the h-flip); ``resolution`` changes every crop / resize size of that pipeline.
* :func:`extract`: ``out/latents_{i:05d}.safetensors`` holds dataset items ``[i * N, (i + 1) * N)``: ``latents``
  ``(n, d, h, w)`` float32 posterior means, ``latents_flip`` (of the horizontally flipped image), ``labels`` ``(n,)``
  int64 (-1 when unlabelled), ``indices`` ``(n,)`` int64 dataset indices (unreadable images are skipped, so
  n <= N); metadata ``json``. Each shard is written to a temporary file and renamed (atomic): an interrupted run is
  resumed by running it again (complete shards are skipped). ``rank`` / ``world_size`` split the shards
  ``i % W == K`` between processes.
* :func:`check_provenance`: ``out/latents_provenance.json`` (and every shard's metadata) records what wrote the
  folder (:data:`PROVENANCE_KEYS`); a resume with any of them changed is refused, naming what differs.
* Non-finite values are refused: a model with a NaN / Inf weight (:func:`check_finite_weights`) before any shard,
  a batch of non-finite latents before it is written (naming the first bad dataset index).
* :func:`compute_stats`: ``out/latents_stats.safetensors``, per-channel ``mean`` and ``std`` ``(1, d, 1, 1)``, once
  all shards exist, by the one statistics function (:mod:`transvae.utils.latent_statistics`; default convention
  ``'transvae'``: every latent and its flip, population std; ``'lightningdit'``: the official one). The exported
  package carries the same values (``tools/model_converters/export_pretrained.py ... --latent-dir DIR``).
* :func:`check_latents_vae`: the folder's recorded VAE (checkpoint sha256, :func:`vae_fingerprint` of the model
  config) against the VAE a consumer (the DiT's decoder, the package export) is given.
* :func:`own_out_dir`: one extraction per rank owns ``out`` (``out/extract_latents.rank{K}.lock``).
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import os.path as osp
from collections.abc import Callable
from typing import Any, Optional

import torch
from mmengine.config import Config
from torch.utils.data import DataLoader, Dataset

from transvae.utils.errors import UserInputError
from transvae.utils.files import sha256_file
from transvae.utils.latent_shards import (PROVENANCE_FILE, LatentProvenanceError, atomic_save, check_finite_latents,
                                          list_shards, provenance_differences, read_provenance, read_shard,
                                          shard_metadata, shard_path, write_stats)
from transvae.utils.latent_statistics import DEFAULT_CONVENTION, compute_latent_stats

#: what a resume must share with the run that wrote ``--out`` (recorded in ``latents_provenance.json`` and in every
#: shard's metadata): the weights, the model / dataset config, the data split, crop size, flip and shard layout
PROVENANCE_KEYS = ('checkpoint_sha256', 'config_sha256', 'split', 'resolution', 'flip', 'shard_size', 'num_items',
                   'latent_channels')


class NonFiniteWeightsError(UserInputError, ValueError):
    """A checkpoint with a NaN / Inf weight: its latents would be non-finite."""


def check_finite_weights(model: torch.nn.Module, source: str) -> None:
    """Refuse a model with a NaN / Inf parameter or buffer (it would write non-finite latents and statistics),
    naming the first such tensor and ``source`` (the checkpoint)."""
    bad = [name for name, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteWeightsError(f'checkpoint {source}: {len(bad)} weight tensor(s) are not finite (NaN / Inf), '
                                    f'first {bad[0]!r}: its latents would be NaN. Use a checkpoint of a run that did '
                                    'not diverge')


def file_sha256(path: str) -> str:
    """sha256 of a local file (``path`` itself for ``none`` or a remote address)."""
    if not path or path.lower() == 'none' or '://' in path or not osp.isfile(path):
        return str(path)
    return sha256_file(path)


def config_fingerprint(cfg: Config, split: str) -> str:
    """sha256 of the resolved model config and the ``<split>`` / test dataset configs (preset, ``--data-root`` and
    ``--cfg-options`` applied): two runs with equal fingerprints build the same model on the same data."""

    def plain(x):
        return x.to_dict() if hasattr(x, 'to_dict') else x
    parts = dict(model=plain(cfg.model), dataset=plain(cfg[f'{split}_dataloader']['dataset']),
                 test_pipeline=plain(cfg['test_dataloader']['dataset'].get('pipeline')) if split == 'train' and
                 'test_dataloader' in cfg else None)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def vae_fingerprint(cfg: Config) -> str:
    """sha256 of the resolved ``model`` config alone (no ``init_cfg``, no dataset): recorded as ``vae_sha256`` in a
    latent folder's provenance and compared with the DiT's VAE config (:func:`check_latents_vae`)."""
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    model.pop('init_cfg', None)
    return hashlib.sha256(json.dumps(model, sort_keys=True, default=repr).encode()).hexdigest()


def checkpoint_id(checkpoint: Optional[str]) -> str:
    """What a latent folder records of its VAE's weights (``checkpoint_sha256``): the checkpoint file's sha256, or
    ``'none'`` for a model that loads its own weights."""
    from transvae.evaluation.protocol import none_ckpt
    ckpt = none_ckpt(checkpoint)
    return 'none' if ckpt is None else file_sha256(ckpt)


def check_latents_vae(latent_dir: str, cfg: Config, checkpoint: Optional[str], *, config_name: str,
                      provenance: Optional[dict]) -> bool:
    """Refuse latents written by another VAE than ``cfg``'s model with ``checkpoint`` weights.

    Compares the folder's recorded ``checkpoint_sha256`` with :func:`checkpoint_id` of ``checkpoint`` and its
    ``vae_sha256`` with :func:`vae_fingerprint` of ``cfg`` (each when recorded: folders of older extractions lack
    ``vae_sha256``).

    Args:
        latent_dir: the latent folder (named in the error).
        cfg: the resolved config of the VAE the caller uses (e.g. the DiT's ``vae_config``).
        checkpoint: its checkpoint (``None`` / ``'none'``: the model loads its own weights).
        config_name: how the error names ``cfg`` (its file).
        provenance: the folder's record (:meth:`transvae.utils.latent_folders.LatentFolderLayout.provenance`);
            ``None`` (an official LightningDiT folder) cannot be checked.

    Returns:
        ``True`` when checked, ``False`` when the folder records no VAE (no ``checkpoint_sha256`` / ``vae_sha256``).

    Raises:
        LatentProvenanceError: naming both VAEs.
    """
    if not provenance or not {'checkpoint_sha256', 'vae_sha256'} & set(provenance):
        return False
    diffs = []
    rec_ckpt = provenance.get('checkpoint_sha256')
    if rec_ckpt is not None:
        mine = checkpoint_id(checkpoint)
        if ('none' if str(rec_ckpt).lower() in ('none', '') else str(rec_ckpt)) != mine:
            diffs.append(f'its VAE weights are {provenance.get("checkpoint")!r} (sha256 {rec_ckpt}), the given '
                         f'checkpoint is {checkpoint!r} (sha256 {mine}, for {config_name})')
    rec_vae = provenance.get('vae_sha256')
    if rec_vae is not None and str(rec_vae) != vae_fingerprint(cfg):
        diffs.append(f'its VAE config is {provenance.get("config")!r} (model sha256 {str(rec_vae)[:16]}...), the '
                     f'given config {config_name!r} builds another model (sha256 {vae_fingerprint(cfg)[:16]}...)')
    if diffs:
        raise LatentProvenanceError(f'the latents in {latent_dir} come from another VAE: ' + '; '.join(diffs) +
                                    '. Point the VAE (config / checkpoint) at the one that wrote the latents, or '
                                    'extract latents with this VAE (tools/extract_latents.py)')
    return True


def check_provenance(out: str, meta: dict) -> None:
    """Refuse to add shards to ``out`` when it was written with another checkpoint, config, split, resolution,
    flip or shard layout (:data:`PROVENANCE_KEYS`, read from ``latents_provenance.json`` and every existing shard);
    then record this run's provenance (first run only)."""
    keys = tuple(k for k in PROVENANCE_KEYS if k in meta)
    current = {k: meta[k] for k in keys}
    sources = []
    rec = read_provenance(out)
    if rec is not None:
        sources.append((osp.join(out, PROVENANCE_FILE), rec))
    sources += [(p, shard_metadata(p)) for p in list_shards(out)]
    for where, recorded in sources:
        diffs = provenance_differences(recorded, current, keys)
        if diffs:
            raise LatentProvenanceError(f'{out} was written by another extraction ({where}): ' + '; '.join(diffs) +
                               '. Resuming would mix latents of both: use another --out directory (or the '
                               'original settings)')
    if rec is None:
        path = osp.join(out, PROVENANCE_FILE)
        tmp = f'{path}.tmp.{os.getpid()}'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(dict(meta), f, indent=1, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def set_pipeline_size(pipeline: list, size: int) -> int:
    """Set the size of every transform whose class declares ``resolution_keys`` (datasets/transforms/resolution.py)."""
    from transvae.datasets.transforms.resolution import set_pipeline_resolution
    n = set_pipeline_resolution(pipeline, size)
    if not n:
        raise ValueError('--resolution: no transform of the dataset pipeline declares `resolution_keys` (a crop / '
                         'resize transform with a size)')
    return n


def build_dataset(cfg: Config, split: str = 'test', resolution: Optional[int] = None) -> Dataset:
    """The dataset of ``cfg.<split>_dataloader``, built through the registry."""
    from transvae.registry import DATASETS
    ds_cfg = cfg[f'{split}_dataloader']['dataset'].to_dict() if hasattr(cfg[f'{split}_dataloader']['dataset'],
                                                                        'to_dict') else dict(
        cfg[f'{split}_dataloader']['dataset'])
    if split == 'train':
        # DiT latents (LightningDiT extract_features.py): a deterministic centre crop of every training image, once,
        # never the training pipeline's random crop / flip (the h-flip is stored separately with --flip)
        ds_cfg['pipeline'] = copy.deepcopy(cfg['test_dataloader']['dataset']['pipeline'])
        if 'repeat' in ds_cfg:
            ds_cfg['repeat'] = 1  # each image once
    if resolution:
        set_pipeline_size(ds_cfg.get('pipeline', []), resolution)
    return DATASETS.build(ds_cfg)


def collate_fn_of(cfg: Config, split: str) -> Callable:
    from transvae.registry import FUNCTIONS
    spec = cfg[f'{split}_dataloader'].get('collate_fn', None) or dict(type='skip_none_collate')
    spec = dict(spec)
    fn = FUNCTIONS.get(spec.pop('type'))
    if spec:
        fn = functools.partial(fn, **spec)
    return fn


class _Indexed(Dataset):
    """Items ``indices`` of ``dataset`` with their dataset index in ``data_samples['index']`` (``None`` kept)."""

    def __init__(self, dataset: Dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        item = self.dataset[self.indices[i]]
        if item is not None:
            item['data_samples'] = dict(item['data_samples'], index=self.indices[i])
        return item


# ----------------------------------------------------------------------------------------------------------- shards
@torch.no_grad()
def encode_batch(model: torch.nn.Module, batch: dict, flip: bool, device: str) -> dict[str, torch.Tensor]:
    data = model.data_preprocessor(batch, False)
    x = data['inputs'].to(device)
    out = {'latents': model.encode(x).mode().float().cpu()}
    if flip:
        out['latents_flip'] = model.encode(x.flip(-1)).mode().float().cpu()
    samples = data['data_samples']
    if isinstance(samples, dict):  # pseudo_collate transposes per-sample dicts into a dict of lists
        samples = [dict(zip(samples, vals)) for vals in zip(*samples.values())]
    out['labels'] = torch.tensor([int(s.get('label', -1)) for s in samples], dtype=torch.int64)
    out['indices'] = torch.tensor([int(s['index']) for s in samples], dtype=torch.int64)
    return out


def extract(model: torch.nn.Module, dataset: Dataset, out: str, shard_size: int = 10000, flip: bool = False,
            batch_size: int = 32, num_workers: int = 0, collate_fn=None, device: str = 'cpu',
            rank: int = 0, world_size: int = 1, max_items: Optional[int] = None,
            meta: Optional[dict] = None, progress: bool = True) -> list[str]:
    """Write the shards of ``dataset`` (skipping complete ones); returns the paths of this rank's shards."""
    from tqdm import tqdm
    if collate_fn is None:
        from transvae.datasets.collate import skip_none_collate as collate_fn
    os.makedirs(out, exist_ok=True)
    n = len(dataset) if max_items is None else min(len(dataset), max_items)
    num_shards = (n + shard_size - 1) // shard_size
    meta = dict(meta or {}, shard_size=shard_size, flip=flip, num_items=n, num_shards=num_shards)
    written = []
    check_provenance(out, meta)  # every existing shard came from this checkpoint / config / layout
    mine = [i for i in range(num_shards) if i % world_size == rank]
    for i in tqdm(mine, desc='shards', disable=not progress):
        path = shard_path(out, i)
        written.append(path)
        if osp.isfile(path):
            read_shard(path, keys=('labels', 'indices'))  # complete (written atomically) and well-formed
            continue
        indices = list(range(i * shard_size, min(n, (i + 1) * shard_size)))
        loader = DataLoader(_Indexed(dataset, indices), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, collate_fn=collate_fn)
        parts: dict[str, list[torch.Tensor]] = {}
        for batch in tqdm(loader, desc=f'shard {i}', leave=False, disable=not progress):
            if not len(batch['inputs']):
                continue  # every image of the batch was unreadable
            for k, v in encode_batch(model, batch, flip, device).items():
                parts.setdefault(k, []).append(v)
        if not parts:
            raise RuntimeError(f'shard {i}: no readable image')
        tensors = {k: torch.cat(v) for k, v in parts.items()}
        check_finite_latents(tensors, f'shard {path}')  # never write NaN latents (naming the first bad item)
        atomic_save(tensors, path, metadata={'json': json.dumps(dict(meta, shard=i, start=indices[0],
                                                                      stop=indices[-1] + 1))})
    return written


def compute_stats(out: str, convention: str = DEFAULT_CONVENTION, max_items: Optional[int] = None,
                  seed: int = 0) -> Optional[dict]:
    """Per-channel statistics of every shard of ``out`` (:func:`transvae.utils.latent_statistics.
    compute_latent_stats` in ``convention``), written to ``latents_stats.safetensors`` (the convention in its
    metadata); ``None`` while shards are missing.

    Returns:
        ``{'mean', 'std'}`` ``(1, d, 1, 1)`` float32 and how they were computed (``count``, ``convention``, ...).
    """
    shards = list_shards(out)
    if not shards:
        return None
    expected = shard_metadata(shards[0]).get('num_shards', len(shards))
    if len(shards) < expected:
        return None
    stats = compute_latent_stats(shards, convention, max_items=max_items, seed=seed)
    write_stats(out, stats)
    return stats


def own_out_dir(out: str, rank: int = 0) -> Any:
    """Own ``out`` for this rank before anything is written there (``out/extract_latents.rank{K}.lock``,
    :mod:`transvae.engine.work_dir_lock`): a second extraction of the same rank into it exits with ``error:`` naming
    the first (pid, host, start, command); a lock left by a killed run is taken over (said on stdout). The ranks of
    one ``--world-size W`` job take different locks, so they share the directory. Returns the held lock."""
    from transvae.engine.work_dir_lock import WorkDirLock
    lock = WorkDirLock(out, name=f'extract_latents.rank{rank}.lock',
                       hint='Wait for it to finish or stop it, or give this run another --out directory')
    lock.acquire()  # WorkDirBusyError (a UserInputError: one `error:` line under config_errors)
    if lock.took_over is not None:
        print(f'warning: {lock.takeover_message()}', flush=True)
    return lock




def weights_source(cfg: Config, checkpoint: Optional[str], random_weights: bool, name: str) -> str:
    """Which weights the latents come from (stored in every shard's metadata ``weights``): a checkpoint ``none``
    with a model that loads no weights of its own is refused unless ``random_weights``
    (:func:`transvae.evaluation.protocol.check_weights`, a ``WeightsSourceError``)."""
    from transvae.evaluation.protocol import check_weights
    info = check_weights(cfg.get('model', None), checkpoint, random_weights, name)
    return f"{info['source']}: {info['detail']}"


def extract_latents(cfg: Config, checkpoint: Optional[str], out: str, *, config_path: str, split: str = 'test',
                    flip: bool = False, shard_size: int = 10000, resolution: Optional[int] = None,
                    batch_size: int = 32, num_workers: int = 0, max_items: Optional[int] = None,
                    device: str = 'cpu', rank: int = 0, world_size: int = 1, random_weights: bool = False,
                    progress: bool = True, stats_convention: str = DEFAULT_CONVENTION) -> Optional[dict]:
    """Extract the posterior means of ``cfg``'s ``split`` dataset into ``out`` and, once every shard exists, their
    per-channel statistics.

    Args:
        cfg: the resolved config (:func:`transvae.apis.entry.load_config`).
        checkpoint: the VAE's checkpoint, or ``None`` / ``'none'`` (the model's own weights; random ones only with
            ``random_weights``).
        out: the shard folder (created; resumed when it holds shards of the same provenance).
        config_path: the config file (recorded in the metadata, named in errors).
        split: which ``<split>_dataloader.dataset`` (always with the test pipeline).
        flip: also store the latents of the h-flipped images.
        shard_size: dataset items per shard.
        resolution: crop / resize size of the dataset pipeline (``None``: the config's).
        batch_size / num_workers: of the extraction's data loader.
        max_items: only the first ``max_items`` dataset items.
        device: where the model runs.
        rank / world_size: this process writes the shards ``i % world_size == rank``.
        random_weights: allow a model without a checkpoint and without weights of its own.
        progress: show progress bars.
        stats_convention: how the statistics are computed (:data:`transvae.utils.latent_statistics.CONVENTIONS`).

    Returns:
        ``{'mean', 'std'}`` ``(1, d, 1, 1)`` (and how they were computed, :func:`compute_stats`), or ``None`` while
        shards of other ranks are missing.
    """
    from transvae.apis.entry import build_model
    weights = weights_source(cfg, checkpoint, random_weights, config_path)  # recorded in every shard's metadata
    model = build_model(cfg, checkpoint, device, allow_partial=True)
    check_finite_weights(model, checkpoint or 'none')
    dataset = build_dataset(cfg, split, resolution)
    meta = dict(config=osp.abspath(config_path), checkpoint=checkpoint, split=split, weights=weights,
                resolution=resolution, latent_channels=int(getattr(model, 'latent_channels', -1)),
                checkpoint_sha256=file_sha256(checkpoint), config_sha256=config_fingerprint(cfg, split),
                vae_sha256=vae_fingerprint(cfg))
    extract(model, dataset, out, shard_size=shard_size, flip=flip, batch_size=batch_size, num_workers=num_workers,
            collate_fn=collate_fn_of(cfg, split), device=device, rank=rank, world_size=world_size,
            max_items=max_items, meta=meta, progress=progress)
    return compute_stats(out, stats_convention)
