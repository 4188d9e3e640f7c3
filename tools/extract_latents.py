"""Extract posterior means of a dataset into safetensors shards (for LightningDiT training, latent stats, probes).

``python tools/extract_latents.py CONFIG CKPT --out DIR [--data-root R] [--split test|val|train] [--flip]
[--shard-size N] [--resolution R] [--batch-size B] [--preset cpu] [--rank K --world-size W]``

* The dataset is built through the registry from the config's ``<split>_dataloader.dataset`` (default: test); its
  test pipeline (resize short side + center crop) decides the crop, also for ``--split train`` (DiT latents are
  deterministic centre crops, each image once; ``--flip`` stores the h-flip); ``--resolution`` changes every crop /
  resize size of that pipeline.
* ``CKPT`` is an mmengine checkpoint (its ``state_dict``: EMA weights when trained with ``EMAHook``), or ``none``
  for a model that loads its own weights (``DiffusersAutoencoderKL``).
* Output ``DIR/latents_{i:05d}.safetensors`` holds dataset items ``[i * N, (i + 1) * N)``: ``latents`` ``(n, d, h, w)``
  float32 posterior means, ``latents_flip`` (``--flip``: of the horizontally flipped image), ``labels`` ``(n,)``
  int64 (-1 when unlabelled), ``indices`` ``(n,)`` int64 dataset indices (unreadable images are skipped, so n <= N);
  metadata ``json`` (config, checkpoint, shard size, flip, resolution). Each shard is written to a temporary file and
  renamed (atomic): an interrupted run is resumed by running the same command again (complete shards are skipped).
* ``DIR/latents_provenance.json`` (and every shard's metadata) records what wrote the folder: the checkpoint's sha256,
  a fingerprint of the resolved model and dataset config, split, resolution, flip and shard layout. A resume with any
  of them changed is refused, naming what differs (it would mix latents of two VAEs or datasets).
* Refused before any shard is written: a checkpoint with a NaN / Inf weight. A batch of non-finite latents is never
  written (the error names the first bad dataset index); every shard read back is validated
  (``transvae.utils.latent_shards``).
* ``DIR/latents_stats.safetensors``: per-channel ``mean`` and ``std`` ``(1, d, 1, 1)`` over every latent (flipped
  ones included), written once all shards exist (LightningDiT's ``latents_stats.pt`` convention). Store them with the
  model via ``VAE.set_latent_stats(mean, std)``.
* ``--rank K --world-size W`` processes shards ``i % W == K`` (run W processes, e.g. one per GPU); the last to finish
  writes the statistics.
* One extraction per rank owns ``DIR`` (``DIR/extract_latents.rank{K}.lock``, held while it runs): a second one of
  the same rank exits with ``error:`` naming the first; a lock left by a killed run is taken over.
"""
import argparse
import json
import os
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.config import Config, DictAction
from safetensors.torch import load_file, save_file  # noqa: F401 (load_file: re-exported for the tests)
from torch.utils.data import DataLoader, Dataset

from transvae.utils.cli_types import non_negative_int, positive_int
from transvae.utils.errors import UserInputError
from transvae.utils.files import sha256_file
# shard reading / validation is shared with the analysis tools and the DiT; re-exported here (load_latents, ...)
from transvae.utils.latent_shards import (PROVENANCE_FILE, STATS_FILE, LatentFileError,  # noqa: F401
                                          LatentProvenanceError,
                                          check_finite_latents, list_shards, load_latents, load_stats,
                                          provenance_differences, read_provenance, read_shard, shard_metadata,
                                          shard_path)

