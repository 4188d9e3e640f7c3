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

:func:`load_checkpoint_file` is the one loader every tool and :func:`transvae.apis.init_model` use (it is also
mmengine's loader for local paths once this module is imported, so ``load_from`` / ``resume`` go through it). A file
that needs arbitrary unpickling (a checkpoint written before this encoding, or a hostile one) is refused with
:class:`UntrustedCheckpointError` unless the caller opts in with ``trusted=True`` (tools: ``--trust-checkpoint``);
the refusal names the globals the file would import, found without executing anything.

Files are checked against what they claim before anything is allocated (:func:`check_file_structure`), so memory is
bounded by the file's real size and a truncated or malformed file is a :class:`CheckpointFileError` naming the file,
never a raw library traceback: the format is recognised by content (torch zip, legacy torch pickle, safetensors); a
zip's entries must be stored uncompressed (as torch writes them) and lie inside the file; a safetensors header must
be JSON whose every tensor (dtype, shape, byte range) lies inside the file, ranges not overlapping; the loaded object
must be a dict. Remote checkpoints (``http(s)://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://``, ``s3://``,
...) are downloaded, verified and cached by :mod:`transvae.engine.remote_checkpoint` and then read by the same code.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os.path as osp
import pickle
import re
import struct
import zipfile
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np
import torch

from transvae.utils.errors import UserInputError

from .checkpoint_compat import CheckpointFileError

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
        FileNotFoundError: no such file.
        UntrustedCheckpointError: the file needs arbitrary unpickling and it is not trusted.
        CheckpointFileError: the file is empty, truncated, malformed, not a dict, or could not be fetched.
    """
    path = str(path)
    from .remote_checkpoint import is_remote, load_remote
    if is_remote(path):
        return load_remote(path, map_location=map_location, trusted=trusted)
    path = osp.expanduser(path)
    if not osp.isfile(path):
        if '://' in path:
            from .remote_checkpoint import unsupported_scheme_error
            raise unsupported_scheme_error(path)
        raise FileNotFoundError(f'checkpoint not found: {path}')
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


# ---------------------------------------------------------------------------------------------------------------------
# what a file claims, checked before anything is allocated
# ---------------------------------------------------------------------------------------------------------------------
#: safetensors dtypes -> bytes per element (``safetensors`` 0.4+ names)
SAFETENSORS_DTYPES = {'BOOL': 1, 'U8': 1, 'I8': 1, 'F8_E5M2': 1, 'F8_E4M3': 1, 'I16': 2, 'U16': 2, 'F16': 2,
                      'BF16': 2, 'I32': 4, 'U32': 4, 'F32': 4, 'I64': 8, 'U64': 8, 'F64': 8}
_MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit


def sniff_format(path: str) -> str:
    """``'zip'`` (torch >= 1.6), ``'legacy'`` (older torch pickle), ``'safetensors'``, ``'empty'`` or ``'unknown'``,
    from the first bytes of the file."""
    try:
        with open(path, 'rb') as f:
            head = f.read(9)
    except OSError as e:
        raise CheckpointFileError(f'cannot read {path}: {e.strerror}') from None
    if not head:
        return 'empty'
    if head[:2] == b'PK':
        return 'zip'
    if head[:1] == b'\x80':  # pickle protocol >= 2: torch's legacy format starts with a pickled magic number
        return 'legacy'
    if len(head) == 9 and head[8:9] == b'{':
        return 'safetensors'
    return 'unknown'


def check_file_structure(path: str, name: Optional[str] = None) -> str:
    """Check that the file at ``path`` is what it claims, reading only its headers; return its format.

    Raises:
        CheckpointFileError: empty, not a checkpoint format, a zip with compressed or out-of-file entries, a
            safetensors header that is not JSON or claims bytes outside the file (message names ``name``).
    """
    name = name or path
    fmt = sniff_format(path)
    if path.endswith('.safetensors') and fmt != 'safetensors':
        raise CheckpointFileError(f'{name} is not a safetensors file ({_describe(path, fmt)})')
    if fmt == 'empty':
        raise CheckpointFileError(f'{name} is empty (0 bytes): not a checkpoint (an interrupted copy or download?)')
    if fmt == 'unknown':
        raise CheckpointFileError(f'{name} is not a checkpoint ({_describe(path, fmt)}): expected a torch file '
                                  '(.pth, a zip or a legacy pickle) or .safetensors')
    if fmt == 'zip':
        _check_torch_zip(path, name)
    elif fmt == 'safetensors':
        read_safetensors_header(path, name)
    return fmt


def _describe(path: str, fmt: str) -> str:
    with open(path, 'rb') as f:
        head = f.read(16)
    return f'{osp.getsize(path)} bytes, starting {head!r}' if head else '0 bytes'


def _check_torch_zip(path: str, name: str) -> None:
    size = osp.getsize(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as e:
        raise CheckpointFileError(f'{name} is not a readable checkpoint: its zip directory is broken ({e}); the file '
                                  f'({size} bytes) is truncated or corrupt. Copy or download it again.') from None
    if not any(i.filename.endswith('data.pkl') for i in infos):
        raise CheckpointFileError(f'{name} is a zip file but not a torch checkpoint (no data.pkl among its '
                                  f'{len(infos)} entries)')
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED]
    claimed = sum(i.file_size for i in infos)
    if packed:
        raise CheckpointFileError(
            f'{name}: {len(packed)} zip entries are compressed (e.g. {packed[0]}), which torch never writes; '
            f'unpacked they claim {claimed} bytes from a {size}-byte file. Refusing to inflate them.')
    outside = [i.filename for i in infos if i.header_offset + i.file_size > size]
    if outside or claimed > size:
        raise CheckpointFileError(f'{name}: its zip entries claim {claimed} bytes but the file has {size} '
                                  f'(e.g. {(outside or [infos[0].filename])[0]}); it is truncated or corrupt')


def read_safetensors_header(path: str, name: Optional[str] = None) -> dict:
    """The JSON header of a ``.safetensors`` file, checked against the file's real size.

    Every tensor entry must have a known ``dtype``, a ``shape`` of non-negative ints and ``data_offsets`` inside the
    data section whose length is ``prod(shape) * itemsize``; ranges must not overlap.

    Raises:
        CheckpointFileError: naming the file and the first entry that lies.
    """
    name = name or path
    size = osp.getsize(path)
    if size < 8:
        raise CheckpointFileError(f'{name}: {size} bytes is too short for a safetensors file (8-byte header length)')
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        if n > size - 8 or n > _MAX_SAFETENSORS_HEADER:
            raise CheckpointFileError(f'{name}: its safetensors header claims {n} bytes but the file has {size}; '
                                      'it is truncated or not a safetensors file')
        raw = f.read(n)
    try:
        header = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointFileError(f'{name}: its safetensors header is not JSON ({e})') from None
    if not isinstance(header, dict):
        raise CheckpointFileError(f'{name}: its safetensors header is a {type(header).__name__}, expected an object')
    data_len = size - 8 - n
    spans = []
    for key, info in header.items():
        if key == '__metadata__':
            if not (isinstance(info, dict) and all(isinstance(v, str) for v in info.values())):
                raise CheckpointFileError(f'{name}: its safetensors __metadata__ must map strings to strings')
            continue
        where = f'{name}: tensor {key!r}'
        if not isinstance(info, dict) or set(info) - {'dtype', 'shape', 'data_offsets'}:
            raise CheckpointFileError(f'{where}: expected {{dtype, shape, data_offsets}}, got {str(info)[:100]}')
        dtype, shape, offsets = info.get('dtype'), info.get('shape'), info.get('data_offsets')
        if dtype not in SAFETENSORS_DTYPES:
            raise CheckpointFileError(f'{where}: unsupported dtype {dtype!r} (expected one of '
                                      f'{", ".join(SAFETENSORS_DTYPES)})')
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise CheckpointFileError(f'{where}: shape {shape!r} is not a list of non-negative ints')
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise CheckpointFileError(f'{where}: data_offsets {offsets!r} are not [begin, end] with 0 <= begin <= end')
        if offsets[1] > data_len:
            raise CheckpointFileError(f'{where} claims bytes {offsets[0]}..{offsets[1]} of a {data_len}-byte data '
                                      f'section (the file has {size} bytes): it is truncated or its header lies')
        numel = 1
        for d in shape:
            numel *= d
        if numel * SAFETENSORS_DTYPES[dtype] != offsets[1] - offsets[0]:
            raise CheckpointFileError(f'{where}: {dtype}{shape} needs {numel * SAFETENSORS_DTYPES[dtype]} bytes but '
                                      f'its data_offsets span {offsets[1] - offsets[0]}')
        spans.append((offsets[0], offsets[1], key))
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise CheckpointFileError(f'{name}: tensors {a!r} and {b!r} overlap in the file')
    return header


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
    from .checkpoint_compat import check_checkpoint_fits, strip_prefix
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


def _mmengine_local_loader(filename: str, map_location: Any = None) -> dict:
    """mmengine ``CheckpointLoader`` scheme for local paths (replaces its unrestricted ``torch.load``)."""
    return load_checkpoint_file(filename, map_location=map_location)


_mmengine_local_loader.__name__ = 'load_from_local'  # mmengine logs `name[10:]` as the backend name


def register_mmengine_loader() -> None:
    """Make :func:`load_checkpoint_file` mmengine's loader for local paths and every remote scheme mmengine knows
    (``remote_checkpoint.register_remote_loaders``), so ``load_from``, ``resume``, ``init_cfg=Pretrained`` and
    ``CheckpointLoader.load_checkpoint`` never reach an unrestricted ``torch.load`` (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from .remote_checkpoint import register_remote_loaders
    if CheckpointLoader._schemes.get('') is not _mmengine_local_loader:
        CheckpointLoader.register_scheme(prefixes='', loader=_mmengine_local_loader, force=True)
    register_remote_loaders()


# ---------------------------------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------------------------------
def state_dict_of(ckpt: Any) -> dict:
    """The model weights of a loaded checkpoint (``state_dict`` of an mmengine dict, or the dict itself)."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        return ckpt['state_dict']
    if isinstance(ckpt, dict):
        return ckpt
    raise TypeError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')


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


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(encode_checkpoint(obj))`` through a temp file + ``os.replace`` (see ``runner.atomic_write``)."""
    from transvae.engine.atomic_io import atomic_write
    encoded = encode_checkpoint(obj)
    atomic_write(path, lambda f: torch.save(encoded, f))


register_mmengine_loader()

__all__ = ['UntrustedCheckpointError', 'CheckpointFileError', 'check_file_structure', 'read_safetensors_header',
           'sniff_format', 'encode_checkpoint', 'decode_checkpoint', 'trusted_checkpoints',
           'load_checkpoint_file', 'load_weights', 'register_mmengine_loader', 'state_dict_of', 'export_safetensors',
           'load_safetensors', 'atomic_torch_save']
