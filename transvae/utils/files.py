"""Two file primitives the library shares: a streaming sha256 and an exclusive advisory lock between processes."""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

try:  # POSIX advisory locks; elsewhere the callers' atomic renames alone keep their files consistent
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ['sha256_file', 'exclusive_lock']


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
