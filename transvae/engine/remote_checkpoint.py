"""Remote checkpoints: downloaded to a cache keyed by the full URL, verified, then read like a local file.

mmengine's ``CheckpointLoader`` resolves ``http(s)://`` with ``torch.hub.load_state_dict_from_url`` (a full
``torch.load``, and a cache keyed by the file name only, so a later URL ending in the same name gets the first one's
file) and several other schemes with plain ``torch.load``. ``checkpoint_io`` replaces every one of them
(:data:`MMENGINE_REMOTE_SCHEMES`, registered by ``checkpoint_io.register_mmengine_loaders``) with
``checkpoint_io.load_checkpoint_file``, which turns a remote path into a verified local file here
(:func:`local_copy`) and reads that, so ``init_model``, ``load_from`` / ``resume``,
``init_cfg=dict(type='Pretrained')``, ``tools/test.py`` and ``tools/extract_latents.py`` all go through it. This
module fetches; it reads nothing:

========================================  ==========================================================================
scheme                                    what happens
========================================  ==========================================================================
``http://``, ``https://``                 streamed (urllib, stdlib) to ``<cache>/<sha256(URL)[:24]>/<file name>``
                                          through a temporary file and ``os.replace``; size bounded; verified; read
                                          by ``load_checkpoint_file`` (``weights_only``, ``--trust-checkpoint``)
``torchvision://``, ``modelzoo://``       name -> URL from torchvision's / mmengine's tables, then as ``https://``
``open-mmlab://``, ``openmmlab://``       name -> URL from mmengine's table (or a file under ``$MMENGINE_HOME``)
``mmcls://``                              name -> URL from mmengine's table, then mmengine's ``backbone.`` filter
``s3://``, ``petrel://`` (and             read through mmengine's petrel backend (size bounded) into a temporary
``<cluster>:s3://``)                      file, checked, read safely, deleted (not cached: the object may change)
``pavi://``                               refused: its client is not installable here and its files are unpickled
========================================  ==========================================================================

Verification: a downloaded file must have the ``Content-Length`` the server announced, must not exceed
:func:`max_download_bytes`, must match a sha256 when one is known, and must pass
``checkpoint_format.check_file_structure`` before it is cached; a failed download leaves nothing in the cache. A sha256
is known from an ``#sha256=<64 hex>`` fragment of the URL, the ``sha256`` argument of :func:`fetch_url`, or the
torch-hub file-name convention ``name-<hex>.ext`` with at least 8 hex digits (the digest must start with them, as
``torch.hub`` checks with ``check_hash=True``); the name convention is applied to the URLs of the named schemes and of
``download.pytorch.org`` / ``download.openmmlab.com``, whose files all follow it, not to other hosts (where
``model-20240101.pth`` is a date, not a hash). A cached file is re-hashed whenever a sha256 is known, and downloaded
again if it differs. Cache: ``$TRANSVAE_CACHE_DIR/checkpoints`` (default ``~/.cache/transvae/checkpoints``); bound:
``$TRANSVAE_MAX_DOWNLOAD_MB`` (default 16384). Processes that fetch one URL at once on one host take turns on a lock
file, so the file is downloaded once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import os.path as osp
import re
import secrets
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Optional

from transvae.utils.files import exclusive_lock, sha256_file

from .checkpoint_compat import CheckpointFileError
from .checkpoint_format import check_file_structure

#: default bound on one download (MiB), overridable by ``$TRANSVAE_MAX_DOWNLOAD_MB``
DEFAULT_MAX_DOWNLOAD_MB = 16384
_HTTP = ('http://', 'https://')
_TORCHVISION = ('torchvision://', 'modelzoo://')
_OPENMMLAB = ('open-mmlab://', 'openmmlab://')
_MMCLS = ('mmcls://',)
_PAVI = ('pavi://',)
_CEPH = (r'(\S+\:)?s3://', r'(\S+\:)?petrel://')  # mmengine's regular expressions for its ceph loader
_HUB_HASH = re.compile(r'-([a-f0-9]{8,64})\.')  # torch.hub's HASH_REGEX, at least 8 digits
#: hosts whose file names carry the sha256 prefix (torch-hub convention)
HASH_NAMED_HOSTS = ('download.pytorch.org', 'download.openmmlab.com')
_SHA256_FRAGMENT = re.compile(r'(?:^|&)sha256=([0-9a-fA-F]{64})(?:&|$)')


class RemoteCheckpointError(CheckpointFileError):
    """A remote checkpoint could not be fetched or verified, or its scheme is refused."""


# ---------------------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------------------
def cache_dir() -> str:
    """Where downloaded checkpoints are kept: ``$TRANSVAE_CACHE_DIR/checkpoints``, default
    ``~/.cache/transvae/checkpoints`` (``$XDG_CACHE_HOME/transvae/checkpoints`` where that is set)."""
    root = os.environ.get('TRANSVAE_CACHE_DIR') or osp.join(
        os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache'), 'transvae')
    return osp.join(osp.expanduser(root), 'checkpoints')


def max_download_bytes() -> int:
    """The largest download accepted: ``$TRANSVAE_MAX_DOWNLOAD_MB`` MiB (default :data:`DEFAULT_MAX_DOWNLOAD_MB`)."""
    raw = os.environ.get('TRANSVAE_MAX_DOWNLOAD_MB', '')
    try:
        mb = float(raw) if raw else DEFAULT_MAX_DOWNLOAD_MB
    except ValueError:
        raise ValueError(f'TRANSVAE_MAX_DOWNLOAD_MB={raw!r} is not a number (MiB)') from None
    if not mb > 0:
        raise ValueError(f'TRANSVAE_MAX_DOWNLOAD_MB={raw!r} must be > 0 (MiB)')
    return int(mb * 2**20)


# ---------------------------------------------------------------------------------------------------------------------
# schemes
# ---------------------------------------------------------------------------------------------------------------------
def _matches(path: str, prefixes: tuple) -> bool:
    return any(re.match(p, path) for p in prefixes)


def is_remote(path: str) -> bool:
    """Whether ``path`` names a checkpoint through one of mmengine's remote schemes (see the module docstring)."""
    return isinstance(path, str) and _matches(path, _HTTP + _TORCHVISION + _OPENMMLAB + _MMCLS + _PAVI + _CEPH)


