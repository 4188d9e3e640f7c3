"""Fingerprint what a refactor must not change: state-dict keys and shapes, initial weights, outputs and first losses.

``PYTHONPATH=. python tools/analysis_tools/numerics_fingerprint.py --out FILE.json [--only SUBSTR ...]``
``python tools/analysis_tools/numerics_fingerprint.py --compare A.json B.json``

(from the repository root: the DiT configs import ``projects.lightningdit``)

For every model / recipe / experiment config (with ``--preset cpu``: micro widths, built for real), the DiT micro
model (the LightningDiT configs' CPU preset) and Swin-VAE-T at paper width: build the model under
``torch.manual_seed(0)``, then record

* ``keys``: the state-dict keys with shapes and dtypes, and a sha256 of every tensor's bytes (initial weights);
* ``outputs``: sha256 of the reconstruction ``model(x, mode='tensor')`` and of the posterior mean (VAEs) or of the
  velocity prediction (DiT) on a fixed non-square input;
* ``losses``: the first loss terms (``model.loss``) under a fixed seed, as exact float hex strings.

Run it on the commit before a refactor (e.g. in a ``git worktree`` of it, ``PYTHONPATH=<worktree>``) and after,
then ``--compare``: every difference is listed, nothing is rounded. Paper-width models other than Swin-VAE-T are
fingerprinted by keys and shapes only (built on the meta device).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os.path as osp
import sys
from typing import Any, Optional

import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _tensor_sha(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]


def _configs() -> list[str]:
    pats = ['configs/_base_/models/*.py', 'configs/transvae/*.py', 'configs/experiments/*.py']
    return sorted(p for pat in pats for p in glob.glob(osp.join(REPO, pat)))


def _load(path: str, preset: Optional[str], presets_key: str = 'presets'):
    from mmengine.config import Config

    from transvae.engine.config_surgery import apply_preset
    cfg = Config.fromfile(path)
    if preset and presets_key == 'presets':
        apply_preset(cfg, preset)
    elif preset:
        cfg.merge_from_dict(cfg[presets_key][preset])
    return cfg


def _state(model: torch.nn.Module, weights: bool) -> dict[str, list]:
    return {k: [list(v.shape), str(v.dtype)] + ([_tensor_sha(v)] if weights else [])
            for k, v in model.state_dict().items()}


def _vae_record(model: torch.nn.Module) -> dict[str, Any]:
    f = int(getattr(model, 'downsample_factor', 8))
    g = torch.Generator().manual_seed(1)
    h, w = f * max(2, -(-64 // f)), f * max(3, -(-96 // f))  # non-square; >= 64 x 96 for LPIPS-alex's pooling
    x = torch.rand(2, 3, h, w, generator=g) * 2 - 1
    rec: dict[str, Any] = {}
    model.eval()
    with torch.no_grad():
        rec['recon'] = _tensor_sha(model(x, mode='tensor'))
        rec['latent_mean'] = _tensor_sha(model.encode(x).mode() if hasattr(model.encode(x), 'mode')
                                         else model.encode(x))
    model.train()
    if hasattr(model, 'loss'):
        torch.manual_seed(2)
        try:
            losses = model.loss(x)
            rec['losses'] = {k: float(v.detach().sum()).hex() for k, v in sorted(losses.items())
                             if torch.is_tensor(v)}
        except Exception as e:  # noqa: BLE001 - recorded: a model whose loss needs more than inputs (GAN stage)
            rec['losses'] = f'{type(e).__name__}'
    return rec


def fingerprint_vae(path: str, preset: Optional[str], weights: bool = True) -> dict[str, Any]:
    from transvae.registry import MODELS
    cfg = _load(path, preset)
    if not weights:
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        return {'keys': _state(model, weights=False)}
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return {'keys': _state(model, weights=True), **_vae_record(model)}


def fingerprint_dit(path: str) -> dict[str, Any]:
    from transvae.registry import MODELS
    cfg = _load(path, 'cpu', presets_key='dit_presets')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    shape = tuple(model.latent_shape)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, *shape, generator=g)
    labels = torch.tensor([0, 1])
    rec = {'keys': _state(model, weights=True)}
    torch.manual_seed(2)
    losses = model.loss(x, labels)
    rec['losses'] = {k: float(v.detach().sum()).hex() for k, v in sorted(losses.items()) if torch.is_tensor(v)}
    model.eval()
    with torch.no_grad():
        rec['velocity'] = _tensor_sha(model(x, [dict(label=0), dict(label=1)], mode='tensor'))
    return rec


def collect(only: list[str]) -> dict[str, Any]:
    from transvae.apis import register_all_modules
    register_all_modules()
    out: dict[str, Any] = {}
    jobs: list[tuple[str, Any]] = []
    for p in _configs():
        rel = osp.relpath(p, REPO)
        jobs.append((f'{rel} --preset cpu', lambda p=p: fingerprint_vae(p, 'cpu')))
        if '/_base_/models/' in rel:
            full = rel.endswith('swin-vae-t_f16d32.py')
            jobs.append((f'{rel} (paper width)', lambda p=p, full=full: fingerprint_vae(p, None, weights=full)))
    for p in sorted(glob.glob(osp.join(REPO, 'projects/lightningdit/configs/*.py'))):
        jobs.append((f'{osp.relpath(p, REPO)} --preset cpu', lambda p=p: fingerprint_dit(p)))
    for name, job in jobs:
        if only and not any(s in name for s in only):
            continue
        try:
            out[name] = job()
        except Exception as e:  # noqa: BLE001 - recorded, so that before / after compare it too
            out[name] = {'error': f'{type(e).__name__}: {e}'[:300]}
        print(f'{name}: {"error" if "error" in out[name] else "ok"}', flush=True)
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Every difference between two fingerprints, one line each."""
    diffs = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            diffs.append(f'{name}: only in {"second" if name in b else "first"}')
            continue
        for field in sorted(set(a[name]) | set(b[name])):
            va, vb = a[name].get(field), b[name].get(field)
            if va == vb:
                continue
            if isinstance(va, dict) and isinstance(vb, dict):
                keys = sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))
                diffs.append(f'{name}: {field} differ at {len(keys)} keys, e.g. {keys[:3]}')
            else:
                diffs.append(f'{name}: {field} {str(va)[:80]} -> {str(vb)[:80]}')
    return diffs


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', help='write the fingerprint here (JSON)')
    p.add_argument('--only', nargs='+', default=[], help='only configs whose name contains one of these')
    p.add_argument('--compare', nargs=2, metavar=('BEFORE', 'AFTER'), help='compare two fingerprint files')
    args = p.parse_args(argv)
    if args.compare:
        a, b = (json.load(open(f)) for f in args.compare)
        diffs = compare(a, b)
        print('\n'.join(diffs) if diffs else f'identical: {len(a)} models')
        return 1 if diffs else 0
    if not args.out:
        p.error('--out or --compare is required')
    torch.set_num_threads(1)  # bit-identical results across runs need one reduction order
    fp = collect(args.only)
    with open(args.out, 'w') as f:
        json.dump(fp, f, indent=1, sort_keys=True)
    print(f'{len(fp)} models -> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
