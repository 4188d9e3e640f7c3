"""Checkpoint files without arbitrary unpickling: safe encoding on save, ``weights_only`` loading, ``.safetensors``.

A transvae checkpoint holds only tensors, Python containers and scalars, so ``torch.load(weights_only=True)`` reads
it with no allow-list at all. The two non-tensor types mmengine puts into a checkpoint are encoded on save and
decoded on load (:func:`encode_checkpoint` / :func:`decode_checkpoint`):

* ``mmengine.logging.HistoryBuffer`` (the message hub's scalars; its pickle calls ``builtins.getattr``, which no
  safe unpickler may allow) -> ``{'__transvae_type__': 'HistoryBuffer', 'log_history': Tensor, ...}``;
* ``numpy`` arrays (the numpy RNG state) -> ``{'__transvae_type__': 'ndarray', 'data': Tensor, 'dtype': str}``;
  numpy scalars -> Python numbers;
* in one rank's file of a sharded FSDP checkpoint (``state_dict_cfg='local'``), ``ShardedTensor`` -> its local
  shards as tensors with their offsets, rebuilt collectively on resume.

:func:`load_checkpoint_file` is the one loader every tool and :func:`transvae.apis.init_model` use; importing this
module makes it mmengine's loader for local paths and every remote scheme (:func:`register_mmengine_loaders`, called
once, at the end of this module), so ``load_from``, ``resume`` and ``init_cfg=Pretrained`` go through it. A file
that needs arbitrary unpickling (a checkpoint written before this encoding, or a hostile one) is refused with
:class:`UntrustedCheckpointError` unless the caller opts in with ``trusted=True`` (tools: ``--trust-checkpoint``);
the refusal names the globals the file would import, found without executing anything.

Files are checked against what they claim before anything is allocated
(:func:`~transvae.engine.checkpoint_format.check_file_structure`), so memory is bounded by the file's real size and a
truncated or malformed file is a :class:`CheckpointFileError` naming the file, never a raw library traceback; the
loaded object must be a dict. Remote checkpoints (``http(s)://``, ``torchvision://``, ``open-mmlab://``,
``mmcls://``, ``s3://``, ...) are downloaded, verified and cached by :mod:`transvae.engine.remote_checkpoint` and then
read by the same code.

Modules, bottom to top: ``checkpoint_compat`` (errors, does a checkpoint fit the model), ``checkpoint_format`` (file
headers), ``remote_checkpoint`` (remote name -> verified local file), this module (reading, and mmengine's loaders).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os.path as osp
import pickle
import re
from collections.abc import Callable, Iterator
from typing import Any, Optional

import numpy as np
import torch

from transvae.utils.errors import InputNotFoundError, UserInputError

from . import remote_checkpoint
from .checkpoint_compat import CheckpointFileError, check_checkpoint_fits, state_dict_of, strip_prefix
from .checkpoint_format import check_file_structure, read_safetensors_header

TYPE_KEY = '__transvae_type__'
SAFETENSORS_META_KEY = 'transvae_meta'
#: meta keys copied into a .safetensors export (the config text is kept; everything is JSON)
_EXPORT_META_KEYS = ('config_file', 'experiment_name', 'iter', 'epoch', 'time', 'seed', 'cfg')

_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar('transvae_trusted_checkpoints', default=False)


class UntrustedCheckpointError(UserInputError, pickle.UnpicklingError):
    """A checkpoint needs arbitrary unpickling (it could run code) and the caller did not opt in."""


# ---------------------------------------------------------------------------------------------------------------------
# encoding of the non-tensor objects mmengine puts into a checkpoint
# ---------------------------------------------------------------------------------------------------------------------
def encode_checkpoint(obj: Any) -> Any:
    """``obj`` with HistoryBuffers, numpy arrays / scalars and ShardedTensors replaced by tensors / plain data
    (recursive)."""
    from mmengine.logging import HistoryBuffer
    if is_sharded_tensor(obj):
        return {TYPE_KEY: 'ShardedTensor', 'size': list(obj.size()),
                'shards': [{'tensor': s.tensor, 'offsets': list(s.metadata.shard_offsets),
                            'sizes': list(s.metadata.shard_sizes)} for s in obj.local_shards()]}
    if isinstance(obj, HistoryBuffer):
        log, count = obj.data
        return {TYPE_KEY: 'HistoryBuffer', 'log_history': _encode_array(np.asarray(log)),
                'count_history': _encode_array(np.asarray(count)), 'max_length': int(obj.max_length)}
    if isinstance(obj, np.ndarray):
        return _encode_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict,) or _is_ordered(obj) else {}
        for k, v in obj.items():
            out[k] = encode_checkpoint(v)
        if hasattr(obj, '_metadata'):
            out._metadata = obj._metadata  # type: ignore[attr-defined]
        return out
    if isinstance(obj, list):
        return [encode_checkpoint(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        return tuple(encode_checkpoint(v) for v in obj)
    return obj


def is_sharded_tensor(obj: Any) -> bool:
    """A ``torch.distributed`` ``ShardedTensor`` (FSDP's local state dicts), without importing that module."""
    return type(obj).__name__ == 'ShardedTensor' and type(obj).__module__.startswith('torch.distributed')


def _decode_sharded_tensor(obj: dict) -> Any:
    """Rebuild this rank's part of a ``ShardedTensor`` (an FSDP ``state_dict_cfg='local'`` checkpoint). Collective:
    every rank decodes its own file, in the same order."""
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError('this is one rank\'s file of a sharded FSDP checkpoint (state_dict_cfg=\'local\'): it can '
                         'only be resumed by the same number of ranks. For a checkpoint that tools and '
                         'transvae.apis can read, train with state_dict_cfg=\'full\'.')
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharded_tensor import Shard, init_from_local_shards
    rank = dist.get_rank()
    shards = [Shard(s['tensor'], ShardMetadata(shard_offsets=list(s['offsets']), shard_sizes=list(s['sizes']),
                                               placement=f'rank:{rank}/{s["tensor"].device}')) for s in obj['shards']]
    return init_from_local_shards(shards, *obj['size'])


def _is_ordered(obj: Any) -> bool:
    from collections import OrderedDict
    return type(obj) is OrderedDict


def _encode_array(a: np.ndarray) -> dict:
    dtype = str(a.dtype)
    data = a.astype(np.int64) if a.dtype in (np.uint32, np.uint16) else a
    if data.dtype == object:
        raise TypeError('object arrays cannot be stored in a safe checkpoint')
    return {TYPE_KEY: 'ndarray', 'data': torch.from_numpy(np.ascontiguousarray(data)).clone(), 'dtype': dtype}


def decode_checkpoint(obj: Any) -> Any:
    """Inverse of :func:`encode_checkpoint` (recursive; unknown objects are returned as they are)."""
    if isinstance(obj, dict):
        kind = obj.get(TYPE_KEY) if all(isinstance(k, str) for k in obj) else None
        if kind == 'ndarray':
            return obj['data'].numpy().astype(obj['dtype'])
        if kind == 'ShardedTensor':
            return _decode_sharded_tensor(obj)
        if kind == 'HistoryBuffer':
            from mmengine.logging import HistoryBuffer
            return HistoryBuffer(decode_checkpoint(obj['log_history']), decode_checkpoint(obj['count_history']),
                                 int(obj['max_length']))
        out = type(obj)() if type(obj) is dict or _is_ordered(obj) else {}
        for k, v in obj.items():
            out[k] = decode_checkpoint(v)
        if hasattr(obj, '_metadata'):
            out._metadata = obj._metadata  # type: ignore[attr-defined]
        return out
    if isinstance(obj, list):
        return [decode_checkpoint(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        return tuple(decode_checkpoint(v) for v in obj)
    return obj


# ---------------------------------------------------------------------------------------------------------------------
# trust
# ---------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def trusted_checkpoints(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`load_checkpoint_file` (and mmengine's local loads) may unpickle arbitrary objects.

    Only for files whose origin you trust: unpickling can run code. The tools' ``--trust-checkpoint`` enters it.
    """
    token = _TRUSTED.set(bool(enabled) or _TRUSTED.get())
    try:
        yield
    finally:
        _TRUSTED.reset(token)


_NOT_READABLE = '<not a zip-format torch checkpoint>'


def _unsafe_globals(path: str) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint (legacy torch format), or a malformed pickle
        return [_NOT_READABLE]


def _refusal(path: str, err: Exception, name: Optional[str] = None) -> UntrustedCheckpointError:
    names = _unsafe_globals(path)
    if names == [_NOT_READABLE]:  # legacy format: torch's message names the first global it refused
        names = re.findall(r'GLOBAL ([\w.]+)', str(err))[:1] or names
    shown = ', '.join(names[:6]) + (f' and {len(names) - 6} more' if len(names) > 6 else '')
    legacy = any(n.startswith('mmengine.logging') for n in names) and not any(
        n.split('.')[0] in ('os', 'posix', 'nt', 'subprocess', 'builtins', 'sys', 'shutil') and
        not n.endswith('getattr') for n in names)
    hint = (' It looks like an mmengine checkpoint written before transvae saved checkpoints safely; if you wrote it '
            'yourself, convert it once with `python tools/model_converters/to_safetensors.py '
            f'{path} --trust-checkpoint`.' if legacy else '')
    return UntrustedCheckpointError(
        f'Refusing to load {name or path}: it needs arbitrary unpickling, which can run code (it imports '
        f'{shown or "?"}).'
        f'{hint} To load a file you trust anyway, pass trusted=True (Python API) or --trust-checkpoint (tools). '
        f'[torch: {str(err).splitlines()[0][:200]}]')


# ---------------------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------------------
def load_checkpoint_file(path: str, map_location: Any = 'cpu', trusted: Optional[bool] = None, *,
                         source: Optional[str] = None) -> dict:
    """Read a checkpoint without running pickled code.

    Args:
        path: a torch checkpoint (``.pth``; an mmengine dict with ``state_dict`` / ``meta``, or a plain state dict)
            or a ``.safetensors`` file (returned as ``{'state_dict': ..., 'meta': ...}``), recognised by content;
            or a remote checkpoint (``http(s)://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://``,
            ``s3://``...; :mod:`transvae.engine.remote_checkpoint`: downloaded to a cache, verified, read as a
            local file).
        map_location: as :func:`torch.load`.
        trusted: allow arbitrary unpickling (only for files you trust). ``None``: the innermost
            :func:`trusted_checkpoints` block decides (default: not trusted).
        source: how the file is named in errors (e.g. the URL it was downloaded from); default ``path``.

    Returns:
        The checkpoint with mmengine's objects restored (:func:`decode_checkpoint`); always a dict.

    Raises:
        InputNotFoundError: no such file (a ``FileNotFoundError`` and a ``UserInputError``).
        UntrustedCheckpointError: the file needs arbitrary unpickling and it is not trusted.
        CheckpointFileError: the file is empty, truncated, malformed, not a dict, or could not be fetched.
    """
    path = str(path)
    if remote_checkpoint.is_remote(path):
        with remote_checkpoint.local_copy(path) as (local, shown):
            ckpt = load_checkpoint_file(local, map_location=map_location, trusted=trusted, source=shown)
        return remote_checkpoint.as_mmengine_loads(path, ckpt)
    path = osp.expanduser(path)
    if not osp.isfile(path):
        if '://' in path:
            raise remote_checkpoint.unsupported_scheme_error(path)
        raise InputNotFoundError(f'checkpoint not found: {path}')
    name = source or path
    fmt = check_file_structure(path, name)
    if fmt == 'safetensors':
        return load_safetensors(path, device=map_location if isinstance(map_location, str) else 'cpu', name=name)
    trusted = _TRUSTED.get() if trusted is None else bool(trusted)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if trusted:
            raise _file_error(name, path, e) from None
        names = _unsafe_globals(path) if fmt == 'zip' else []
        unsafe = (names and names != [_NOT_READABLE]) if fmt == 'zip' else 'GLOBAL' in str(e)
        if not unsafe:  # nothing it would import: the pickle is malformed
            raise _file_error(name, path, e) from None
        raise _refusal(path, e, name) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - torch / miniz / struct errors of a malformed file
        raise _file_error(name, path, e) from None
    if not isinstance(ckpt, dict):
        raise CheckpointFileError(
            f'{name} is not a checkpoint: it holds a {type(ckpt).__name__}, expected a dict (an mmengine checkpoint '
            "with 'state_dict' or a plain state dict)")
    if 'state_dict' in ckpt and not isinstance(ckpt['state_dict'], dict):
        raise CheckpointFileError(f"{name}: its 'state_dict' is a {type(ckpt['state_dict']).__name__}, expected a "
                                  'dict of tensors')
    if not trusted:
        ckpt = _drop_executable_meta(ckpt)
    try:
        return decode_checkpoint(ckpt)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        raise CheckpointFileError(f'{name}: a malformed {TYPE_KEY!r} entry ({type(e).__name__}: {e})') from None


def _file_error(name: str, path: str, err: BaseException) -> CheckpointFileError:
    size = osp.getsize(path) if osp.exists(path) else 0
    first = (str(err).strip().splitlines() or [''])[0][:200]
    detail = f'{type(err).__name__}: {first}' if first else f'{type(err).__name__} (it ends too early)'
    return CheckpointFileError(f'{name} is not a readable checkpoint ({size} bytes; it is truncated or corrupt: '
                               f'{detail}). Copy or download it again.')


def load_weights(model: torch.nn.Module, checkpoint: str, config_name: Optional[str] = None,
                 allow_partial: bool = True, trusted: Optional[bool] = None,
                 tool_hint: str = '`python tools/test.py {config} {ckpt}`') -> dict:
    """Load the weights of ``checkpoint`` into ``model`` after checking that they fit (the tools' one entry point).

    Args:
        model: the built (unwrapped) model.
        checkpoint: ``.pth`` or ``.safetensors`` path.
        config_name: the config ``model`` was built from (named in a mismatch error).
        allow_partial: submodules present on one side only are allowed (``checkpoint_compat``).
        trusted: see :func:`load_checkpoint_file`.
        tool_hint: the fix shown in a mismatch error (``{config}``, ``{ckpt}`` filled in).

    Returns:
        The loaded checkpoint.
    """
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu', trusted=trusted)
    check_checkpoint_fits(model, ckpt, str(checkpoint), config_name, allow_partial=allow_partial,
                          tool_hint=tool_hint)
    model.load_state_dict(strip_prefix(state_dict_of(ckpt)), strict=not allow_partial)
    return ckpt


def _drop_executable_meta(ckpt: Any) -> Any:
    """mmengine's ``resume`` executes ``meta['config']`` as a Python config: an untrusted file must not carry one."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get('meta'), dict):
        ckpt['meta'].pop('config', None)
    return ckpt


# ---------------------------------------------------------------------------------------------------------------------
# mmengine's CheckpointLoader
# ---------------------------------------------------------------------------------------------------------------------
def _mmengine_loader(backend: str) -> Callable[..., dict]:
    def loader(filename: str, map_location: Any = None) -> dict:
        return load_checkpoint_file(filename, map_location=map_location)
    loader.__name__ = loader.__qualname__ = f'load_from_{backend}'  # mmengine logs `name[10:]` as the backend name
    loader.__doc__ = f'mmengine CheckpointLoader scheme ({backend}): :func:`load_checkpoint_file`.'
    return loader


#: mmengine's prefix groups (local paths: ``''``) -> our loader, named as mmengine names its own (same log line)
MMENGINE_SCHEMES = {prefixes: _mmengine_loader(backend)
                    for backend, prefixes in {'local': ('', ), **remote_checkpoint.MMENGINE_REMOTE_SCHEMES}.items()}


def register_mmengine_loaders() -> None:
    """Make :func:`load_checkpoint_file` mmengine's loader for local paths and every remote scheme mmengine knows
    (:data:`MMENGINE_SCHEMES`, over mmengine's own), so ``load_from``, ``resume``, ``init_cfg=Pretrained`` and
    ``CheckpointLoader.load_checkpoint`` never reach an unrestricted ``torch.load`` (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    for prefixes, loader in MMENGINE_SCHEMES.items():
        if any(CheckpointLoader._schemes.get(p) is not loader for p in prefixes):
            CheckpointLoader.register_scheme(prefixes=list(prefixes), loader=loader, force=True)


def foreign_schemes() -> dict:
    """Prefixes of mmengine's ``CheckpointLoader`` whose loader is not transvae's (should be empty)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    return {p: f'{fn.__module__}.{fn.__name__}' for p, fn in CheckpointLoader._schemes.items()
            if not getattr(fn, '__module__', '').startswith('transvae.')}


# ---------------------------------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------------------------------
def export_safetensors(ckpt: dict, out_path: str) -> int:
    """Write the weights of ``ckpt`` (and its JSON-able meta) to ``out_path``; returns the number of tensors.

    Tensors are stored contiguous and unshared (safetensors refuses shared storage); non-tensor state-dict entries
    are refused.
    """
    from safetensors.torch import save

    from transvae.engine.atomic_io import atomic_write
    sd = state_dict_of(ckpt)
    tensors = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            raise TypeError(f'state_dict entry {k!r} is a {type(v).__name__}, not a tensor')
        tensors[k] = v.detach().cpu().contiguous().clone()
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    info = {k: meta[k] for k in _EXPORT_META_KEYS if isinstance(meta, dict) and k in meta}
    metadata = {SAFETENSORS_META_KEY: json.dumps(info, default=str)}
    blob = save(tensors, metadata=metadata)
    atomic_write(out_path, lambda f: f.write(blob))
    return len(tensors)


def load_safetensors(path: str, device: str = 'cpu', name: Optional[str] = None) -> dict:
    """``{'state_dict': tensors, 'meta': dict}`` of a ``.safetensors`` file (meta from :func:`export_safetensors`).

    The header is checked first (:func:`read_safetensors_header`); any error is a :class:`CheckpointFileError`
    naming ``name`` (default ``path``).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file
    name = name or path
    read_safetensors_header(path, name)
    try:
        state_dict = load_file(path, device=device if device not in (None, 'default') else 'cpu')
        with safe_open(path, framework='pt') as f:
            md = f.metadata() or {}
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends
        raise _file_error(name, path, e) from None
    try:
        meta = json.loads(md.get(SAFETENSORS_META_KEY, '{}'))
    except ValueError:
        meta = {}
    return {'state_dict': state_dict, 'meta': meta if isinstance(meta, dict) else {}}


register_mmengine_loaders()  # the one place the loaders are installed: whoever can load a checkpoint has them

__all__ = ['UntrustedCheckpointError', 'encode_checkpoint', 'decode_checkpoint', 'trusted_checkpoints',
           'load_checkpoint_file', 'load_weights', 'MMENGINE_SCHEMES', 'register_mmengine_loaders', 'foreign_schemes',
           'export_safetensors', 'load_safetensors']
