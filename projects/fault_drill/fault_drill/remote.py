"""Drills for remote and malformed checkpoints (issue 20, items 1 and 4); each returns rows
``{fault, attempts, survived, lost, check}``.

* :func:`drill_remote_checkpoints`: a real HTTP server on 127.0.0.1 serves a pickle payload (a ``__reduce__`` that
  would create a marker file), good checkpoints under one file name at two URLs, truncated downloads, a 404 and a
  wrong sha256, to every entry point (``init_model``, mmengine's ``CheckpointLoader`` / ``load_checkpoint``,
  ``load_from`` through a Runner, ``tools/test.py``, ``tools/extract_latents.py``).
* :func:`drill_malformed_checkpoints`: real malformed files on disk (empty, truncated, a plain list, a zip bomb, a
  short record, lying / non-JSON safetensors headers, int / float64 / overflowing tensors) to ``init_model``.

:class:`CheckpointServer` and the file writers are shared with ``tests/reliability/test_remote_checkpoints.py`` and
``test_malformed_files.py``.
"""
from __future__ import annotations

import glob
import http.server
import json
import os
import os.path as osp
import struct
import threading
import zipfile
from typing import Any, Callable, Optional

# ---------------------------------------------------------------------------------------------------------------------
# a real HTTP server
# ---------------------------------------------------------------------------------------------------------------------