def unsupported_scheme_error(path: str) -> RemoteCheckpointError:
    scheme = path.split('://', 1)[0]
    return RemoteCheckpointError(
        f'{path}: no such file, and {scheme}:// is not a checkpoint scheme transvae reads (supported: http://, '
        'https://, torchvision://, open-mmlab://, openmmlab://, mmcls://, s3://, petrel://; or a local path)')


def split_sha256(url: str) -> tuple[str, Optional[str]]:
    """``(url without its fragment, sha256 from a '#sha256=<64 hex>' fragment or None)``."""
    base, _, fragment = url.partition('#')
    m = _SHA256_FRAGMENT.search(fragment)
    if fragment and not m and 'sha256' in fragment:
        raise RemoteCheckpointError(f'{url}: the fragment must be #sha256=<64 hex digits>, got #{fragment}')
    return base, (m.group(1).lower() if m else None)


def hub_hash_prefix(url: str) -> Optional[str]:
    """The sha256 prefix in a torch-hub style file name (``resnet18-f37072fd.pth`` -> ``'f37072fd'``), or None."""
    name = osp.basename(urllib.parse.urlparse(url).path)
    m = _HUB_HASH.search(name)
    return m.group(1) if m else None


def _safe_name(url: str) -> str:
    name = urllib.parse.unquote(osp.basename(urllib.parse.urlparse(url).path))
    name = re.sub(r'[^A-Za-z0-9._-]', '_', name).lstrip('.')[:200]
    return name or 'checkpoint.pth'


# ---------------------------------------------------------------------------------------------------------------------
# download
# ---------------------------------------------------------------------------------------------------------------------
def _hash_problem(digest: str, sha256: Optional[str], prefix: Optional[str]) -> Optional[str]:
    if sha256 and digest != sha256:
        return f'sha256 {digest} differs from the expected {sha256}'
    if prefix and not digest.startswith(prefix):
        return (f'sha256 {digest} does not start with {prefix}, the hash in its file name (torch-hub convention '
                'name-<sha256 prefix>.ext)')
    return None


def _download(url: str, tmp: str, max_bytes: int, timeout: float) -> str:
    """Stream ``url`` into ``tmp``; return the sha256 of what was written. Raises RemoteCheckpointError."""
    req = urllib.request.Request(url, headers={'User-Agent': 'transvae-checkpoint-fetch'})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) only (callers check)
    except urllib.error.HTTPError as e:
        raise RemoteCheckpointError(f'could not download {url}: HTTP {e.code} {e.reason}') from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise RemoteCheckpointError(f'could not download {url}: {getattr(e, "reason", e)}') from None
    h, n = hashlib.sha256(), 0
    with resp:
        final_url = resp.geturl()
        if not final_url.startswith(_HTTP):
            raise RemoteCheckpointError(f'could not download {url}: redirected to {final_url}')
        raw_len = resp.headers.get('Content-Length')
        length = int(raw_len) if raw_len and raw_len.strip().isdigit() else None
        if length is not None and length > max_bytes:
            raise RemoteCheckpointError(f'refusing to download {url}: {length} bytes exceeds the bound of '
                                        f'{max_bytes} (TRANSVAE_MAX_DOWNLOAD_MB)')
        try:
            with open(tmp, 'wb') as f:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    n += len(chunk)
                    if n > max_bytes:
                        raise RemoteCheckpointError(f'refusing to download {url}: more than {max_bytes} bytes '
                                                    '(TRANSVAE_MAX_DOWNLOAD_MB)')
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except RemoteCheckpointError:
            raise
        except (OSError, ValueError) as e:  # http.client.IncompleteRead, connection reset, timeout
            raise RemoteCheckpointError(f'download of {url} broke off after {n} bytes '
                                        f'({type(e).__name__}: {e})') from None
    if length is not None and n != length:
        raise RemoteCheckpointError(f'download of {url} is truncated: {n} of the {length} bytes the server '
                                    'announced; nothing was cached, try again')
    return h.hexdigest()


