"""Crash-safe file writes: write to a temp file beside the target, fsync, ``os.replace``, fsync the directory.

Used by the checkpoint hook, the runner's checkpoints (``torch.save`` streamed into :func:`atomic_write`), the FSDP
strategy and the checkpoint converters, so an interrupted write never leaves
a truncated file under the final name; ``remove_stale_tmp_files`` clears the temp files that a killed writer leaves
behind.
"""
from __future__ import annotations

import os
import os.path as osp
import re
import tempfile
from typing import Optional

import torch

from .work_dir_lock import owned_by_other_process


def _fsync_dir(dirname: str) -> None:
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, write_fn, mode: str = 'wb') -> None:
    """Write ``path`` atomically: ``write_fn(f)`` into a temp file beside it, fsync, ``os.replace``, fsync the dir.

    If ``write_fn`` (or anything before the replace) raises, the temp file is removed and ``path`` is untouched.
    """
    dirname = osp.dirname(osp.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=dirname)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(dirname)


def atomic_write_text(path: str, text: str) -> None:
    """Atomically replace the text file ``path`` with ``text``."""
    atomic_write(path, lambda f: f.write(text), mode='w')


def is_local(path: str) -> bool:
    return '://' not in str(path)


def nonfinite_tensors(state_dict: dict) -> list[str]:
    """Names of floating-point entries of ``state_dict`` that contain NaN or Inf."""
    bad = []
    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(name)
    return bad


_TMP_PATTERN = re.compile(r'^\..+\.[A-Za-z0-9_]+\.tmp$')


def remove_stale_tmp_files(*dirs: Optional[str]) -> list[str]:
    """Remove ``.<name>.<random>.tmp`` files that :func:`atomic_write` leaves when its process is killed mid-write.

    Only rank 0 writes checkpoints, and it calls this between its own writes, so a matching file is never in use
    by this run; a directory owned by another live run (its ``run.lock``, :mod:`~transvae.engine.work_dir_lock`) is
    left alone, since its temp files may be that run's in-flight writes.
    """
    removed = []
    for d in {d for d in dirs if d}:
        if owned_by_other_process(d) is not None:
            continue
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if _TMP_PATTERN.match(name):
                try:
                    os.unlink(osp.join(d, name))
                    removed.append(name)
                except OSError:
                    pass
    return removed
