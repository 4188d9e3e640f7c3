"""Experiment switch: GroupNorm with a fixed number of channels per group (LDM's paper-width ratio) at any width.

The registered ``GN`` takes the largest group count <= 32 dividing ``C``
(:func:`~transvae.models.layers.norm.gn_groups`), as LDM / diffusers do (``GroupNorm(32, C)``). At the paper's widths (128-512 channels) that is 4-16 channels per group; at the
micro widths of ``--preset cpu`` (32 channels) it is **one channel per group, i.e. InstanceNorm**, which removes every
channel's per-image mean and scale. Importing this module re-registers ``GN`` so that a map of ``C`` channels gets
``min(32, C // 4)`` groups (4 channels per group at 32-128 channels, as LDM's 128-channel level has), to test whether
a micro model's behaviour comes from that InstanceNorm regime. Used through mmengine's ``custom_imports`` in a
three-line overlay config (the one behind docs/RESULTS.md, "Why some claims disagree at this scale")::

    # work_dirs/analysis/cnn_vae_gn4.py
    _base_ = ['../reproduce/fig1/_configs/cnn_vae.py']  # the study's overlay of configs/experiments/cnn_vae.py
    custom_imports = dict(imports=['gn_group_size'], allow_failed_imports=False)

    PYTHONPATH=tools/analysis_tools OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python tools/train.py \
        work_dirs/analysis/cnn_vae_gn4.py --preset cpu --max-iters 1250 --batch-size 16 --seed 0 \
        --work-dir work_dirs/analysis/cnn_vae_gn4/seed_0 --cfg-options train_cfg.val_interval=250 \
        default_hooks.checkpoint.interval=250 default_hooks.checkpoint.max_keep_ckpts=-1

Loading such a run's checkpoints (``study_diagnostics.py``) needs the same ``PYTHONPATH``.
Not for real configs: it changes every ``GN`` built after the import in that process.
"""
from __future__ import annotations

from transvae.models.layers.norm import GroupNorm
from transvae.registry import MODELS

#: Channels per group kept at every width (LDM's 128 channels / 32 groups).
CHANNELS_PER_GROUP = 4


class GroupNormFixedGroupSize(GroupNorm):
    """:class:`~transvae.models.layers.norm.GroupNorm` with ``min(num_groups, C // CHANNELS_PER_GROUP)`` groups."""

    def __init__(self, num_features: int, num_groups: int = 32, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__(num_features, max(1, min(num_groups, num_features // CHANNELS_PER_GROUP)), eps, affine)


MODELS.register_module('GN', module=GroupNormFixedGroupSize, force=True)
