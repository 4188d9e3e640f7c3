"""Each held-out photo's metrics at the end of a study run: ``WORK_DIR/per_photo.json``, for the paired bootstrap.

The run's own validation, photo by photo: the config the run dumped into its work dir (overlay, preset and
``--cfg-options`` resolved), its last checkpoint, its ``val_dataloader`` and the per-image reconstruction metrics of
its ``val_evaluator`` (:class:`~transvae.evaluation.metrics.base.BaseReconstructionMetric` keeps one value per image),
each image through ``model.val_step`` as the validation loop does. So the mean over the photos is the run's logged
final validation value. The file (written atomically)::

    {"iteration": 1250, "checkpoint": "iter_1250.pth", "config": "LABEL.py", "metrics": [...],
     "photos": {"<source>/<file>.png": {"vgg/rec_loss": ..., "alex/rec_loss": ..., "psnr": ..., ...}, ...},
     "means": {...}, "written_at": "..."}

Keys are the logged ones (:mod:`.logs`): ``vgg/rec_loss`` (the claim metric, L1 + LPIPS-vgg) with its terms
``vgg/rec_l1`` / ``vgg/rec_lpips``, ``alex/rec_loss`` (and terms), ``psnr``, ``ssim``, ``lpips`` (LPIPS-alex).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import re
import time
from typing import Optional

PER_PHOTO = 'per_photo.json'


def photo_key(img_path: str) -> str:
    """``'.../val/astronaut/astronaut.png'`` -> ``'astronaut/astronaut.png'`` (source folder and file name)."""
    parts = os.path.normpath(img_path).split(os.sep)
    return '/'.join(parts[-2:])


def checkpoint_iteration(checkpoint: str) -> int:
    """The iteration of an mmengine checkpoint: from its name ``iter_N.pth``, else from its ``meta``."""
    m = re.search(r'iter_(\d+)\.pth$', osp.basename(checkpoint))
    if m:
        return int(m.group(1))
    import torch
    meta = torch.load(checkpoint, map_location='cpu', weights_only=False).get('meta', {})  # the study's own file
    return int(meta['iter'])


def evaluate_per_photo(config: str, checkpoint: str) -> dict[str, dict[str, float]]:
    """``{photo: {metric: value}}`` of ``checkpoint`` on the config's validation set (see the module docstring)."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from transvae.apis import register_all_modules
    from transvae.apis.entry import build_model
    from transvae.evaluation.metrics.base import BaseReconstructionMetric
    from transvae.registry import METRICS
    register_all_modules()
    cfg = Config.fromfile(config)
    model = build_model(cfg, checkpoint, 'cpu', trusted=True, tool_hint='per-photo evaluation of {ckpt}')
    evs = cfg.val_evaluator if isinstance(cfg.val_evaluator, (list, tuple)) else [cfg.val_evaluator]
    metrics = [m for m in (METRICS.build(e.to_dict() if hasattr(e, 'to_dict') else dict(e)) for e in evs)
               if isinstance(m, BaseReconstructionMetric)]
    if not metrics:
        raise ValueError(f'{config}: the val_evaluator has no per-image reconstruction metric')
    loader = Runner.build_dataloader(cfg.val_dataloader.to_dict(), seed=0)
    names: list[str] = []
    with torch.no_grad():
        for batch in loader:
            outputs = model.val_step(batch)
            for m in metrics:
                m.process(batch, outputs)
            names += [photo_key(str(o.get('img_path', ''))) for o in outputs]
    if len(set(names)) != len(names):
        raise ValueError(f'{config}: two held-out images map to one name: {sorted(names)}')
    out: dict[str, dict[str, float]] = {n: {} for n in names}
    for m in metrics:
        if len(m.results) != len(names):
            raise RuntimeError(f'{type(m).__name__} kept {len(m.results)} values for {len(names)} images')
        for n, r in zip(names, m.results):
            out[n].update({f'{m.prefix}/{k}' if m.prefix else k: float(v) for k, v in r.items()})
        m.results.clear()
    return out


def write_per_photo(work_dir: str) -> str:
    """Evaluate the last checkpoint of ``work_dir`` photo by photo and write ``WORK_DIR/per_photo.json``
    atomically; returns its path. Raises ``FileNotFoundError`` when the work dir has no checkpoint or config."""
    from .photos import resolve_checkpoint
    config, ckpt = resolve_checkpoint(work_dir)
    photos = evaluate_per_photo(config, ckpt)
    keys = sorted({k for v in photos.values() for k in v})
    rec = dict(iteration=checkpoint_iteration(ckpt), checkpoint=osp.basename(ckpt), config=osp.basename(config),
               metrics=keys, photos=photos,
               means={k: sum(v[k] for v in photos.values()) / len(photos) for k in keys},
               written_at=time.strftime('%Y-%m-%d %H:%M:%S'))
    path = osp.join(work_dir, PER_PHOTO)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(rec, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def ensure_per_photo(work_dir: str) -> str:
    """``WORK_DIR/per_photo.json`` of the last checkpoint: kept when it is of that iteration, else (absent, or a
    run continued since) evaluated now; returns its path. A finished run gets it by re-evaluating its final
    checkpoint, never by retraining. Raises ``FileNotFoundError`` when there is no checkpoint to evaluate."""
    from .photos import resolve_checkpoint
    _, ckpt = resolve_checkpoint(work_dir)
    if per_photo_current(work_dir, checkpoint_iteration(ckpt)):
        return osp.join(work_dir, PER_PHOTO)
    return write_per_photo(work_dir)


def read_per_photo(work_dir: str) -> Optional[dict]:
    """The ``per_photo.json`` record of ``work_dir`` (``None`` when absent or unreadable)."""
    try:
        with open(osp.join(work_dir, PER_PHOTO)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get('photos'), dict) else None


def per_photo_current(work_dir: str, iteration: Optional[int]) -> bool:
    """``per_photo.json`` exists and is of ``iteration`` (any iteration when ``None``)."""
    rec = read_per_photo(work_dir)
    return rec is not None and (iteration is None or int(rec.get('iteration', -1)) == int(iteration))


__all__ = ['PER_PHOTO', 'photo_key', 'checkpoint_iteration', 'evaluate_per_photo', 'write_per_photo',
           'ensure_per_photo', 'read_per_photo', 'per_photo_current']
