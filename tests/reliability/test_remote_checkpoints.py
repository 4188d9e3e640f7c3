"""Checkpoints given as URLs are downloaded to a cache keyed by the full URL, verified and never unpickled.

A real HTTP server on 127.0.0.1 (``fault_drill.remote.CheckpointServer``, a thread) serves hostile, good, truncated
and missing checkpoints; every entry point (``init_model``, mmengine's ``CheckpointLoader`` / ``load_checkpoint``,
``load_from`` through a Runner, ``tools/test.py`` as a subprocess) must read them through transvae's safe loader.
"""
import os
import os.path as osp
import subprocess

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

import rel_helpers as rh
import tiny_vae_fixtures as tv
from projects.fault_drill.fault_drill.remote import (CheckpointServer, cache_files, good_checkpoint,
                                                   hostile_checkpoint)
from transvae.apis import init_model
from transvae.engine.checkpoint_io import (UntrustedCheckpointError, export_safetensors, foreign_schemes,
                                           load_checkpoint_file)
from transvae.engine.remote_checkpoint import RemoteCheckpointError, fetch_url, hub_hash_prefix


@pytest.fixture
def server():
    with CheckpointServer() as srv:
        yield srv


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = str(tmp_path / 'cache')
    monkeypatch.setenv('TRANSVAE_CACHE_DIR', root)
    return root


def _sd(seed: int) -> dict:
    torch.manual_seed(seed)
    return {k: torch.randn_like(v) for k, v in tv.TinyVAE(ch=8).state_dict().items()}


def _equal(model: torch.nn.Module, sd: dict) -> bool:
    msd = model.state_dict()
    return msd.keys() == sd.keys() and all(torch.equal(msd[k], sd[k]) for k in sd)


def test_every_mmengine_scheme_is_transvaes():
    assert foreign_schemes() == {}
    for url in ('http://h/x.pth', 'https://h/x.pth', 'torchvision://resnet18', 'modelzoo://resnet18',
                'open-mmlab://x', 'openmmlab://x', 'mmcls://x', 'pavi://x', 's3://b/x.pth', 'c1:s3://b/x.pth',
                'petrel://b/x.pth'):
        assert CheckpointLoader._get_checkpoint_loader(url).__module__ == 'transvae.engine.checkpoint_io', url


def test_payload_over_http_refused_on_every_entry_point(tmp_path, server, cache):
    marker = str(tmp_path / 'PWNED')
    server.routes['/evil.pth'] = hostile_checkpoint(str(tmp_path / 'evil.pth'), _sd(0), marker)
    url = server.url('/evil.pth')
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))

    with pytest.raises(UntrustedCheckpointError) as info:
        init_model(cfg, url)
    msg = str(info.value)
    assert url in msg and 'trusted=True' in msg and '--trust-checkpoint' in msg and 'posix.system' in msg, msg
    with pytest.raises(UntrustedCheckpointError, match='evil.pth'):
        CheckpointLoader.load_checkpoint(url)
    with pytest.raises(UntrustedCheckpointError):  # what init_cfg=dict(type='Pretrained', checkpoint=URL) calls
        load_checkpoint(torch.nn.Linear(1, 1), url)
    runner = rh.build_runner(cfg, str(tmp_path / 'wd'), cfg_options=dict(load_from=url))
    with pytest.raises(UntrustedCheckpointError, match='evil.pth'):
        runner.load_or_resume()
    assert not osp.exists(marker)
    assert server.hits['/evil.pth'] == 1  # downloaded once, then read from the cache (and refused again)

    load_checkpoint_file(url, trusted=True)  # the explicit opt-in is the same as for a local file
    assert osp.exists(marker)


def test_tools_test_refuses_payload_url_subprocess(tmp_path, server, cache):
    marker = str(tmp_path / 'PWNED')
    server.routes['/ckpt/evil.pth'] = hostile_checkpoint(str(tmp_path / 'evil.pth'), _sd(0), marker)
    url = server.url('/ckpt/evil.pth')
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    proc = subprocess.run([tv.PYTHON, 'tools/test.py', cfg, url, '--work-dir', str(tmp_path / 'wd')], cwd=tv.REPO,
                          env=tv.subprocess_env(TRANSVAE_CACHE_DIR=cache), capture_output=True, text=True,
                          timeout=240)
    last = (proc.stderr.strip().splitlines() or [''])[-1]
    assert proc.returncode != 0 and last.startswith(f'error: Refusing to load {url}'), proc.stderr[-3000:]
    assert '--trust-checkpoint' in last and 'Traceback' not in proc.stderr
    assert 'tiny/psnr:' not in proc.stdout + proc.stderr  # nothing was evaluated
    assert not osp.exists(marker)