#: what a resume must share with the run that wrote ``--out`` (recorded in ``latents_provenance.json`` and in every
#: shard's metadata): the weights, the model / dataset config, the data split, crop size, flip and shard layout
PROVENANCE_KEYS = ('checkpoint_sha256', 'config_sha256', 'split', 'resolution', 'flip', 'shard_size', 'num_items',
                   'latent_channels')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Extract VAE posterior means into safetensors shards')
    p.add_argument('config')
    p.add_argument('checkpoint', help='mmengine checkpoint, or "none" (the model loads its own weights: '
                   'pretrained_path / Pretrained init_cfg; random weights only with --random-weights)')
    p.add_argument('--random-weights', action='store_true',
                   help='with checkpoint "none": allow a model that loads no weights of its own (random latents)')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--data-root', help='data_root of the dataset')
    p.add_argument('--split', default='test', choices=['train', 'val', 'test'],
                   help='which <split>_dataloader.dataset of the config to use (always with the test pipeline)')
    p.add_argument('--flip', action='store_true', help='also store latents of the h-flipped images')
    p.add_argument('--shard-size', type=positive_int, default=10000, help='dataset items per shard')
    p.add_argument('--resolution', type=positive_int, help='crop / resize size of the dataset pipeline')
    p.add_argument('--batch-size', type=positive_int, default=32)
    p.add_argument('--num-workers', type=non_negative_int, default=2)
    p.add_argument('--max-items', type=positive_int, help='only the first N dataset items')
    p.add_argument('--preset', help='merge cfg presets[PRESET] (e.g. cpu)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--rank', type=non_negative_int, default=0)
    p.add_argument('--world-size', type=positive_int, default=1)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    args = p.parse_args(argv)
    if args.rank >= args.world_size:
        p.error(f'--rank {args.rank} must be smaller than --world-size {args.world_size}')
    return args


# ----------------------------------------------------------------------------------------------------------- building
def load_config(config: str, preset: Optional[str] = None, data_root: Optional[str] = None,
                cfg_options: Optional[dict] = None) -> Config:
    from transvae.engine.utils import apply_preset, set_data_root
    cfg = Config.fromfile(config)
    if preset:
        apply_preset(cfg, preset)
    if data_root:
        set_data_root(cfg, data_root)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str], device: str = 'cpu') -> torch.nn.Module:
    """The config's model with the checkpoint's ``state_dict`` (``None`` / ``'none'``: as built), in eval mode."""
    from transvae.registry import MODELS
    from transvae.utils import register_all_modules
    register_all_modules()
    model = MODELS.build(cfg.model)
    if checkpoint and checkpoint.lower() != 'none':  # weights_only load + architecture check (checkpoint_io)
        from transvae.engine.checkpoint_io import load_weights
        load_weights(model, checkpoint, config_name=getattr(cfg, 'filename', None))
    check_finite_weights(model, checkpoint or 'none')
    return model.to(device).eval()


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
    import hashlib

    def plain(x):
        return x.to_dict() if hasattr(x, 'to_dict') else x
    parts = dict(model=plain(cfg.model), dataset=plain(cfg[f'{split}_dataloader']['dataset']),
                 test_pipeline=plain(cfg['test_dataloader']['dataset'].get('pipeline')) if split == 'train' and
                 'test_dataloader' in cfg else None)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


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


def _set_pipeline_size(pipeline: list, size: int) -> int:
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
        import copy
        ds_cfg['pipeline'] = copy.deepcopy(cfg['test_dataloader']['dataset']['pipeline'])
        if 'repeat' in ds_cfg:
            ds_cfg['repeat'] = 1  # each image once
    if resolution:
        _set_pipeline_size(ds_cfg.get('pipeline', []), resolution)
    return DATASETS.build(ds_cfg)


def _collate_fn(cfg: Config, split: str):
    from transvae.registry import FUNCTIONS
    spec = cfg[f'{split}_dataloader'].get('collate_fn', None) or dict(type='skip_none_collate')
    spec = dict(spec)
    fn = FUNCTIONS.get(spec.pop('type'))
    if spec:
        import functools
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
def atomic_save(tensors: dict[str, torch.Tensor], path: str, metadata: Optional[dict[str, str]] = None) -> None:
    """``save_file`` to ``path + '.tmp'``, fsync, rename: a reader never sees a partial file."""
    tmp = f'{path}.tmp.{os.getpid()}'
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def compute_stats(out: str) -> Optional[dict[str, torch.Tensor]]:
    """Per-channel mean / std ``(1, d, 1, 1)`` over all shards (``None`` while shards are missing); written to
    ``latents_stats.safetensors``."""
    shards = list_shards(out)
    if not shards:
        return None
    expected = shard_metadata(shards[0]).get('num_shards', len(shards))
    if len(shards) < expected:
        return None
    s = sq = None
    count = 0
    for path in shards:
        t = read_shard(path)  # validated (keys, dtypes, lengths, one latent shape) and finite
        if s is not None and t['latents'].shape[1] != s.numel():
            raise LatentFileError(f'{path}: latents have {t["latents"].shape[1]} channels, {shards[0]} has '
                                  f'{s.numel()}: shards of two extractions')
        for key in ('latents', 'latents_flip'):
            if key not in t:
                continue
            z = t[key].double()
            s = z.sum(dim=(0, 2, 3)) if s is None else s + z.sum(dim=(0, 2, 3))
            sq = (z ** 2).sum(dim=(0, 2, 3)) if sq is None else sq + (z ** 2).sum(dim=(0, 2, 3))
            count += z.shape[0] * z.shape[2] * z.shape[3]
    mean = s / count
    std = (sq / count - mean ** 2).clamp_min(0).sqrt()
    stats = {'mean': mean.float().view(1, -1, 1, 1), 'std': std.float().view(1, -1, 1, 1)}
    if not all(bool(torch.isfinite(v).all()) for v in stats.values()):  # overflow of finite but huge latents
        raise LatentFileError(f'{out}: the latent statistics are not finite (latents too large for float64 sums)')
    atomic_save(stats, osp.join(out, STATS_FILE), metadata={'json': json.dumps(dict(count=count))})
    return stats