class CheckpointServer:
    """A threaded ``http.server`` on 127.0.0.1 (a free port) serving ``routes``: ``path -> bytes`` or
    ``path -> dict(body=bytes, send=int)`` (announce ``len(body)`` bytes but send only ``send``, then close: a
    truncated download). Unknown paths get a 404. ``hits[path]`` counts the requests.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split('?', 1)[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                entry = server.routes.get(path)
                if entry is None:
                    body = b'not found'
                    self.send_response(404)
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                body, send = (entry['body'], entry.get('send')) if isinstance(entry, dict) else (entry, None)
                self.send_response(200)
                self.send_header('Content-Type', 'application/octet-stream')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body if send is None else body[:send])
                if send is not None:
                    self.close_connection = True
                    self.wfile.flush()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}'

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> 'CheckpointServer':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this calls ``os.system('touch MARKER')``: what a hostile checkpoint does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def hostile_checkpoint(path: str, state_dict: dict, marker: str) -> bytes:
    """Write a checkpoint whose ``meta`` holds a :class:`Payload`; return its bytes."""
    import torch
    torch.save({'state_dict': state_dict, 'meta': {'note': Payload(marker)}}, path)
    return open(path, 'rb').read()


def good_checkpoint(path: str, state_dict: dict, meta: Optional[dict] = None) -> bytes:
    """Write a checkpoint the way the runner does (``encode_checkpoint``, then ``torch.save`` through
    ``atomic_write``); return its bytes."""
    import torch

    from transvae.engine.atomic_io import atomic_write
    from transvae.engine.checkpoint_io import encode_checkpoint
    encoded = encode_checkpoint({'state_dict': state_dict, 'meta': dict(meta or {})})
    atomic_write(path, lambda f: torch.save(encoded, f))
    return open(path, 'rb').read()


def write_safetensors(path: str, header: Any, data: bytes = b'', raw_header: Optional[bytes] = None,
                      claimed_len: Optional[int] = None) -> str:
    """A ``.safetensors`` file from a (possibly lying) header: ``raw_header`` bytes instead of JSON, ``claimed_len``
    instead of the real header length."""
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h) if claimed_len is None else claimed_len) + h + data)
    return path


def malformed_files(d: str, state_dict: dict) -> dict[str, tuple[str, str]]:
    """Write the malformed checkpoints of the drill / tests into ``d``; ``name -> (path, text the error must
    contain)``. ``state_dict`` is a float32 state dict of the model the files pretend to be for."""
    import torch
    os.makedirs(d, exist_ok=True)
    p = lambda n: osp.join(d, n)  # noqa: E731
    out: dict[str, tuple[str, str]] = {}
    good = good_checkpoint(p('good.pth'), state_dict)
    open(p('zero.pth'), 'wb').close()
    out['zero-byte .pth'] = (p('zero.pth'), 'is empty')
    open(p('truncated.pth'), 'wb').write(good[:len(good) // 2])
    out['truncated zip .pth'] = (p('truncated.pth'), 'truncated or corrupt')
    torch.save([1, 2, 3], p('list.pth'))
    out['.pth holding a plain list'] = (p('list.pth'), 'holds a list')
    open(p('text.pth'), 'wb').write(b'<html>404 not found</html>')
    out['.pth that is an HTML page'] = (p('text.pth'), 'not a checkpoint')
    big = {k: torch.zeros(256, 1024) for k in ('a', 'b')}  # 2 MiB of zeros, deflated into a few KiB
    torch.save(big, p('big.pth'))
    with zipfile.ZipFile(p('big.pth')) as zin, zipfile.ZipFile(p('bomb.pth'), 'w', zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
    out['zip bomb .pth (deflated entries)'] = (p('bomb.pth'), 'compressed')
    with zipfile.ZipFile(p('big.pth')) as zin, zipfile.ZipFile(p('short.pth'), 'w', zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data[:64] if name.endswith('data/0') else data)
    out['.pth whose tensor record is shorter than claimed'] = (p('short.pth'), 'not a readable checkpoint')
    write_safetensors(p('huge.safetensors'), {'w': {'dtype': 'F32', 'shape': [50000, 50000],
                                                    'data_offsets': [0, 10_000_000_000]}}, b'\0' * 1000)
    out['.safetensors claiming 10 GB in 1 KB'] = (p('huge.safetensors'), 'claims bytes 0..10000000000')
    write_safetensors(p('notjson.safetensors'), None, b'\0' * 16, raw_header=b'{not json!}')
    out['.safetensors header not JSON'] = (p('notjson.safetensors'), 'not JSON')
    write_safetensors(p('longhdr.safetensors'), {}, claimed_len=10**12)
    out['.safetensors header length past the end'] = (p('longhdr.safetensors'), 'header claims 1000000000000 bytes')
    write_safetensors(p('overlap.safetensors'), {'a': {'dtype': 'F32', 'shape': [4], 'data_offsets': [0, 16]},
                                                 'b': {'dtype': 'F32', 'shape': [4], 'data_offsets': [8, 24]}},
                      b'\0' * 24)
    out['.safetensors tensors overlapping'] = (p('overlap.safetensors'), 'overlap')
    write_safetensors(p('badsize.safetensors'), {'a': {'dtype': 'F32', 'shape': [8], 'data_offsets': [0, 16]}},
                      b'\0' * 16)
    out['.safetensors shape / byte-range disagree'] = (p('badsize.safetensors'), 'needs 32 bytes')
    open(p('renamed.safetensors'), 'wb').write(good)
    torch.save({'w': torch.zeros(123457)}, p('legacy.pth'), _use_new_zipfile_serialization=False)
    legacy = bytearray(open(p('legacy.pth'), 'rb').read())
    at = legacy.find(b'J' + struct.pack('<i', 123457))  # the storage's element count (BININT) in the pickle
    legacy[at + 1:at + 5] = struct.pack('<i', 0x7FFFFFF0)  # now claims 8 GiB
    open(p('legacy_lie.pth'), 'wb').write(bytes(legacy[:at + 2000]))
    out['legacy-format .pth claiming an 8 GiB storage'] = (p('legacy_lie.pth'), 'not a readable checkpoint')
    open(p('legacy_trunc.pth'), 'wb').write(bytes(legacy[:200]))
    out['truncated legacy-format .pth'] = (p('legacy_trunc.pth'), 'truncated or corrupt')
    out['.pth renamed .safetensors'] = (p('renamed.safetensors'), 'not a safetensors file')
    # dtype lies: right names and shapes, values that cannot be these weights
    from transvae.engine.checkpoint_io import export_safetensors
    ints = {k: v.to(torch.int64) for k, v in state_dict.items()}
    export_safetensors({'state_dict': ints}, p('int64.safetensors'))
    out['int64 tensors where the model has float32 (.safetensors)'] = (p('int64.safetensors'), 'torch.int64 vs model')
    bools = {k: v > 0 for k, v in state_dict.items()}
    good_checkpoint(p('bool.pth'), bools)
    out['bool tensors where the model has float32 (.pth)'] = (p('bool.pth'), 'torch.bool vs model')
    huge = {k: v.double() * 1e300 + 1e300 for k, v in state_dict.items()}
    good_checkpoint(p('f64.pth'), huge)
    out['float64 values that overflow float32'] = (p('f64.pth'), 'overflow')
    good_checkpoint(p('str.pth'), {**state_dict, next(iter(state_dict)): 'not a tensor'})
    out['a string where the model has a tensor'] = (p('str.pth'), 'vs model')
    good_checkpoint(p('encoded.pth'), state_dict, meta={'x': {'__transvae_type__': 'ndarray', 'data': 5}})
    out['malformed transvae-encoded entry'] = (p('encoded.pth'), "malformed '__transvae_type__'")
    return out


def cache_files(cache_root: str) -> list[str]:
    """The files under ``cache_root`` that count as cached checkpoints (not lock / source records)."""
    return [f for f in glob.glob(osp.join(cache_root, '**', '*'), recursive=True)
            if osp.isfile(f) and not osp.basename(f).startswith('.') and osp.basename(f) != 'source.json']


# ---------------------------------------------------------------------------------------------------------------------
# drills
# ---------------------------------------------------------------------------------------------------------------------
def _row(fault: str, attempts: int, survived: int, check: str) -> dict:
    return dict(fault=fault, attempts=attempts, survived=survived, lost=attempts - survived, check=check)


def _tiny_setup(d: str) -> tuple[str, dict]:
    """A drill config (:mod:`.lib`'s tiny TransVAE on a few images) and its random-init state dict."""
    from . import lib as L
    from mmengine.config import Config

    from transvae.apis import init_model
    root = osp.join(d, 'images')
    if not osp.isdir(root):
        L.write_images(root, 8)
    cfg = L.write_config(osp.join(d, 'drill.py'), root, iters=1)
    model = init_model(Config.fromfile(cfg))
    return cfg, {k: v.clone() for k, v in model.state_dict().items()}


def _refused(fn: Callable[[], Any], marker: str, expect: str) -> bool:
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return expect in str(e) and not osp.exists(marker) and len(str(e)) < 2000
    return False


def drill_remote_checkpoints(ctx: dict) -> list[dict]:
    """Checkpoints given as URLs: a payload never runs on any entry point, one file name at two URLs is two files,
    a failed download caches nothing."""
    from . import lib as L
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

    from transvae.apis import init_model
    d = osp.join(ctx['out'], 'remote')
    os.makedirs(d, exist_ok=True)
    cache = osp.join(d, 'cache')
    old_env = os.environ.get('TRANSVAE_CACHE_DIR')
    os.environ['TRANSVAE_CACHE_DIR'] = cache
    cfg, sd = _tiny_setup(d)
    rows = []
    try:
        with CheckpointServer() as srv:
            # 1. a payload over HTTP on every entry point
            n_ok, n = 0, 0
            for a in range(ctx['attempts']):
                marker = osp.join(d, f'PWNED_{a}')
                srv.routes[f'/{a}/evil.pth'] = hostile_checkpoint(osp.join(d, 'evil.pth'), sd, marker)
                url = srv.url(f'/{a}/evil.pth')

                def runner_load_from(url=url, a=a):
                    from mmengine.config import Config

                    from transvae.registry import RUNNERS
                    c = Config.fromfile(cfg)
                    c.work_dir, c.launcher, c.load_from = osp.join(d, f'wd_runner_{a}'), 'none', url
                    RUNNERS.build(c).load_or_resume()

                entries = [lambda: init_model(cfg, url), lambda: CheckpointLoader.load_checkpoint(url),
                           lambda: load_checkpoint(torch.nn.Linear(1, 1), url), runner_load_from]
                for fn in entries:
                    n += 1
                    n_ok += int(_refused(fn, marker, url))
                for tool, argv in (('test', [cfg, url, '--work-dir', osp.join(d, f'wd_test_{a}')]),
                                   ('extract_latents', [cfg, url, '--out', osp.join(d, f'lat_{a}'), '--device', 'cpu',
                                                        '--num-workers', '0'])):
                    n += 1
                    log = osp.join(d, f'{tool}_{a}.log')
                    rc = L.tool(tool, argv, log, timeout=300)
                    text = open(log).read() if osp.exists(log) else ''
                    n_ok += int(rc not in (0, -9, -999) and 'error: Refusing to load' in text and url in text
                                and 'Traceback' not in text and not osp.exists(marker))
            rows.append(_row('pickle payload served over HTTP (`__reduce__` -> os.system), on `init_model`, '
                             "mmengine's `CheckpointLoader` and `load_checkpoint`, `load_from` (Runner), "
                             '`tools/test.py`, `tools/extract_latents.py`', n, n_ok,
                             'refused naming the URL and `--trust-checkpoint` / `trusted=True`; payload never ran'))
            # 2. one file name at two URLs (torch.hub's cache is keyed by the name)
            ok = 0
            for a in range(ctx['attempts']):
                sds = [{k: torch.randn_like(v) for k, v in sd.items()} for _ in range(2)]
                marker = osp.join(d, f'POISON_{a}')
                srv.routes[f'/p{a}/x/model.pth'] = good_checkpoint(osp.join(d, 'a.pth'), sds[0])
                srv.routes[f'/p{a}/y/model.pth'] = good_checkpoint(osp.join(d, 'b.pth'), sds[1])
                srv.routes[f'/p{a}/z/model.pth'] = hostile_checkpoint(osp.join(d, 'c.pth'), sds[0], marker)
                m1 = init_model(cfg, srv.url(f'/p{a}/x/model.pth'))
                m2 = init_model(cfg, srv.url(f'/p{a}/y/model.pth'))
                good = all(torch.equal(m1.state_dict()[k], sds[0][k]) and torch.equal(m2.state_dict()[k], sds[1][k])
                           for k in sd)
                good = good and _refused(lambda a=a: init_model(cfg, srv.url(f'/p{a}/z/model.pth')), marker, 'z/')
                ok += int(good)
            rows.append(_row('same file name at different URLs (`/x/model.pth`, `/y/model.pth`, then a payload at '
                             '`/z/model.pth`)', ctx['attempts'], ok,
                             'each URL loads its own bytes (cache keyed by the full URL); the payload is refused'))
            # 3. failed downloads: truncated, 404, wrong sha256, HTML page, over the size bound
            ok, n = 0, 0
            no_marker = osp.join(d, 'no_marker')  # these cases serve no payload: nothing may create it
            for a in range(ctx['attempts']):
                body = good_checkpoint(osp.join(d, 'g.pth'), sd)
                cut = ctx['rng'].randint(1, len(body) - 1)
                srv.routes[f'/f{a}/trunc.pth'] = dict(body=body, send=cut)
                srv.routes[f'/f{a}/good.pth'] = body
                srv.routes[f'/f{a}/page.pth'] = b'<html>login</html>'
                cases = [(srv.url(f'/f{a}/trunc.pth'), 'truncated'), (srv.url(f'/f{a}/missing.pth'), 'HTTP 404'),
                         (srv.url(f'/f{a}/good.pth') + '#sha256=' + '0' * 64, 'sha256'),
                         (srv.url(f'/f{a}/page.pth'), 'not a checkpoint')]
                for url, expect in cases:
                    n += 1
                    before = set(cache_files(cache))
                    refused = _refused(lambda url=url: init_model(cfg, url), no_marker, expect)
                    ok += int(refused and set(cache_files(cache)) == before)
                n += 1
                os.environ['TRANSVAE_MAX_DOWNLOAD_MB'] = '0.001'
                try:
                    before = set(cache_files(cache))
                    ok += int(_refused(lambda a=a: init_model(cfg, srv.url(f'/f{a}/good.pth')), no_marker,
                                       'TRANSVAE_MAX_DOWNLOAD_MB') and set(cache_files(cache)) == before)
                finally:
                    del os.environ['TRANSVAE_MAX_DOWNLOAD_MB']
                srv.routes[f'/f{a}/trunc.pth'] = body  # the server recovers: the same URL now loads
                n += 1
                m = init_model(cfg, srv.url(f'/f{a}/trunc.pth'))
                ok += int(all(torch.equal(m.state_dict()[k], sd[k]) for k in sd))
            rows.append(_row('failed downloads: truncated at a random byte, HTTP 404, wrong `#sha256=`, an HTML page, '
                             'over `TRANSVAE_MAX_DOWNLOAD_MB`; then the same URL served whole', n, ok,
                             'clear error naming the URL, nothing cached; the retry loads the right weights'))
    finally:
        if old_env is None:
            os.environ.pop('TRANSVAE_CACHE_DIR', None)
        else:
            os.environ['TRANSVAE_CACHE_DIR'] = old_env
    return rows


def drill_malformed_checkpoints(ctx: dict) -> list[dict]:
    """Real malformed checkpoint files on disk, loaded by ``init_model``: each a one-line error naming the file."""
    import resource

    import torch

    from transvae.apis import init_model
    from transvae.engine.checkpoint_compat import CheckpointMismatchError
    d = osp.join(ctx['out'], 'malformed')
    cfg, sd = _tiny_setup(d)
    files = malformed_files(osp.join(d, 'files'), sd)
    ok = 0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _name, (path, expect) in files.items():
        try:
            init_model(cfg, path)
        except CheckpointMismatchError as e:  # CheckpointFileError is one
            ok += int(expect in str(e) and (path in str(e)) and len(str(e)) < 2000)
        except Exception:  # noqa: BLE001 - a raw library error is a failure of this drill
            pass
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    half = {k: v.half() for k, v in sd.items()}  # a legitimate fp16 export loads (and equals the fp16 values)
    from transvae.engine.checkpoint_io import export_safetensors
    export_safetensors({'state_dict': half}, osp.join(d, 'files', 'fp16.safetensors'))
    m = init_model(cfg, osp.join(d, 'files', 'fp16.safetensors'))
    ok_fp16 = all(torch.equal(m.state_dict()[k], half[k].float()) for k in sd)
    return [_row('malformed checkpoint files: ' + ', '.join(files), len(files), ok,
                 f'`CheckpointFileError` / `CheckpointMismatchError` naming the file and the lie, no raw library '
                 f'traceback; peak RSS grew {grew_mb:.0f} MB (the 10 GB / 8 GiB / 1 TB claims allocate nothing)'),
            _row('fp16 `.safetensors` export into the fp32 model', 1, int(ok_fp16), 'loads; weights equal the fp16 '
                 'values')]
