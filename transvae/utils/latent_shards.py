"""The latent shards of ``tools/extract_latents.py``: the format, and the one place it is read and validated.

``DIR/latents_{i:05d}.safetensors`` holds ``latents`` ``(n, d, h, w)`` float32 posterior means, optionally
``latents_flip`` (same shape, of the horizontally flipped images), ``labels`` ``(n,)`` and ``indices`` ``(n,)``
int64, with a ``json`` metadata entry (layout and provenance); ``DIR/latents_stats.safetensors`` holds the
per-channel ``mean`` and ``std`` ``(1, d, 1, 1)`` (how they were computed, :mod:`transvae.utils.latent_statistics`,
in its ``json`` metadata); ``DIR/latents_provenance.json`` records what wrote the folder
(checkpoint sha256, config fingerprint, split, resolution, flip, ...), so a resume with anything else is refused.

Every reader (``extract_latents`` itself, the analysis tools ``latent_stats.py`` / ``linear_probe.py``, the
LightningDiT ``LatentShardDataset`` and ``LatentNormalizer``) goes through :func:`check_shard` /
:func:`read_shard` / :func:`load_stats`: a truncated or malformed file, a missing key, a wrong dtype, arrays that
disagree in length, non-finite values or a channel count other than the consumer's is a :class:`LatentFileError`
naming the file, never a raw safetensors / torch traceback. Memory stays bounded by the file's real size:
safetensors refuses a header whose tensors are not covered by the bytes on disk, and tensors are memory-mapped.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from transvae.utils.errors import InputNotFoundError, UserInputError

__all__ = ['SHARD_PATTERN', 'STATS_FILE', 'PROVENANCE_FILE', 'LatentFileError', 'LatentKeyError',
           'LatentProvenanceError', 'ShardInfo', 'shard_path', 'list_shards', 'shard_metadata', 'check_shard',
           'read_shard', 'check_finite_latents', 'load_latents', 'check_stats', 'load_stats', 'atomic_save',
           'write_stats', 'stats_metadata', 'read_provenance', 'provenance_differences']

#: file name of shard ``i``
SHARD_PATTERN = re.compile(r'^latents_(\d{5})\.safetensors$')
#: file name of the per-channel statistics
STATS_FILE = 'latents_stats.safetensors'
#: what wrote the folder (``tools/extract_latents.py``)
PROVENANCE_FILE = 'latents_provenance.json'

_FLOAT = {'F16', 'BF16', 'F32', 'F64'}
_INT = {'I64', 'I32'}
_FIX = ('delete it and run tools/extract_latents.py again on the same --out (complete shards are kept), '
        'or extract into a new folder')


class LatentFileError(UserInputError, ValueError):
    """A latent shard / statistics file that cannot be read, or does not hold what it claims or what is expected."""


class LatentKeyError(LatentFileError, KeyError):
    """A latent shard / statistics file without a tensor its consumer needs (also a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


class LatentProvenanceError(LatentFileError, RuntimeError):
    """A latent folder written by another extraction (checkpoint, config, split, resolution, flip or layout)."""


@dataclass
class ShardInfo:
    """What :func:`check_shard` read from a shard's header (no tensor data).

    Attributes:
        path: the shard file.
        num_items: ``n``, the leading dimension shared by every tensor.
        latent_shape: ``(d, h, w)`` of one latent.
        keys: the tensors present.
        metadata: the parsed ``json`` metadata (``{}`` when absent).
    """

    path: str
    num_items: int
    latent_shape: tuple[int, int, int]
    keys: frozenset
    metadata: dict = field(default_factory=dict)


def shard_path(out: str, i: int) -> str:
    """Path of shard ``i`` in the directory ``out``."""
    return osp.join(out, f'latents_{i:05d}.safetensors')


def _safe_open(path: str, what: str = 'latent shard') -> Any:
    """``safe_open(path)``; an unreadable file (truncated, garbage, a directory) is a :class:`LatentFileError`."""
    from safetensors import safe_open
    if not osp.isfile(path):
        raise InputNotFoundError(f'{what} {path} not found')
    try:
        return safe_open(path, framework='pt')
    except Exception as e:  # noqa: BLE001 - SafetensorError / OSError: name the file
        raise LatentFileError(f'{what} {path} is not a readable safetensors file ({osp.getsize(path)} bytes; '
                              f'{str(e).splitlines()[0][:160]}): it may be truncated or not written by '
                              f'tools/extract_latents.py; {_FIX}') from None


def _metadata(f: Any, path: str) -> dict:
    raw = (f.metadata() or {}).get('json', '{}')
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise LatentFileError(f'{path}: its "json" metadata is not valid JSON ({e}); {_FIX}') from None
    if not isinstance(meta, dict):
        raise LatentFileError(f'{path}: its "json" metadata is a {type(meta).__name__}, expected an object; {_FIX}')
    return meta


def shard_metadata(path: str) -> dict:
    """The JSON metadata of a shard (``{}`` when it has none)."""
    with _safe_open(path) as f:
        return _metadata(f, path)


def list_shards(out: str, complete: bool = False) -> list[str]:
    """Sorted paths of the shards in ``out``.

    Args:
        out: the latent folder.
        complete: also require every shard ``0 .. num_shards - 1`` (``num_shards`` from the first shard's metadata)
            and at least one: a missing folder, no shard or a missing shard is a ``FileNotFoundError`` naming them.
    """
    if not osp.isdir(out):
        if complete:
            raise InputNotFoundError(f'latent folder {out} does not exist (write it with tools/extract_latents.py)')
        return []
    found = sorted((int(m.group(1)), f) for f in os.listdir(out) if (m := SHARD_PATTERN.match(f)))
    paths = [osp.join(out, f) for _, f in found]
    if not complete:
        return paths
    if not found:
        raise InputNotFoundError(f'no latents_XXXXX.safetensors shard in {out}')
    meta = shard_metadata(paths[0])
    try:
        expected = int(meta.get('num_shards', found[-1][0] + 1))
    except (TypeError, ValueError):
        raise LatentFileError(f'{paths[0]}: metadata num_shards={meta.get("num_shards")!r} is not an integer; '
                              f'{_FIX}') from None
    missing = sorted(set(range(expected)) - {i for i, _ in found})
    if missing:
        names = ', '.join(f'latents_{i:05d}.safetensors' for i in missing[:5])
        raise InputNotFoundError(f'{out}: {len(missing)} of {expected} shards missing ({names}'
                                f'{", ..." if len(missing) > 5 else ""}); finish tools/extract_latents.py first')
    extra = [p for i, p in zip((i for i, _ in found), paths) if i >= expected]
    if extra:
        raise LatentFileError(f'{out}: {extra[0]} is beyond the {expected} shards the folder\'s metadata declares '
                              '(shards of two extractions?); extract into a new folder')
    return paths


def check_shard(path: str, latent_shape: Optional[tuple[int, int, int]] = None, require_flip: bool = False,
                require_labels: bool = True, expected_from: str = 'the configured latent_shape') -> ShardInfo:
    """Validate a shard's header against what it claims and what the caller expects; reads no tensor data.

    Checks: the file is a complete safetensors file; ``latents`` is a floating ``(n, d, h, w)`` tensor with
    ``d, h, w >= 1``; ``latents_flip`` (when present, or ``require_flip``) has the same shape; ``labels`` /
    ``indices`` are integer ``(n,)``; the metadata is a JSON object; ``latent_shape`` (when given) equals
    ``(d, h, w)`` (``expected_from`` says where that shape came from, in the message).

    Raises:
        FileNotFoundError: no such file.
        LatentFileError: anything else, naming the file and the key.
    """
    with _safe_open(path) as f:
        keys = frozenset(f.keys())
        meta = _metadata(f, path)
        need = ['latents'] + (['labels'] if require_labels else []) + (['latents_flip'] if require_flip else [])
        missing = [k for k in need if k not in keys]
        if missing:
            hint = ' (extract with --flip, or set use_flip=False)' if missing == ['latents_flip'] else ''
            raise LatentKeyError(f'{path} has no {missing} tensor{hint} (keys: {sorted(keys)})')
        info: dict[str, tuple[str, list[int]]] = {}
        for k in keys & {'latents', 'latents_flip', 'labels', 'indices'}:
            s = f.get_slice(k)
            info[k] = (s.get_dtype(), list(s.get_shape()))
    dtype, shape = info['latents']
    if dtype not in _FLOAT:
        raise LatentFileError(f'{path}: latents have dtype {dtype}, expected a floating type (F32); {_FIX}')
    if len(shape) != 4 or min(shape[1:]) < 1:
        raise LatentFileError(f'{path}: latents have shape {tuple(shape)}, expected (n, d, h, w); {_FIX}')
    n = shape[0]
    if 'latents_flip' in info and info['latents_flip'] != (dtype, shape):
        raise LatentFileError(f'{path}: latents_flip {info["latents_flip"][0]} {tuple(info["latents_flip"][1])} '
                              f'differ from latents {dtype} {tuple(shape)}; {_FIX}')
    for k in ('labels', 'indices'):
        if k in info:
            kd, ks = info[k]
            if kd not in _INT:
                raise LatentFileError(f'{path}: {k} have dtype {kd}, expected an integer type (I64); {_FIX}')
            if ks != [n]:
                raise LatentFileError(f'{path}: {n} latents but {k} of shape {tuple(ks)} (the arrays disagree in '
                                      f'length); {_FIX}')
    lshape = (shape[1], shape[2], shape[3])
    if latent_shape is not None and tuple(int(x) for x in latent_shape) != lshape:
        raise LatentFileError(f'{path} holds latents of shape {lshape}, but {expected_from} has '
                              f'{tuple(latent_shape)}: every shard must come from the same VAE and resolution')
    return ShardInfo(path=path, num_items=n, latent_shape=lshape, keys=keys, metadata=meta)


def check_finite_latents(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Raise a :class:`LatentFileError` naming the first item whose ``latents`` / ``latents_flip`` are not finite.

    Args:
        tensors: ``latents`` ``(n, d, h, w)`` [, ``latents_flip``, ``indices`` ``(n,)``].
        where: the file (or shard being written) named in the message.
    """
    for key in ('latents', 'latents_flip'):
        z = tensors.get(key)
        if z is None or not z.is_floating_point():
            continue
        ok = torch.isfinite(z.reshape(z.shape[0], -1)).all(dim=1)
        if not bool(ok.all()):
            j = int((~ok).nonzero()[0])
            idx = tensors.get('indices')
            item = f'dataset index {int(idx[j])}' if idx is not None and idx.numel() > j else f'item {j}'
            raise LatentFileError(f'{where}: {key} of {item} (row {j}) and {int((~ok).sum())} of {z.shape[0]} rows '
                                  'in all are not finite (NaN / Inf): the VAE produced non-finite latents')


def read_shard(path: str, keys: Optional[tuple[str, ...]] = None, latent_shape: Optional[tuple[int, int, int]] = None,
               check_finite: bool = True, expected_from: str = 'the expected latent shape') -> dict[str, torch.Tensor]:
    """The tensors of a validated shard (:func:`check_shard`), all of them or ``keys``; non-finite latents refused.

    Latents are returned as float32, labels / indices as int64.
    """
    info = check_shard(path, latent_shape=latent_shape, require_flip=keys is not None and 'latents_flip' in keys,
                       expected_from=expected_from)
    want = [k for k in (keys or sorted(info.keys)) if k in info.keys]
    with _safe_open(path) as f:
        out = {k: f.get_tensor(k) for k in want}
    for k, v in out.items():
        if k in ('latents', 'latents_flip'):
            out[k] = v.float()
        elif k in ('labels', 'indices'):
            out[k] = v.long()
    if check_finite:
        check_finite_latents(out, path)
    return out


def load_latents(out: str, with_flip: bool = True) -> dict[str, torch.Tensor]:
    """All shards of ``out`` concatenated: ``latents``, ``labels``, ``indices`` (and ``latents_flip``).

    Every shard is validated (:func:`read_shard`) and must have the first one's latent shape and keys.
    """
    paths = list_shards(out)
    if not paths:
        raise InputNotFoundError(f'no latents_*.safetensors in {out}')
    first = check_shard(paths[0])
    keys = tuple(k for k in ('latents', 'labels', 'indices', 'latents_flip') if k in first.keys and
                 (with_flip or k != 'latents_flip'))
    parts: dict[str, list[torch.Tensor]] = {}
    for path in paths:
        t = read_shard(path, keys=keys, latent_shape=first.latent_shape, expected_from=paths[0])
        for k in keys:
            if k not in t:
                raise LatentFileError(f'{path} has no {k!r}, but {paths[0]} has: shards of two extractions?')
            parts.setdefault(k, []).append(t[k])
    return {k: torch.cat(v) for k, v in parts.items()}


def check_stats(stats: dict[str, torch.Tensor], path: str,
                num_channels: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate latent statistics: ``mean`` and ``std`` floating, ``(1, d, 1, 1)`` or ``(d,)``, the same ``d``
    (= ``num_channels`` when given), finite, ``std >= 0``. Returns them as float32 ``(1, d, 1, 1)``."""
    missing = sorted({'mean', 'std'} - set(stats))
    if missing:
        raise LatentKeyError(f'latent statistics {path} lack {missing} (have {sorted(stats)}); they are written by '
                             'tools/extract_latents.py')
    out = []
    for k in ('mean', 'std'):
        v = stats[k]
        if not v.is_floating_point():
            raise LatentFileError(f'latent statistics {path}: {k} has dtype {v.dtype}, expected a floating type')
        if not (v.dim() == 1 or (v.dim() == 4 and v.shape[0] == v.shape[2] == v.shape[3] == 1)) or not v.numel():
            raise LatentFileError(f'latent statistics {path}: {k} has shape {tuple(v.shape)}, expected (1, d, 1, 1)')
        if not bool(torch.isfinite(v).all()):
            raise LatentFileError(f'latent statistics {path}: {k} is not finite (NaN / Inf); re-extract the latents '
                                  'with a VAE whose weights are finite')
        out.append(v.float().reshape(1, -1, 1, 1))
    mean, std = out
    if mean.shape != std.shape:
        raise LatentFileError(f'latent statistics {path}: mean has {mean.shape[1]} channels, std {std.shape[1]}')
    if bool((std < 0).any()):
        raise LatentFileError(f'latent statistics {path}: std has negative entries')
    if num_channels is not None and mean.shape[1] != int(num_channels):
        raise LatentFileError(f'latent statistics {path} have {mean.shape[1]} channels, the latents have '
                              f'{int(num_channels)}: they belong to another VAE')
    return mean, std


def load_stats(out: str, num_channels: Optional[int] = None, stats_file: str = STATS_FILE) -> dict[str, torch.Tensor]:
    """``{'mean', 'std'}`` ``(1, d, 1, 1)`` float32 of the latents in ``out``, validated (:func:`check_stats`).

    Args:
        out: the latent folder (or the statistics file itself).
        num_channels: the channel count the consumer expects.
        stats_file: file name inside ``out`` (or an absolute path).
    """
    path = out if osp.isfile(out) else (stats_file if osp.isabs(stats_file) else osp.join(out, stats_file))
    if not osp.isfile(path):
        raise InputNotFoundError(
            f'latent statistics {path} not found: tools/extract_latents.py writes them once every shard exists '
            '(re-run it on the same --out to finish)')
    with _safe_open(path, 'latent statistics') as f:
        present = set(f.keys())
        stats = {k: f.get_tensor(k) for k in ('mean', 'std') if k in present}
    mean, std = check_stats(stats, path, num_channels)
    return {'mean': mean, 'std': std}


def atomic_save(tensors: dict[str, torch.Tensor], path: str, metadata: Optional[dict[str, str]] = None) -> None:
    """``save_file`` to a temporary file beside ``path``, fsync, rename: a reader never sees a partial file."""
    from safetensors.torch import save_file
    tmp = f'{path}.tmp.{os.getpid()}'
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_stats(out: str, stats: dict) -> str:
    """Write ``stats`` (:func:`transvae.utils.latent_statistics.compute_latent_stats`: ``mean`` / ``std``
    ``(1, d, 1, 1)`` and how they were computed) to ``out/latents_stats.safetensors`` atomically, the convention,
    count and subset in its ``json`` metadata; returns the path."""
    mean, std = check_stats(stats, out)
    info = {k: stats[k] for k in ('count', 'num_items', 'convention', 'with_flip', 'max_items', 'seed')
            if k in stats}
    path = osp.join(out, STATS_FILE)
    atomic_save({'mean': mean, 'std': std}, path, metadata={'json': json.dumps(info)})
    return path


def stats_metadata(out: str, stats_file: str = STATS_FILE) -> dict:
    """How ``out``'s statistics were computed: the ``json`` metadata :func:`write_stats` stores (``convention``,
    ``count``, ``num_items``, ``max_items``, ``seed``); ``{}`` for a file written before it was recorded."""
    path = stats_file if osp.isabs(stats_file) else osp.join(out, stats_file)
    with _safe_open(path, 'latent statistics') as f:
        return _metadata(f, path)


# --------------------------------------------------------------------------------------------------------- provenance
def read_provenance(out: str) -> Optional[dict]:
    """The provenance record of ``out`` (``None`` when the folder has none)."""
    path = osp.join(out, PROVENANCE_FILE)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            rec = json.load(f)
    except (OSError, ValueError) as e:
        raise LatentFileError(f'{path} is not a readable JSON provenance record ({e}); extract into a new folder')
    if not isinstance(rec, dict):
        raise LatentFileError(f'{path}: expected a JSON object, got {type(rec).__name__}')
    return rec


def provenance_differences(recorded: dict, current: dict, keys: Optional[tuple[str, ...]] = None) -> list[str]:
    """``'key: recorded X, this run Y'`` for every key of ``keys`` (default: those of ``current``) that differs;
    a key the record lacks counts as different (a folder written before provenance was recorded)."""
    diffs = []
    for k in keys or tuple(current):
        if recorded.get(k, '<not recorded>') != current.get(k):
            diffs.append(f'{k}: recorded {recorded.get(k, "<not recorded>")!r}, this run {current.get(k)!r}')
    return diffs
