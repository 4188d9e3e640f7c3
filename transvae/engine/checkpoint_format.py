"""What a checkpoint file claims, checked before anything is allocated (headers only, nothing unpickled).

:func:`check_file_structure` recognises the format by content (:func:`sniff_format`: torch zip, legacy torch pickle,
safetensors) and checks it against the file's real size, so memory is bounded by the file and a truncated or
malformed file is a :class:`~transvae.engine.checkpoint_compat.CheckpointFileError` naming the file, never a raw
library traceback: a zip's entries must be stored uncompressed (as torch writes them) and lie inside the file; a
safetensors header must be JSON whose every tensor (dtype, shape, byte range) lies inside the file, ranges not
overlapping (:func:`read_safetensors_header`). ``checkpoint_io`` runs it before every load, ``remote_checkpoint``
before a download is cached.
"""
from __future__ import annotations

import json
import os.path as osp
import struct
import zipfile
from typing import Optional

from .checkpoint_compat import CheckpointFileError

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
    # safetensors first: its 8-byte little-endian header length may start with 0x80 or 'PK' (1 file in ~32 started
    # 0x80 and was refused); byte 8 is never '{' in a torch zip (compression method) or legacy file (magic number)
    if len(head) == 9 and head[8:9] == b'{':
        return 'safetensors'
    if head[:2] == b'PK':
        return 'zip'
    if head[:1] == b'\x80':  # pickle protocol >= 2: torch's legacy format starts with a pickled magic number
        return 'legacy'
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


__all__ = ['SAFETENSORS_DTYPES', 'sniff_format', 'check_file_structure', 'read_safetensors_header']
