"""The linear probe (transvae.evaluation.linear_probe, behind tools/analysis_tools/linear_probe.py) on latent shards:
pooled-on-read vs in-memory, streaming, memory bound."""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import subprocess
import sys
import weakref
from typing import Optional

import safetensors
import safetensors.torch
import torch
from safetensors.torch import save_file

from transvae.evaluation import linear_probe as lp
from transvae.utils.latent_shards import STATS_FILE, list_shards, load_latents, shard_path

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


KW = dict(epochs=5, batch_size=32, warmup_epochs=1, progress=False)


def _data(n: int, seed: int, unlabelled: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linearly separable latents ``(n, 4, 2, 2)`` (class = channel with a raised mean), labels ``(n,)`` (the
    first ``unlabelled`` are -1) and their "h-flipped" latents (flip plus noise: not equal after GAP)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    z = torch.randn(n, 4, 2, 2, generator=g) * 0.5
    z[torch.arange(n), y] += 2.0
    zf = z.flip(-1) + 0.1 * torch.randn(z.shape, generator=g)
    y[:unlabelled] = -1
    return z, y, zf


def _write_shards(out: str, z: torch.Tensor, y: torch.Tensor, shard_size: int,
                  zf: Optional[torch.Tensor] = None) -> list[str]:
    """Shards in the layout of ``extract_latents.extract`` (keys, dtypes, names, metadata)."""
    os.makedirs(out, exist_ok=True)
    n = z.shape[0]
    num_shards = math.ceil(n / shard_size)
    for i in range(num_shards):
        s, e = i * shard_size, min(n, (i + 1) * shard_size)
        t = {'latents': z[s:e].float().contiguous(), 'labels': y[s:e].to(torch.int64),
             'indices': torch.arange(s, e, dtype=torch.int64)}
        if zf is not None:
            t['latents_flip'] = zf[s:e].float().contiguous()
        meta = dict(shard_size=shard_size, flip=zf is not None, num_items=n, num_shards=num_shards, shard=i,
                    start=s, stop=e)
        save_file(t, shard_path(out, i), metadata={'json': json.dumps(meta)})
    save_file({'mean': torch.zeros(1, 4, 1, 1), 'std': torch.ones(1, 4, 1, 1)}, osp.join(out, STATS_FILE))
    return list_shards(out)


def _dirs(tmp_path, flip: bool = True) -> tuple[str, str, tuple]:
    z, y, zf = _data(150, seed=0, unlabelled=5)
    zv, yv, _ = _data(60, seed=1)
    tr, va = str(tmp_path / 'train'), str(tmp_path / 'val')
    assert len(_write_shards(tr, z, y, 40, zf if flip else None)) == 4
    _write_shards(va, zv, yv, 25)
    return tr, va, (z, y, zf, zv, yv)


def test_linear_probe_separable():
    g = torch.Generator().manual_seed(0)
    def make(n):
        y = torch.randint(0, 3, (n,), generator=g)
        z = torch.randn(n, 4, 2, 2, generator=g) * 0.5
        z[torch.arange(n), y] += 2.0  # class-dependent channel mean
        return z, y
    (zt, yt), (zv, yv) = make(192), make(60)
    res = lp.train_probe(zt, yt, zv, yv, pool='gap', epochs=5, batch_size=64, warmup_epochs=1, progress=False)
    assert res['top1'] > 90 and res['in_features'] == 4 and res['num_classes'] == 3
    res = lp.train_probe(zt, yt, zv, yv, pool='flatten', epochs=1, batch_size=64, warmup_epochs=1, progress=False)
    assert res['in_features'] == 16


def test_gap_pooled_on_read_equals_in_memory(tmp_path):
    tr, va, (z, y, zf, zv, yv) = _dirs(tmp_path)
    ref = lp.train_probe(z, y, zv, yv, pool='gap', train_flip=zf, **KW)
    res = lp.probe_dirs(tr, va, pool='gap', **KW)
    assert res['data'] == 'in_memory' and ref['data'] == 'in_memory'
    assert (res['top1'], res['top5']) == (ref['top1'], ref['top5'])
    assert math.isclose(res['final_train_loss'], ref['final_train_loss'], rel_tol=1e-5)  # bitwise equal here
    assert res['num_train'] == ref['num_train'] == 145 and res['num_val'] == 60 and res['in_features'] == 4
    assert res['top1'] > 90 and res['feature_mb'] == 2 * 145 * 4 * 4 / 2 ** 20  # flips pooled and kept
    # same protocol, streamed when the features exceed cache_mb (the CLI's --cache-mb)
    streamed = lp.probe_dirs(tr, va, pool='gap', cache_mb=0, **KW)
    assert streamed['data'] == 'streamed' and streamed['steps_per_epoch'] == res['steps_per_epoch'] == 5
    assert streamed['top1'] > 90
    # the command line, for real: its flags reach probe_dirs, --out writes the result
    out = str(tmp_path / 'res.json')
    subprocess.run([sys.executable, 'tools/analysis_tools/linear_probe.py', tr, va, '--epochs', '1', '--batch-size',
                    '32', '--warmup-epochs', '1', '--cache-mb', '0', '--device', 'cpu', '--out', out],
                   cwd=REPO, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    with open(out) as f:
        cli = json.load(f)
    assert cli['data'] == 'streamed' and cli['epochs'] == 1 and cli['batch_size'] == 32 and cli['num_train'] == 145


def test_streamed_flatten_trains_and_keeps_the_epoch_layout(tmp_path):
    z, y, zf = _data(200, seed=2, unlabelled=3)
    zv, yv, _ = _data(60, seed=3)
    tr, va = str(tmp_path / 'train'), str(tmp_path / 'val')
    _write_shards(tr, z, y, 45, zf)  # 5 shards, sizes not multiples of the batch
    _write_shards(va, zv, yv, 25)
    res = lp.probe_dirs(tr, va, pool='flatten', cache_mb=0, **KW)
    assert res['data'] == 'streamed' and res['in_features'] == 16 and res['num_train'] == 197
    assert res['top1'] > 90
    # an epoch: the in-memory path's batch sizes (so steps, lr schedule, BN updates match), every item once
    index = lp.scan_shards(tr)
    stream = lp.StreamedShards(index, 'flatten', with_flip=False)
    mem = lp.InMemoryFeatures.from_shards(index, 'flatten', with_flip=False)
    g = torch.Generator().manual_seed(0)
    epochs = [list(stream.batches(32, g)) for _ in range(2)]
    sizes = [len(b[1]) for b in mem.batches(32, torch.Generator().manual_seed(0))]
    assert sizes == [32] * 6 + [5]
    keep = y >= 0
    key = lambda x: x.sum(1).sort().values  # noqa: E731  (rows are distinct random vectors)
    for batches in epochs:
        assert [len(b[1]) for b in batches] == sizes
        x = torch.cat([b[0] for b in batches])
        assert torch.allclose(key(x), key(z[keep].flatten(1)))
        assert sorted(torch.cat([b[1] for b in batches]).tolist()) == sorted(y[keep].tolist())
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0])  # reshuffled every epoch