def fetch_url(url: str, sha256: Optional[str] = None, max_bytes: Optional[int] = None,
              timeout: float = 60.0, name_hash: Optional[bool] = None) -> str:
    """Download an ``http(s)://`` checkpoint into the cache (or find it there) and return the local path.

    Args:
        url: the URL; an ``#sha256=<64 hex>`` fragment gives the expected digest.
        sha256: expected sha256 (hex); overrides the fragment.
        max_bytes: size bound (default :func:`max_download_bytes`).
        timeout: socket timeout in seconds.
        name_hash: check the torch-hub ``name-<sha256 prefix>.ext`` convention; ``None``: for
            :data:`HASH_NAMED_HOSTS` only.

    Returns:
        ``<cache_dir()>/<sha256(url)[:24]>/<file name>``: only a complete, verified, structurally checked file.

    Raises:
        RemoteCheckpointError: HTTP error, unreachable host, truncated or oversized download, wrong sha256, not a
            checkpoint; nothing is cached then.
    """
    base, frag_sha = split_sha256(url)
    if not base.startswith(_HTTP):
        raise RemoteCheckpointError(f'{url}: not an http:// or https:// URL')
    want = (sha256 or frag_sha or '').lower() or None
    if want and not re.fullmatch(r'[0-9a-f]{64}', want):
        raise RemoteCheckpointError(f'{url}: expected sha256 must be 64 hex digits, got {want!r}')
    if name_hash is None:
        name_hash = (urllib.parse.urlparse(base).hostname or '') in HASH_NAMED_HOSTS
    prefix = None if want or not name_hash else hub_hash_prefix(base)
    key = hashlib.sha256(base.encode('utf-8')).hexdigest()[:24]
    folder = osp.join(cache_dir(), key)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise RemoteCheckpointError(f'cannot cache {url}: {folder}: {e.strerror}; set TRANSVAE_CACHE_DIR to a '
                                    'writable folder') from None
    final = osp.join(folder, _safe_name(base))
    bound = max_download_bytes() if max_bytes is None else int(max_bytes)
    with exclusive_lock(osp.join(folder, '.lock')):
        if osp.isfile(final):
            if not (want or prefix) or _hash_problem(sha256_file(final), want, prefix) is None:
                return final
            from mmengine.logging import print_log
            print_log(f'{final} (cached from {base}) does not match the expected sha256: downloading again',
                      logger='current')
        tmp = osp.join(folder, f'.{secrets.token_hex(6)}.{os.getpid()}.tmp-{osp.basename(final)}')  # same suffix
        from mmengine.logging import print_log
        print_log(f'downloading {base} -> {final}', logger='current')
        try:
            digest = _download(base, tmp, bound, timeout)
            problem = _hash_problem(digest, want, prefix)
            if problem:
                raise RemoteCheckpointError(f'download of {url} failed verification: {problem}; nothing was cached')
            try:
                check_file_structure(tmp, f'{url} (downloaded)')
            except CheckpointFileError as e:
                raise RemoteCheckpointError(f'{e}; nothing was cached') from None
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        _write_source(folder, dict(url=base, sha256=digest, bytes=osp.getsize(final), file=osp.basename(final)))
    return final


def _write_source(folder: str, info: dict) -> None:
    tmp = osp.join(folder, f'.source.{secrets.token_hex(4)}.tmp')
    with open(tmp, 'w') as f:
        json.dump(info, f, indent=1)
    os.replace(tmp, osp.join(folder, 'source.json'))


# ---------------------------------------------------------------------------------------------------------------------
# mmengine's named schemes
# ---------------------------------------------------------------------------------------------------------------------
def _lookup(table: dict, name: str, scheme: str) -> str:
    if name in table:
        return table[name]
    import difflib
    close = difflib.get_close_matches(name, list(table), n=3)
    hint = f' Did you mean {", ".join(close)}?' if close else ''
    raise RemoteCheckpointError(f'{scheme}{name}: unknown model name.{hint}')


