"""Distributed start-up and shutdown of the tools: the gloo process group on CPU (ENVIRONMENT.md §2.2), from
``torchrun`` or SLURM variables, and a clean exit of every rank at the end of a distributed run.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict

__all__ = ['init_cpu_distributed', 'shutdown_distributed']


def _slurm_env_to_torch_env(port: Optional[int] = None) -> None:
    """Fill RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT from SLURM variables (as mmengine does)."""
    import subprocess
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    if 'MASTER_ADDR' not in os.environ:
        addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
        os.environ['MASTER_ADDR'] = addr
    if 'MASTER_PORT' not in os.environ:
        os.environ['MASTER_PORT'] = str(port or 29500)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['RANK'] = str(proc_id)
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('LOCAL_WORLD_SIZE', os.environ.get('SLURM_NTASKS_PER_NODE', '1'))


def init_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Without CUDA, start the gloo process group here and make the DDP wrapper CPU-friendly.

    mmengine's own ``init_dist`` calls ``torch.cuda.set_device`` and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``, both of which fail on CPU. Once the group exists the Runner skips its init; the model
    wrapper keeps a user-given ``type`` (e.g. ``MMSeparateDistributedDataParallel``) with ``device_ids=None``.

    Returns True when it initialised the group (launcher != 'none' and no CUDA).
    """
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher == 'slurm':
        _slurm_env_to_torch_env()
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} is not supported without CUDA (use pytorch or slurm).')
    if not dist.is_initialized():
        timeout = (cfg.get('env_cfg', {}) or {}).get('dist_cfg', {}).get('timeout', None)
        kwargs = {}
        if timeout is not None:
            import datetime
            kwargs['timeout'] = datetime.timedelta(seconds=int(timeout))
        dist.init_process_group(backend='gloo', init_method='env://', **kwargs)
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    if not wrapper:  # what mmengine's Runner would build by default
        wrapper = dict(broadcast_buffers=False, find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    env_cfg.setdefault('dist_cfg', ConfigDict())['backend'] = 'gloo'
    return True


def shutdown_distributed() -> None:
    """End a distributed run cleanly: wait for every rank, destroy the process group, then leave the process.

    A rank that finished its work could still abort during interpreter teardown with gloo's threads attached
    ("terminate called without an active exception", SIGABRT: seen in about 1 of 8 two-rank CPU runs even after
    ``destroy_process_group``), turning a completed run into a failed torchrun. After the barrier every result is
    written, so a distributed run flushes its streams and log handlers and exits with ``os._exit(0)``, skipping that
    teardown. Single-process runs return normally.
    """
    import logging
    import sys

    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)
