"""File primitives the library shares: a streaming sha256, an exclusive advisory lock between processes, and a
checked read of a JSON object file."""
from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator

try:  # POSIX advisory locks; elsewhere the callers' atomic renames alone keep their files consistent
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ['sha256_file', 'exclusive_lock', 'read_json_object']


def sha256_file(path: str, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``, read in ``chunk_bytes`` chunks (memory bounded by the chunk)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b''):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block: processes on one host
    take turns. A no-op where ``fcntl`` is missing. The lock file itself is left in place (deleting it would let a
    waiter and a newcomer lock two different files)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, 'a') as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_json_object(path: str, error: type[Exception] = ValueError) -> dict:
    """The JSON object (a ``dict``) in the UTF-8 file ``path``; ``error(message)`` when the file is not valid JSON or
    holds another JSON value (a missing file raises ``FileNotFoundError``: the callers check for it with their own
    message first)."""
    try:
        with open(path, encoding='utf-8') as f:
            value = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f'{path} is not valid JSON: {e}') from None
    if not isinstance(value, dict):
        raise error(f'{path} is not a JSON object')
    return value