def resolve_url(path: str) -> str:
    """The ``http(s)://`` URL (or local file) a ``torchvision://`` / ``open-mmlab://`` / ``mmcls://`` name stands
    for, from mmengine's tables (as mmengine resolves it); other paths unchanged."""
    from mmengine.runner import checkpoint as mck
    if _matches(path, _TORCHVISION):
        scheme = next(p for p in _TORCHVISION if path.startswith(p))
        try:
            table = mck.get_torchvision_models()
        except ImportError:
            raise RemoteCheckpointError(f'{path}: torchvision:// needs torchvision installed') from None
        return _lookup(table, path[len(scheme):], scheme)
    if _matches(path, _OPENMMLAB):
        scheme = next(p for p in _OPENMMLAB if path.startswith(p))
        name = path[len(scheme):]
        name = mck.get_deprecated_model_names().get(name, name)
        url = _lookup(mck.get_external_models(), name, scheme)
        return url if url.startswith(_HTTP) else osp.join(mck._get_mmengine_home(), url)
    if _matches(path, _MMCLS):
        return _lookup(mck.get_mmcls_models(), path[len('mmcls://'):], 'mmcls://')
    return path


@contextlib.contextmanager
def _ceph_copy(path: str) -> Iterator[str]:
    """A temporary local copy of an ``s3://`` / ``petrel://`` object (size bounded), deleted on exit."""
    try:
        from mmengine.fileio import get_file_backend
        backend = get_file_backend(path, backend_args={'backend': 'petrel'})
        data = backend.get(path)
    except ImportError as e:
        raise RemoteCheckpointError(f'{path}: s3:// and petrel:// are read through mmengine\'s petrel backend, which '
                                    f'needs petrel_client ({e}); copy the file locally and pass its path') from None
    except (OSError, ValueError, KeyError) as e:
        raise RemoteCheckpointError(f'could not read {path}: {type(e).__name__}: {e}') from None
    if len(data) > max_download_bytes():
        raise RemoteCheckpointError(f'refusing {path}: {len(data)} bytes exceeds TRANSVAE_MAX_DOWNLOAD_MB')
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.s3-', suffix='-' + _safe_name(path), dir=cache_dir())
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        del data
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[tuple[str, str]]:
    """The verified local file a remote checkpoint stands for (module docstring), and how errors name it.

    Yields:
        ``(local path, name)``: the cached download of an ``http(s)://`` URL or a named scheme's URL, the file under
        ``$MMENGINE_HOME`` an ``open-mmlab://`` name may stand for, or a temporary copy of an ``s3://`` /
        ``petrel://`` object (deleted when the block ends). ``checkpoint_io.load_checkpoint_file`` reads it (with
        ``source=name``) inside the block.

    Raises:
        RemoteCheckpointError: refused scheme, failed download or verification.
    """
    if _matches(path, _PAVI):
        raise RemoteCheckpointError(
            f'{path}: pavi:// is not supported (mmengine\'s pavi loader unpickles a file its client downloads, and '
            'that client is not a dependency); download the file with pavi and pass its local path')
    if _matches(path, _CEPH):
        with _ceph_copy(path) as tmp:
            yield tmp, f'{path} (fetched)'
        return
    url = resolve_url(path)
    if not url.startswith(_HTTP):  # open-mmlab:// naming a file under $MMENGINE_HOME
        yield url, url
        return
    local = fetch_url(url, name_hash=True if url != path else None)  # named schemes: curated hub names
    shown = url if url == path else f'{path} ({split_sha256(url)[0]})'
    yield local, f'{shown} (downloaded to {local})'


def as_mmengine_loads(path: str, ckpt: dict) -> dict:
    """What mmengine makes of a checkpoint loaded from ``path``: an ``mmcls://`` one keeps its ``backbone.``
    weights, renamed (mmengine's ``_process_mmcls_checkpoint``); every other one is returned as it is."""
    if _matches(path, _MMCLS):
        from mmengine.runner.checkpoint import _process_mmcls_checkpoint
        return _process_mmcls_checkpoint(ckpt)
    return ckpt


#: mmengine's remote prefix groups by the backend name of its own loader (``load_from_<name>``); ``checkpoint_io``
#: registers its loader for each
MMENGINE_REMOTE_SCHEMES = {'http': _HTTP, 'torchvision': _TORCHVISION, 'openmmlab': _OPENMMLAB, 'mmcls': _MMCLS,
                           'ceph': _CEPH, 'pavi': _PAVI}

__all__ = ['RemoteCheckpointError', 'HASH_NAMED_HOSTS', 'cache_dir', 'max_download_bytes', 'is_remote', 'split_sha256',
           'hub_hash_prefix', 'fetch_url', 'resolve_url', 'local_copy', 'as_mmengine_loads', 'MMENGINE_REMOTE_SCHEMES']