def run(args: argparse.Namespace) -> Optional[dict[str, torch.Tensor]]:
    cfg = load_config(args.config, args.preset, args.data_root, args.cfg_options)
    model = build_model(cfg, args.checkpoint, args.device)
    dataset = build_dataset(cfg, args.split, args.resolution)
    weights = check_weights_source(cfg, args)  # which weights: recorded in every shard's metadata
    meta = dict(config=osp.abspath(args.config), checkpoint=args.checkpoint, split=args.split, weights=weights,
                resolution=args.resolution, latent_channels=int(getattr(model, 'latent_channels', -1)),
                checkpoint_sha256=file_sha256(args.checkpoint), config_sha256=config_fingerprint(cfg, args.split))
    extract(model, dataset, args.out, shard_size=args.shard_size, flip=args.flip, batch_size=args.batch_size,
            num_workers=args.num_workers, collate_fn=_collate_fn(cfg, args.split), device=args.device,
            rank=args.rank, world_size=args.world_size, max_items=args.max_items, meta=meta)
    stats = compute_stats(args.out)
    if stats is None:
        print(f'shards of other ranks are missing: {STATS_FILE} is written by the last rank to finish')
    else:
        print(f'{len(list_shards(args.out))} shards in {args.out}; channel mean |max| '
              f'{stats["mean"].abs().max():.4f}, std range [{stats["std"].min():.4f}, {stats["std"].max():.4f}]')
    return stats


def own_out_dir(out: str, rank: int = 0):
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


def check_weights_source(cfg: Config, args: argparse.Namespace, verbose: bool = True) -> str:
    """Which weights the latents come from (printed, and stored in the shards' metadata ``weights``); checkpoint
    ``none`` with a model that loads no weights of its own is refused unless ``--random-weights``."""
    from transvae.evaluation.protocol import check_weights
    try:
        info = check_weights(cfg.get('model', None), args.checkpoint, getattr(args, 'random_weights', False),
                             args.config)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    if verbose:
        print(f"weights: {info['detail']}", flush=True)
    return f"{info['source']}: {info['detail']}"


def preflight(args: argparse.Namespace) -> None:
    """Before the lock file, the model or any shard: random weights only with ``--random-weights``; an ``--out``
    that is, lies inside or contains the config, the checkpoint or the data root, or cannot be written, is refused
    (``transvae.utils.output_paths``)."""
    from transvae.engine.utils import dataset_roots
    from transvae.utils.output_paths import check_outputs
    from transvae.engine.config_validation import check_config_values
    cfg = load_config(args.config, args.preset, args.data_root, args.cfg_options)
    check_config_values(cfg)  # a non-numeric / out-of-range well-known numeric key: an error naming it
    check_weights_source(cfg, args, verbose=False)
    inputs = {'config': args.config, 'checkpoint': args.checkpoint}
    inputs.update({f'data root ({where})': root for where, root in dataset_roots(cfg)})
    check_outputs({'--out': args.out}, inputs, dirs=['--out'], exclusive=['--out'])


def main(argv=None) -> None:
    args = parse_args(argv)
    from transvae.engine.checkpoint_io import trusted_checkpoints
    from transvae.engine.config_validation import config_errors
    # every UserInputError (an --out over an input, a busy --out, a malformed shard, NaN weights, ...): one line
    with config_errors(exit_on_error=True):
        preflight(args)
        with own_out_dir(args.out, args.rank), trusted_checkpoints(args.trust_checkpoint):
            run(args)


if __name__ == '__main__':
    main()