class _RawLatentTracker:
    """Records the storage of every ``latents`` / ``latents_flip`` tensor read from a shard; ``peak``: the most bytes
    of such storages alive at once, checked at each read (a storage stays alive while any view of it does)."""

    def __init__(self) -> None:
        self.alive: list[weakref.ref] = []
        self.peak = self.reads = 0

    def record(self, key: str, t: torch.Tensor) -> torch.Tensor:
        if key.startswith('latents'):
            self.reads += 1
            self.alive = [r for r in self.alive if r() is not None] + [weakref.ref(t.untyped_storage())]
            self.peak = max(self.peak, sum(r().nbytes() for r in self.alive if r() is not None))
        return t

    def install(self, monkeypatch) -> None:
        tracker, real_open, real_load = self, safetensors.safe_open, safetensors.torch.load_file

        class _Open:
            def __init__(self, *args, **kwargs) -> None:
                self._f = real_open(*args, **kwargs)

            def __enter__(self):
                self._f.__enter__()
                return self

            def __exit__(self, *exc):
                return self._f.__exit__(*exc)

            def get_tensor(self, key: str) -> torch.Tensor:
                return tracker.record(key, self._f.get_tensor(key))

            def __getattr__(self, name: str):
                return getattr(self._f, name)

        def _load(*args, **kwargs) -> dict:
            return {k: tracker.record(k, v) for k, v in real_load(*args, **kwargs).items()}

        for mod in (lp, safetensors):  # transvae.utils.latent_shards opens shards through safetensors.safe_open
            monkeypatch.setattr(mod, 'safe_open', _Open, raising=False)
        monkeypatch.setattr(safetensors.torch, 'load_file', _load)


def test_never_more_than_one_shard_of_raw_latents(tmp_path, monkeypatch):
    tr, va, _ = _dirs(tmp_path)
    one_shard = 2 * 40 * 4 * 2 * 2 * 4  # latents + latents_flip of the largest shard, fp32
    tracker = _RawLatentTracker()
    tracker.install(monkeypatch)
    for pool, cache_mb in (('gap', 4096), ('gap', 0), ('flatten', 0)):
        tracker.peak = tracker.reads = 0
        res = lp.probe_dirs(tr, va, pool=pool, cache_mb=cache_mb, **dict(KW, epochs=2))
        assert res['data'] == ('in_memory' if cache_mb else 'streamed')
        assert tracker.reads >= 8 and 0 < tracker.peak <= one_shard, (pool, cache_mb, tracker.peak)
    # the check bites: concatenating every shard (the old loader) holds all raw latents at once
    tracker.peak = 0
    load_latents(tr)
    assert tracker.peak > 2 * one_shard
