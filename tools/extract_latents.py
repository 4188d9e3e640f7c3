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
* ``DIR/latents_stats.safetensors``: per-channel ``mean`` and ``std`` ``(1, d, 1, 1)`` over every latent (flipped
  ones included), written once all shards exist (LightningDiT's ``latents_stats.pt`` convention). Store them with the
  model via ``VAE.set_latent_stats(mean, std)``.
* ``--rank K --world-size W`` processes shards ``i % W == K`` (run W processes, e.g. one per GPU); the last to finish
  writes the statistics.
"""
import argparse
import json
import os
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.config import Config, DictAction
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

# shard reading is shared with the analysis tools; re-exported here (load_latents, load_stats, ...)
from transvae.utils.latent_shards import (STATS_FILE, list_shards, load_latents, load_stats,  # noqa: F401
                                          shard_metadata, shard_path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Extract VAE posterior means into safetensors shards')
    p.add_argument('config')
    p.add_argument('checkpoint', help='mmengine checkpoint, or "none" (model loads its own weights)')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--data-root', help='data_root of the dataset')
    p.add_argument('--split', default='test', choices=['train', 'val', 'test'],
                   help='which <split>_dataloader.dataset of the config to use (always with the test pipeline)')
    p.add_argument('--flip', action='store_true', help='also store latents of the h-flipped images')
    p.add_argument('--shard-size', type=int, default=10000, help='dataset items per shard')
    p.add_argument('--resolution', type=int, help='crop / resize size of the dataset pipeline')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--num-workers', type=int, default=2)
    p.add_argument('--max-items', type=int, help='only the first N dataset items')
    p.add_argument('--preset', help='merge cfg presets[PRESET] (e.g. cpu)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--rank', type=int, default=0)
    p.add_argument('--world-size', type=int, default=1)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    return p.parse_args(argv)


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
    return model.to(device).eval()


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
    mine = [i for i in range(num_shards) if i % world_size == rank]
    for i in tqdm(mine, desc='shards', disable=not progress):
        path = shard_path(out, i)
        written.append(path)
        if osp.isfile(path):
            old = shard_metadata(path)
            for key in ('shard_size', 'flip', 'num_items'):
                if old.get(key) != meta[key]:
                    raise RuntimeError(f'{path} was written with {key}={old.get(key)!r}, this run has '
                                       f'{meta[key]!r}: use another --out directory')
            continue  # complete (written atomically)
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
        t = load_file(path)
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
    atomic_save(stats, osp.join(out, STATS_FILE), metadata={'json': json.dumps(dict(count=count))})
    return stats


def run(args: argparse.Namespace) -> Optional[dict[str, torch.Tensor]]:
    cfg = load_config(args.config, args.preset, args.data_root, args.cfg_options)
    model = build_model(cfg, args.checkpoint, args.device)
    dataset = build_dataset(cfg, args.split, args.resolution)
    meta = dict(config=osp.abspath(args.config), checkpoint=args.checkpoint, split=args.split,
                resolution=args.resolution, latent_channels=int(getattr(model, 'latent_channels', -1)))
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


def main(argv=None) -> None:
    args = parse_args(argv)
    from transvae.engine.checkpoint_io import trusted_checkpoints
    from transvae.engine.config_validation import config_errors
    with trusted_checkpoints(args.trust_checkpoint), config_errors(exit_on_error=True):
        run(args)


if __name__ == '__main__':
    main()
