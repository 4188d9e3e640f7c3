"""The DiT project's fault drill (data, training, sampling, FID) and the latent extraction it starts from.

``drill_dit(ctx)`` returns rows ``{fault, attempts, survived, lost, check}`` (:mod:`.drills`' table). Every
attempt runs the real tool in a forked child (:func:`.lib.tool`): ``tools/train.py`` / ``tools/test.py`` on a
tiny LightningDiT (depth 1, width 32) over tiny latent shards, ``tools/extract_latents.py`` on the drill's TransVAE.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import shutil

from . import lib as L

DIT_BASE = osp.join(L.REPO, 'projects', 'lightningdit', 'configs',
                    'lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py')
VAE = dict(type='VAE', arch=dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                 attn_levels=[], mid_attn=False),
           encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
           rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))

DIT_CONFIG = '''_base_ = [{base!r}]
custom_imports = dict(imports=['projects.lightningdit.lightningdit', 'projects.fault_drill.fault_drill.hook'],
                      allow_failed_imports=False)
model = dict(latent_size={latent_size}, backbone=dict(_delete_=True, type='LightningDiT', arch=None, depth=1,
             embed_dims=32, num_heads=2, patch_size=2, in_channels={in_channels}, num_classes=3),
             sampler=dict(num_steps=2), guidance=dict(scale={scale!r}))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={lat!r}, num_classes=3))
optim_wrapper = dict(_delete_=True, type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(max_iters={iters})
custom_hooks = [dict(type='TransVAEEMAHook', momentum=0.1, update_buffers=False, priority='ABOVE_NORMAL')] + {hooks!r}
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
randomness = dict(seed=0)
test_dataloader = dict(batch_size=2, dataset=dict(num_samples=2, latent_shape=(4, 4, 4), num_classes=3))
test_evaluator = dict(vae_config={vae_cfg!r}, vae_checkpoint={vae_ckpt!r}, latent_dir={lat!r},
                      reference={reference!r}, reference_size=8)
'''


def _row(fault: str, attempts: int, survived: int, check: str) -> dict:
    return dict(fault=fault, attempts=attempts, survived=survived, lost=attempts - survived, check=check)


def _log(path: str) -> str:
    return open(path, errors='replace').read() if osp.isfile(path) else ''


def _pth(d: str) -> list[str]:
    return [f for f in os.listdir(d) if f.endswith('.pth')] if osp.isdir(d) else []


def _setup(ctx: dict) -> dict:
    """Tiny latent shards (4 x 4 x 4, labels 0..2, flips, statistics), a tiny VAE config + checkpoint, a valid
    2048-d reference ``.npz``; cached in ``ctx``."""
    if 'dit' in ctx:
        return ctx['dit']
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from transvae.registry import MODELS
    d = osp.join(ctx['out'], 'dit')
    lat = osp.join(d, 'latents')
    os.makedirs(lat, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    allz = []
    for i, n in enumerate((6, 6)):
        z = torch.randn(n, 4, 4, 4, generator=g)
        save_file(dict(latents=z, latents_flip=z.flip(-1), labels=torch.arange(n) % 3,
                       indices=torch.arange(i * 6, i * 6 + n)), osp.join(lat, f'latents_{i:05d}.safetensors'),
                  metadata={'json': json.dumps(dict(num_shards=2, shard=i, shard_size=6, flip=True))})
        allz += [z, z.flip(-1)]
    both = torch.cat(allz)
    save_file({'mean': both.mean(dim=(0, 2, 3)).view(1, -1, 1, 1), 'std': both.std(dim=(0, 2, 3)).view(1, -1, 1, 1)},
              osp.join(lat, 'latents_stats.safetensors'))
    vae_cfg = osp.join(d, 'vae.py')
    with open(vae_cfg, 'w') as f:
        f.write(f"default_scope = 'transvae'\nmodel = {VAE!r}\n")
    torch.manual_seed(0)
    vae_ckpt = osp.join(d, 'vae.pth')
    torch.save({'state_dict': MODELS.build(VAE).state_dict()}, vae_ckpt)
    ref = osp.join(d, 'ref.npz')
    np.savez(ref, mu=np.zeros(2048), sigma=np.eye(2048))
    ctx['dit'] = dict(dir=d, lat=lat, vae_cfg=vae_cfg, vae_ckpt=vae_ckpt, ref=ref)
    return ctx['dit']


def _config(ctx: dict, name: str, lat: str | None = None, iters: int = 4, hooks: list | None = None,
            latent_size: int = 4, in_channels: int = 4, scale: float = 1.0, reference: str | None = None) -> str:
    s = _setup(ctx)
    path = osp.join(s['dir'], f'{name}.py')
    with open(path, 'w') as f:
        f.write(DIT_CONFIG.format(base=DIT_BASE, lat=lat or s['lat'], iters=iters, hooks=list(hooks or []),
                                  latent_size=latent_size, in_channels=in_channels, scale=scale,
                                  vae_cfg=s['vae_cfg'], vae_ckpt=s['vae_ckpt'], reference=reference or s['ref']))
    return path


def _dit_checkpoint(ctx: dict, nan: bool = False) -> str:
    import torch
    from mmengine.config import Config

    from transvae.registry import MODELS
    s = _setup(ctx)
    path = osp.join(s['dir'], f'dit{"_nan" if nan else ""}.pth')
    if not osp.isfile(path):
        torch.manual_seed(1)
        sd = MODELS.build(Config.fromfile(_config(ctx, 'weights')).model).state_dict()
        if nan:  # a diverged run: the output layer is NaN
            for k, v in sd.items():
                if 'final_layer' in k and v.is_floating_point():
                    v.fill_(float('nan'))
        torch.save({'state_dict': sd}, path)
    return path


# ------------------------------------------------------------------------------------------------------------- rows
def _corrupt_shards(ctx: dict) -> dict:
    """Truncated / garbage / inconsistent shards and statistics: DiT training refuses at dataset build, naming the
    file, before any checkpoint."""
    import torch
    from safetensors.torch import save_file
    s = _setup(ctx)
    cases = []
    for kind in ('truncated', 'garbage', 'lengths', 'stats_channels', 'missing_shard'):
        lat = osp.join(s['dir'], f'lat_{kind}')
        shutil.rmtree(lat, ignore_errors=True)
        shutil.copytree(s['lat'], lat)
        bad = osp.join(lat, 'latents_00001.safetensors')
        if kind == 'truncated':
            os.truncate(bad, osp.getsize(bad) * 2 // 3)
        elif kind == 'garbage':
            with open(bad, 'wb') as f:
                f.write(os.urandom(300))
        elif kind == 'lengths':
            save_file(dict(latents=torch.zeros(6, 4, 4, 4), latents_flip=torch.zeros(6, 4, 4, 4),
                           labels=torch.zeros(5, dtype=torch.int64)), bad, metadata={'json': '{"num_shards": 2}'})
        elif kind == 'stats_channels':
            bad = osp.join(lat, 'latents_stats.safetensors')
            save_file({'mean': torch.zeros(1, 3, 1, 1), 'std': torch.ones(1, 3, 1, 1)}, bad)
        else:
            os.remove(bad)
            bad = 'latents_00001.safetensors'
        cases.append((kind, lat, bad))
    ok = 0
    for kind, lat, bad in cases:
        wd = osp.join(s['dir'], f'train_{kind}')
        log = wd + '.log'
        rc = L.train([_config(ctx, f'corrupt_{kind}', lat=lat), '--work-dir', wd], log)
        ok += int(rc != 0 and bad in _log(log) and not _pth(wd))
    return _row('corrupt latent shards in DiT training: truncated (`os.truncate`), garbage bytes, arrays of different '
                'lengths, statistics of 3 channels for 4-channel latents, a missing shard', len(cases), ok,
                'refused at dataset build with the file named, no checkpoint written')


def _sigkill_resume(ctx: dict) -> dict:
    iters = 4 if ctx['quick'] else 6
    s = _setup(ctx)
    ref_dir = osp.join(s['dir'], 'ref_run')
    cfg = _config(ctx, 'plain', iters=iters)
    if not osp.isfile(osp.join(ref_dir, f'iter_{iters}.pth')):
        if L.train([cfg, '--work-dir', ref_dir], ref_dir + '.log') != 0:
            raise RuntimeError(f'DiT reference run failed; see {ref_dir}.log')
    ref = L.last_state(ref_dir, f'iter_{iters}.pth')
    ok = 0
    for a in range(ctx['attempts']):
        k = ctx['rng'].randint(1, iters - 1)
        wd = osp.join(s['dir'], f'sigkill_{a}')
        shutil.rmtree(wd, ignore_errors=True)
        kcfg = _config(ctx, f'kill_{a}', iters=iters, hooks=[dict(type='FaultInjectionHook', kill_at_iter=k)])
        rc1 = L.train([kcfg, '--work-dir', wd], wd + '.log')
        rc2 = L.train([cfg, '--work-dir', wd, '--resume'], wd + '.log')
        if rc1 == -9 and rc2 == 0:
            got = L.last_state(wd, f'iter_{iters}.pth')
            ema = all(__import__('torch').equal(ref['ema_state_dict'][n], got['ema_state_dict'][n])
                      for n in ref.get('ema_state_dict', {}))
            ok += int(L.same_training_state(ref, got) and ema)
    return _row('SIGKILL of DiT training (LightningDiT, `TransVAERunner`) at a random iteration, then `--resume`',
                ctx['attempts'], ok, 'weights, EMA and AdamW moments bit-identical to an uninterrupted run')


def _sampling_settings(ctx: dict) -> dict:
    from mmengine.config import Config

    from transvae.engine.config_validation import ConfigValueError
    from transvae.registry import MODELS
    from transvae.apis import register_all_modules
    register_all_modules()
    import projects.lightningdit.lightningdit  # noqa: F401
    model = Config.fromfile(_config(ctx, 'settings')).model.to_dict()
    bad = [('guidance', dict(type='ClassifierFreeGuidance', scale=float('inf'))),
           ('guidance', dict(type='ClassifierFreeGuidance', scale=float('nan'))),
           ('guidance', dict(type='ClassifierFreeGuidance', scale=-2.0)),
           ('guidance', dict(type='ClassifierFreeGuidance', scale=4.0, interval_start=float('nan'))),
           ('sampler', dict(type='EulerODESampler', num_steps=0)),
           ('sampler', dict(type='EulerODESampler', num_steps=2, shift=float('inf')))]
    ok = 0
    for key, val in bad:
        try:
            MODELS.build(dict(model, **{key: val}))
        except ConfigValueError as e:
            ok += int(f'model.{key}.' in str(e))
    # a DiT checkpoint with NaN weights: its samples are refused before any image is decoded or FID computed
    s = _setup(ctx)
    wd = osp.join(s['dir'], 'nan_samples')
    out = wd + '.json'
    rc = L.tool('test', [_config(ctx, 'nan_test'), _dit_checkpoint(ctx, nan=True), '--work-dir', wd, '--out', out],
                wd + '.log')
    ok += int(rc != 0 and 'generated latents are not finite' in _log(wd + '.log') and not osp.isfile(out))
    return _row('non-finite sampling settings (CFG scale inf / NaN / -2, interval NaN, 0 steps, shift inf) and a DiT '
                'with NaN weights in `tools/test.py`', len(bad) + 1, ok,
                'settings refused when the model is built, naming the key; NaN samples refused before decoding, no '
                'FID and no report written')


def _fid_statistics(ctx: dict) -> dict:
    import numpy as np
    s = _setup(ctx)
    d = osp.join(s['dir'], 'refs')
    os.makedirs(d, exist_ok=True)
    refs = {'missing': osp.join(d, 'missing.npz')}
    refs['npy'] = osp.join(d, 'npy.npz')
    with open(refs['npy'], 'wb') as f:
        np.save(f, np.zeros(2048))
    refs['truncated'] = osp.join(d, 'truncated.npz')
    shutil.copy(s['ref'], refs['truncated'])
    os.truncate(refs['truncated'], osp.getsize(s['ref']) // 2)
    refs['no_sigma'] = osp.join(d, 'no_sigma.npz')
    np.savez(refs['no_sigma'], mu=np.zeros(2048))
    refs['wrong_dim'] = osp.join(d, 'wrong_dim.npz')
    np.savez(refs['wrong_dim'], mu=np.zeros(64), sigma=np.eye(64))
    ckpt = _dit_checkpoint(ctx)
    ok = 0
    for kind, ref in refs.items():
        wd = osp.join(s['dir'], f'fid_{kind}')
        rc = L.tool('test', [_config(ctx, f'fid_{kind}', reference=ref), ckpt, '--work-dir', wd], wd + '.log')
        text = _log(wd + '.log')
        ok += int(rc != 0 and ref in text and 'Iter(test)' not in text)
    return _row('missing / malformed FID reference statistics for the DiT evaluation: missing, a `.npy` named `.npz`, '
                'truncated, no `sigma`, 64-d instead of 2048-d', len(refs), ok,
                '`tools/test.py` refuses when the metric is built, naming the file, before the first sample')


def _dit_shape(ctx: dict) -> dict:
    s = _setup(ctx)
    ok = 0
    cases = [('latent_size', dict(latent_size=8)), ('in_channels', dict(in_channels=8))]
    for name, kw in cases:
        wd = osp.join(s['dir'], f'shape_{name}')
        rc = L.train([_config(ctx, f'shape_{name}', **kw), '--work-dir', wd], wd + '.log')
        text = _log(wd + '.log')
        ok += int(rc != 0 and 'error:' in text and f'model.{"backbone." if name == "in_channels" else ""}{name}'
                  in text and not _pth(wd))
    return _row('DiT `latent_size` / `in_channels` different from the latent data', len(cases), ok,
                'refused before the first step naming both values, no checkpoint written')


def _extract(ctx: dict) -> list[dict]:
    import torch

    from transvae.registry import MODELS
    from transvae.utils.latent_shards import list_shards
    root = osp.join(ctx['out'], 'images', 'extract_dit')
    other = root + '_other'
    if not osp.isdir(other):
        L.write_images(root, 8)
        L.write_images(other, 8, seed=1)
    d = osp.join(ctx['out'], 'dit_extract')
    os.makedirs(d, exist_ok=True)
    cfg = L.write_config(osp.join(d, 'cfg.py'), root)
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = osp.join(d, f'vae_{seed}.pth')
        torch.save({'state_dict': MODELS.build(L.DRILL_MODEL).state_dict()}, path)
        ckpts.append(path)
    out = osp.join(d, 'lat')
    shutil.rmtree(out, ignore_errors=True)
    base = ['--out', out, '--shard-size', '3', '--num-workers', '0', '--device', 'cpu']
    if L.tool('extract_latents', [cfg, ckpts[0]] + base, osp.join(d, 'first.log')) != 0:
        raise RuntimeError(f'extract_latents failed; see {d}/first.log')
    os.remove(osp.join(out, 'latents_00002.safetensors'))  # interrupted: one shard to go

    def files():
        return {f: open(osp.join(out, f), 'rb').read() for f in sorted(os.listdir(out)) if f.startswith('latents_')}

    before = files()
    ok = 0
    variants = [('another checkpoint', [cfg, ckpts[1]] + base, 'checkpoint_sha256'),
                ('--flip', [cfg, ckpts[0]] + base + ['--flip'], 'flip'),
                ('--resolution 16', [cfg, ckpts[0]] + base + ['--resolution', '16'], 'resolution'),
                ('another data root', [cfg, ckpts[0]] + base + ['--data-root', other], 'config_sha256')]
    for i, (_, argv, key) in enumerate(variants):
        log = osp.join(d, f'variant_{i}.log')
        rc = L.tool('extract_latents', argv, log)
        ok += int(rc != 0 and f'{key}: recorded' in _log(log) and files() == before)
    rc = L.tool('extract_latents', [cfg, ckpts[0]] + base, osp.join(d, 'resume.log'))  # the same settings: resumes
    resumed = rc == 0 and len(list_shards(out)) == 3
    rows = [_row('`extract_latents` resumed into an `--out` of another extraction: another checkpoint, `--flip`, '
                 '`--resolution`, another data root', len(variants), ok,
                 'refused naming what differs (`latents_provenance.json`), the shards byte-identical; the same '
                 f'settings then resume{"" if resumed else " (FAILED)"}')]
    # a VAE with a NaN weight: refused before any shard is written
    sd = torch.load(ckpts[0])['state_dict']
    next(v for v in sd.values() if v.is_floating_point()).view(-1)[0] = float('nan')
    nan_ckpt = osp.join(d, 'vae_nan.pth')
    torch.save({'state_dict': sd}, nan_ckpt)
    nan_out = osp.join(d, 'lat_nan')
    rc = L.tool('extract_latents', [cfg, nan_ckpt, '--out', nan_out, '--num-workers', '0', '--device', 'cpu'],
                osp.join(d, 'nan.log'))
    ok_nan = int(rc != 0 and 'not finite' in _log(osp.join(d, 'nan.log')) and not list_shards(nan_out))
    rows.append(_row('`extract_latents` with a VAE checkpoint holding a NaN weight', 1, ok_nan,
                     'refused when the weights are loaded, naming the checkpoint and tensor; no shard, no statistics'))
    rows[0]['survived'] -= 0 if resumed else 1
    rows[0]['lost'] = rows[0]['attempts'] - rows[0]['survived']
    return rows


def drill_dit(ctx: dict) -> list[dict]:
    """The DiT rows: latent data (corrupt shards), training (SIGKILL + resume, shape mismatch), sampling (settings,
    NaN samples), FID (reference statistics), and ``extract_latents`` (resume provenance, NaN weights)."""
    rows = [_corrupt_shards(ctx), _dit_shape(ctx), _sigkill_resume(ctx), _sampling_settings(ctx),
            _fid_statistics(ctx)]
    return rows + _extract(ctx)