def test_good_checkpoint_over_http_equals_local(tmp_path, server, cache):
    sd = _sd(1)
    local = str(tmp_path / 'good.pth')
    server.routes['/good.pth'] = good_checkpoint(local, sd, meta=dict(config_file='tiny.py'))
    export_safetensors({'state_dict': sd}, str(tmp_path / 'good.safetensors'))
    server.routes['/good.safetensors'] = open(tmp_path / 'good.safetensors', 'rb').read()
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    url = server.url('/good.pth')

    assert _equal(init_model(cfg, local), sd) and _equal(init_model(cfg, url), sd)
    assert _equal(init_model(cfg, server.url('/good.safetensors')), sd)
    loaded = CheckpointLoader.load_checkpoint(url)
    assert loaded['meta']['config_file'] == 'tiny.py' and all(torch.equal(loaded['state_dict'][k], sd[k]) for k in sd)
    runner = rh.build_runner(cfg, str(tmp_path / 'wd'), cfg_options=dict(load_from=url))
    runner.load_or_resume()
    assert _equal(runner.model, sd)
    assert server.hits['/good.pth'] == 1  # one download, three loads from the cache

    import hashlib
    digest = hashlib.sha256(server.routes['/good.pth']).hexdigest()
    assert _equal(init_model(cfg, f'{url}#sha256={digest}'), sd)  # a matching pinned digest
    server.routes[f'/hub/tiny-{digest[:10]}.pth'] = server.routes['/good.pth']  # torch-hub name convention
    assert hub_hash_prefix(server.url(f'/hub/tiny-{digest[:10]}.pth')) == digest[:10]
    assert load_checkpoint_file(fetch_url(server.url(f'/hub/tiny-{digest[:10]}.pth'), name_hash=True))
    server.routes['/vae-20240101.pth'] = server.routes['/good.pth']  # a date, not a hash: other hosts unchecked
    assert _equal(init_model(cfg, server.url('/vae-20240101.pth')), sd)


def test_same_file_name_at_two_urls_is_two_files(tmp_path, server, cache):
    """torch.hub's cache is keyed by the file name: a later URL ending in the same name loaded the first file."""
    sd_a, sd_b = _sd(2), _sd(3)
    marker = str(tmp_path / 'PWNED')
    server.routes['/a/model.pth'] = good_checkpoint(str(tmp_path / 'a.pth'), sd_a)
    server.routes['/b/model.pth'] = good_checkpoint(str(tmp_path / 'b.pth'), sd_b)
    server.routes['/c/model.pth'] = hostile_checkpoint(str(tmp_path / 'c.pth'), sd_a, marker)
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    assert _equal(init_model(cfg, server.url('/a/model.pth')), sd_a)
    assert _equal(init_model(cfg, server.url('/b/model.pth')), sd_b)
    with pytest.raises(UntrustedCheckpointError, match='/c/model.pth'):
        init_model(cfg, server.url('/c/model.pth'))
    assert not osp.exists(marker)
    assert len(cache_files(cache)) == 3 and server.hits == {'/a/model.pth': 1, '/b/model.pth': 1, '/c/model.pth': 1}


def test_failed_downloads_cache_nothing(tmp_path, server, cache, monkeypatch):
    sd = _sd(4)
    body = good_checkpoint(str(tmp_path / 'g.pth'), sd)
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    server.routes['/trunc.pth'] = dict(body=body, send=len(body) // 3)
    server.routes['/good.pth'] = body
    server.routes['/page.pth'] = b'<html>please log in</html>'
    server.routes['/hub/tiny-deadbeef.pth'] = body
    cases = [('/trunc.pth', '', 'truncated'), ('/missing.pth', '', 'HTTP 404'),
             ('/good.pth', '#sha256=' + '0' * 64, 'differs from the expected'), ('/page.pth', '', 'not a checkpoint')]
    for path, frag, expect in cases:
        with pytest.raises(RemoteCheckpointError) as info:
            init_model(cfg, server.url(path) + frag)
        assert expect in str(info.value) and server.url(path) in str(info.value), str(info.value)
        assert cache_files(cache) == [], (path, cache_files(cache))
    with pytest.raises(RemoteCheckpointError, match='does not start with deadbeef'):  # as for the hub hosts
        fetch_url(server.url('/hub/tiny-deadbeef.pth'), name_hash=True)
    assert cache_files(cache) == []
    monkeypatch.setenv('TRANSVAE_MAX_DOWNLOAD_MB', '0.0005')
    with pytest.raises(RemoteCheckpointError, match='TRANSVAE_MAX_DOWNLOAD_MB'):
        init_model(cfg, server.url('/good.pth'))
    monkeypatch.delenv('TRANSVAE_MAX_DOWNLOAD_MB')
    assert cache_files(cache) == [] and not [f for f in os.listdir(cache + '/checkpoints')
                                            for g in os.listdir(osp.join(cache, 'checkpoints', f)) if '.tmp' in g]

    server.routes['/trunc.pth'] = body  # the server recovers: the same URL now loads, nothing stale in the way
    assert _equal(init_model(cfg, server.url('/trunc.pth')), sd)
    [cached] = cache_files(cache)
    with open(cached, 'r+b') as f:  # a cached file that no longer matches a pinned digest is fetched again
        f.seek(100)
        f.write(b'XXXX')
    import hashlib
    digest = hashlib.sha256(body).hexdigest()
    assert _equal(init_model(cfg, server.url('/trunc.pth') + f'#sha256={digest}'), sd)
    assert server.hits['/trunc.pth'] == 3


def test_refused_and_unknown_schemes(tmp_path, cache):
    with pytest.raises(RemoteCheckpointError, match='pavi:// is not supported'):
        load_checkpoint_file('pavi://some/model')
    with pytest.raises(RemoteCheckpointError, match='not a checkpoint scheme'):
        load_checkpoint_file('ftp://host/model.pth')
    with pytest.raises(RemoteCheckpointError, match='unknown model name'):
        load_checkpoint_file('open-mmlab://no_such_model_name')
    from transvae.engine.remote_checkpoint import resolve_url
    url = resolve_url('torchvision://resnet18')  # named schemes resolve as mmengine does, then are verified by name
    assert url.startswith('https://download.pytorch.org/') and hub_hash_prefix(url), url
    try:
        import petrel_client  # noqa: F401
    except ImportError:
        with pytest.raises(RemoteCheckpointError, match='petrel_client'):
            CheckpointLoader.load_checkpoint('s3://bucket/model.pth')
