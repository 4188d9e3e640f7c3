"""In-process runner helpers for the reliability tests (built on ``tiny_vae_fixtures``)."""
from __future__ import annotations

from typing import Optional

import torch


def build_runner(cfg_path: str, work_dir: str, cfg_options: Optional[dict] = None):
    """A ``TransVAERunner`` for the config at ``cfg_path`` (``launcher='none'``)."""
    from mmengine.config import Config

    from transvae.registry import RUNNERS
    from transvae.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    return RUNNERS.build(cfg)


def load_ckpt(path: str) -> dict:
    from transvae.engine.checkpoint_io import load_checkpoint_file
    return load_checkpoint_file(path)


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
