"""Output paths that never destroy inputs: checked before any expensive work starts.

A tool names its outputs (``--out``, ``--report``, ``--show-dir``, ``--work-dir``, ...) and its inputs (config,
checkpoint, data root, reference statistics, ...); :func:`check_outputs` refuses, with one message naming the option
and the input, an output that

* is an input (the same file, through symlinks and hard links: ``os.path.samefile`` when both exist, else the
  resolved real paths), e.g. ``tools/test.py CFG ckpt.pth --out ckpt.pth``;
* lies inside an input directory (a data root): the tool would add files to the data it reads;
* is a directory output listed in ``exclusive`` that contains an input (``extract_latents --out`` must not hold the
  data root or the checkpoint);
* is named twice (``--out x.json --report x.json``: the second write replaces the first);
* cannot be written: a file output that is a directory, a parent that is a file, or a directory in which a probe file
  cannot be created (read-only file system or permissions; the probe is created and removed at once, so it is exact
  also for root, whom permission bits do not stop).

Nothing is created: the nearest existing ancestor of a missing output is probed. Remote paths (``s3://``,
``http://``) and ``None`` entries are skipped. Layer 0 (``transvae.utils``): no torch, no mmengine.
"""
from __future__ import annotations

import errno
import os
import os.path as osp
import tempfile
from collections.abc import Collection, Mapping
from typing import Optional

from transvae.utils.errors import UserInputError

__all__ = ['OutputPathError', 'check_outputs', 'same_path', 'is_inside']


class OutputPathError(UserInputError, ValueError):
    """An output path that would overwrite an input, lies inside one, or cannot be written."""


def _is_remote(path: str) -> bool:
    return '://' in str(path)


def _real(path: str) -> str:
    return osp.realpath(osp.abspath(osp.expanduser(str(path))))


def same_path(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name the same file or directory (symlinks and hard links included)."""
    if osp.exists(a) and osp.exists(b):
        try:
            return osp.samefile(a, b)
        except OSError:
            pass
    return _real(a) == _real(b)


def is_inside(path: str, directory: str) -> bool:
    """Whether ``path`` lies strictly below ``directory`` (real paths, so a symlink into it counts)."""
    p, d = _real(path), _real(directory)
    return p != d and p.startswith(d.rstrip(os.sep) + os.sep)


def _nearest_existing(path: str) -> str:
    p = osp.abspath(osp.expanduser(str(path)))
    while not osp.exists(p):
        parent = osp.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _probe_writable(directory: str) -> Optional[str]:
    """``None`` when a file can be created in ``directory``, else the reason."""
    try:
        fd, probe = tempfile.mkstemp(prefix='.transvae-write-probe-', dir=directory)
    except OSError as e:
        if e.errno == errno.EROFS:
            return f'{directory} is on a read-only file system'
        return f'cannot create a file in {directory} ({e.strerror or e})'
    os.close(fd)
    os.unlink(probe)
    return None


def _writable_reason(option: str, path: str, is_dir: bool) -> Optional[str]:
    """Why ``path`` cannot be written as a file (``is_dir=False``) or directory output, or ``None``."""
    p = osp.abspath(osp.expanduser(str(path)))
    if osp.exists(p):
        if is_dir and not osp.isdir(p):
            return f'{option} {path}: exists and is not a directory'
        if not is_dir:
            if osp.isdir(p):
                return f'{option} {path}: is a directory, expected a file name'
            reason = _probe_writable(osp.dirname(p))  # the writers replace the file or rewrite it in its folder
            if reason is None:
                try:  # append mode: opens for writing without changing a byte
                    with open(p, 'ab'):
                        pass
                except OSError as e:
                    reason = f'{p} is not writable ({e.strerror or e})'
            return f'{option} {path}: {reason}' if reason else None
        reason = _probe_writable(p)
        return f'{option} {path}: {reason}' if reason else None
    base = _nearest_existing(p)
    if not osp.isdir(base):
        return f'{option} {path}: {base} is a file, so no folder can be created under it'
    reason = _probe_writable(base)
    return f'{option} {path}: {reason}' if reason else None


def check_outputs(outputs: Mapping[str, Optional[str]], inputs: Mapping[str, Optional[str]], *,
                  dirs: Collection[str] = (), exclusive: Collection[str] = ()) -> None:
    """Refuse outputs that would overwrite or write into an input, or that cannot be written (module docstring).

    Call it before building the model or the dataset, so a bad path costs seconds, not an evaluation.

    Args:
        outputs: option name (used in the message, e.g. ``'--out'``) -> path; ``None`` / ``''`` entries are skipped.
        inputs: input name (e.g. ``'checkpoint'``, ``'config'``, ``'data root'``) -> path; ``None`` / ``''`` /
            ``'none'`` and remote paths are skipped. An input that is an existing directory is a data root: no output
            may lie inside it.
        dirs: the keys of ``outputs`` that are directories (the rest are files).
        exclusive: keys of ``dirs`` that must not contain any input either.

    Raises:
        OutputPathError: (a ``ValueError``) naming the option, the path and the input it collides with.
    """
    outs = {k: str(v) for k, v in outputs.items() if v and not _is_remote(str(v))}
    ins = {k: str(v) for k, v in inputs.items() if v and str(v).lower() != 'none' and not _is_remote(str(v))}
    unknown = (set(dirs) | set(exclusive)) - set(outputs)
    if unknown:
        raise ValueError(f'check_outputs: dirs / exclusive name no output: {sorted(unknown)}')
    seen: dict[str, str] = {}
    for option, path in outs.items():
        is_dir = option in dirs
        for name, src in ins.items():
            if same_path(path, src):
                raise OutputPathError(f'{option} {path} is the {name} ({src}): writing it would destroy an input. '
                                      'Give another path.')
            if osp.isdir(src) and is_inside(path, src):
                raise OutputPathError(f'{option} {path} lies inside the {name} {src}: the tool would write into '
                                      'its own input. Give a path outside it.')
            if option in exclusive and is_inside(src, path):
                raise OutputPathError(f'{option} {path} contains the {name} {src}: give an output folder that '
                                      'holds no input.')
        for other, other_path in seen.items():
            if same_path(path, other_path):
                raise OutputPathError(f'{option} and {other} are the same path ({path}): one would overwrite the '
                                      'other.')
        seen[option] = path
        reason = _writable_reason(option, path, is_dir)
        if reason:
            raise OutputPathError(reason)
