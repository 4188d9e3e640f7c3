"""Reconstruction reports: one Markdown + one JSON document for models x (dataset x resolution) settings.

``tools/test.py --report REPORT.md --out REPORT.json`` builds them. Pure functions, no torch / mmengine state:

* :func:`make_setting` / :func:`build_report` assemble the JSON-able report dict (schema :data:`SCHEMA`);
* :func:`render_markdown` turns it into Markdown: for each dataset x resolution a table of models x
  (PSNR, SSIM, LPIPS, rFID) side by side, then the protocol (crop, N evaluated / skipped, posterior mean,
  metric definitions, the rFID network string of ``FIDMetric.protocol``) and a loud warning when N < 2048;
* :func:`write_report` writes both files.

JSON schema (``transvae.reconstruction_report/v1``)::

    {
      "schema": "transvae.reconstruction_report/v1",
      "created": "2026-...Z", "command": "tools/test.py ...",
      "models":   [{"label", "config", "checkpoint"}],                       # in column order
      "settings": [{"dataset", "layout", "data_root", "resolution",       # resolution: int or null (config's)
                    "num_images", "num_skipped", "skipped_files",         # N actually evaluated / unreadable
                    "max_images",                                          # --max-images (null: all)
                    "results": {label: {"psnr", "ssim", "lpips", "rfid", ...}}}],   # float or null (NaN/missing)
      "protocol": {"crop", "latent", "psnr", "ssim", "lpips", "rfid", "tiling", "min_images_for_rfid"},
      "warnings": ["..."],
      "extra":    {...},                                                   # e.g. grid_dir of the single-model path
      "weights":  {label: {"source", "detail"}},      # source: checkpoint | pretrained (own weights) | random
      "random_weights": [label, ...]                  # models evaluated with random initial weights (no checkpoint)
    }

A report with random-weight models says so in its title (``... — RANDOM WEIGHTS (no checkpoint): LABELS``), in
``random_weights`` and in its first warning.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import os.path as osp
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

__all__ = [
    'SCHEMA', 'METRIC_COLUMNS', 'MIN_IMAGES_FOR_RFID', 'default_protocol', 'make_setting',
    'build_report', 'render_markdown', 'write_report', 'canonical_metrics'
]

SCHEMA = 'transvae.reconstruction_report/v1'
#: (key, header, format) of the table columns, in order.
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ('psnr', 'PSNR ↑', '{:.2f}'),
    ('ssim', 'SSIM ↑', '{:.4f}'),
    ('lpips', 'LPIPS ↓', '{:.4f}'),
    ('rfid', 'rFID ↓', '{:.3f}'),
)
#: Below this many images the rFID covariances (2048-d) are rank-deficient: biased, not comparable to the paper.
MIN_IMAGES_FOR_RFID = 2048

PSNR_DEF = ('per image on uint8-quantised images (round(x*255)), 10*log10(255^2/MSE) with the MSE over the 3 '
            'channels and all pixels, then the mean over images')
SSIM_DEF = ('per image on uint8-quantised images (L=255), per RGB channel, 11x11 Gaussian window sigma=1.5, '
            'K1=0.01, K2=0.03, population covariances, 5-px reflect padding (= torchmetrics 1.9 '
            'structural_similarity_index_measure(data_range=255)), mean over channels and pixels, then over images')
LATENT_DEF = 'posterior mean (z = mode of the diagonal Gaussian; no sampling), decoded at the input size'


def _lpips_def(net: str) -> str:
    return (f'LPIPS v0.1 with the {"AlexNet" if net == "alex" else "VGG16"} backbone (net={net!r}) on '
            'uint8-quantised images mapped to [-1, 1], mean over images')


def _fid_protocol() -> str:
    try:  # the string FIDMetric writes into the log (the single source of truth)
        from transvae.evaluation.metrics.fid import FIDMetric
        return FIDMetric.protocol
    except Exception as e:  # pragma: no cover - e.g. the offline weights package is missing
        return f'(FIDMetric.protocol unavailable: {e})'


def default_protocol(lpips_net: str = 'alex', tiling: str = 'none', crop: Optional[str] = None) -> dict[str, Any]:
    """The protocol section (strings) of a report."""
    return dict(
        crop=crop or ('resize the short side to R px (bicubic, PIL, antialiased), then a centre crop of RxR, '
                      'R = the resolution of each table'),
        latent=LATENT_DEF,
        psnr=PSNR_DEF,
        ssim=SSIM_DEF,
        lpips=_lpips_def(lpips_net),
        rfid=_fid_protocol(),
        tiling=tiling,
        min_images_for_rfid=MIN_IMAGES_FOR_RFID,
    )


def _num(v: Any) -> Optional[float]:
    """float, or None for missing / non-finite values (JSON has no NaN / inf)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def canonical_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Map metric keys (possibly prefixed, e.g. ``test/psnr`` or ``tiny/psnr``) to ``psnr`` / ``ssim`` / ``lpips``
    / ``rfid`` (always present; None when missing); other keys are kept under their own name. Values: float or
    None (NaN / inf / not a number)."""
    names = {k for k, _, _ in METRIC_COLUMNS}
    out: dict[str, Any] = {k: None for k, _, _ in METRIC_COLUMNS}
    for key, value in metrics.items():
        short = str(key).rsplit('/', 1)[-1]
        name = short if short in names else str(key)
        if name in names and name in out and out[name] is not None:
            continue  # keep the first of e.g. 'psnr' and 'x/psnr'
        out[name] = _num(value) if name in names else (value if isinstance(value, (str, bool)) else _num(value))
    return out


def make_setting(dataset: str,
                 resolution: Optional[int],
                 results: Mapping[str, Mapping[str, Any]],
                 num_images: Optional[int] = None,
                 num_skipped: int = 0,
                 skipped_files: Sequence[str] = (),
                 layout: str = '',
                 data_root: str = '',
                 max_images: Optional[int] = None) -> dict[str, Any]:
    """One dataset x resolution entry; ``results`` maps a model label to its metric dict."""
    return dict(
        dataset=dataset,
        layout=layout,
        data_root=data_root,
        resolution=None if resolution is None else int(resolution),
        num_images=None if num_images is None else int(num_images),
        num_skipped=int(num_skipped),
        skipped_files=sorted(set(skipped_files)),
        max_images=max_images,
        results={label: canonical_metrics(m) for label, m in results.items()},
    )


def _has_rfid(setting: Mapping[str, Any]) -> bool:
    return any(m.get('rfid') is not None for m in setting.get('results', {}).values())


def _warnings(settings: Iterable[Mapping[str, Any]]) -> list[str]:
    out = []
    for s in settings:
        n = s.get('num_images')
        where = f"{s['dataset']} @ {s['resolution'] or 'config'}"
        if not _has_rfid(s):
            out.append(f'{where}: rFID not computed (no FIDMetric in the evaluator).')
        elif n is None or n < MIN_IMAGES_FOR_RFID:
            out.append(f'{where}: rFID on N={n} images (< {MIN_IMAGES_FOR_RFID}) is biased upwards and NOT '
                       "comparable to the paper's (ImageNet val 50k / COCO val2017 5k).")
        if s.get('num_skipped'):
            out.append(f"{where}: {s['num_skipped']} unreadable image(s) skipped (listed in the JSON report).")
    return out


def _default_weights(model: Mapping[str, Any]) -> dict[str, str]:
    if model.get('checkpoint'):
        return dict(source='checkpoint', detail=str(model['checkpoint']))
    return dict(source='pretrained', detail="no checkpoint: the model's own weights")


def build_report(models: Sequence[Mapping[str, Any]],
                 settings: Sequence[Mapping[str, Any]],
                 protocol: Optional[Mapping[str, Any]] = None,
                 command: str = '',
                 title: str = 'Reconstruction benchmark',
                 extra: Optional[Mapping[str, Any]] = None,
                 weights: Optional[Mapping[str, Mapping[str, str]]] = None) -> dict[str, Any]:
    """The JSON-able report (see the module docstring for the schema).

    ``weights`` maps a model label to ``{'source': 'checkpoint' | 'pretrained' | 'random', 'detail'}``
    (:func:`transvae.evaluation.protocol.weights_info`); a model without an entry is described by its checkpoint.
    """
    weights = {m['label']: dict((weights or {}).get(m['label']) or _default_weights(m)) for m in models}
    random = [label for label, w in weights.items() if w.get('source') == 'random']
    warnings = _warnings(settings)
    if random:
        title = f"{title} — RANDOM WEIGHTS (no checkpoint): {', '.join(random)}"
        warnings.insert(0, f"{', '.join(random)}: evaluated with random initial weights (no checkpoint, "
                        '--random-weights); these numbers describe an untrained model.')
    return dict(
        schema=SCHEMA,
        title=title,
        created=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        command=command,
        models=[dict(label=m['label'], config=m.get('config', ''), checkpoint=m.get('checkpoint')) for m in models],
        settings=[dict(s) for s in settings],
        protocol=dict(protocol or default_protocol()),
        warnings=warnings,
        extra=dict(extra or {}),
        weights=weights,
        random_weights=random,
    )


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return '–'
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return str(value)


def _table(setting: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    results = setting.get('results', {})
    extra_keys: list[str] = []
    for label in labels:
        for k in results.get(label, {}):
            if k not in {c for c, _, _ in METRIC_COLUMNS} and k not in extra_keys:
                extra_keys.append(k)
    header = ['Model'] + [h for _, h, _ in METRIC_COLUMNS] + extra_keys
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for label in labels:
        if label not in results:
            continue
        m = results[label]
        cells = [label] + [_fmt(m.get(k), f) for k, _, f in METRIC_COLUMNS] + [_fmt(m.get(k), '{:.4g}')
                                                                              for k in extra_keys]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    """Markdown: one table per setting, the protocol, the warnings, the models.

    A report that names a ``renderer`` (a report layout registered in ``FUNCTIONS`` by a project, e.g. the generation
    FID of ``projects/lightningdit``) is rendered by it instead.
    """
    if report.get('renderer'):
        from transvae.registry import FUNCTIONS
        return FUNCTIONS.get(report['renderer'])(report)
    labels = [m['label'] for m in report['models']]
    proto = report.get('protocol', {})
    out = [f"# {report.get('title', 'Reconstruction benchmark')}", '']
    if report.get('command'):
        out += [f"Command: `{report['command']}`  ", f"Created: {report.get('created', '')}", '']
    low_n = [s for s in report['settings'] if (s.get('num_images') or 0) < MIN_IMAGES_FOR_RFID and _has_rfid(s)]
    if low_n:
        out += [f'> **WARNING: rFID on fewer than {MIN_IMAGES_FOR_RFID} images is biased upwards and NOT comparable '
                "to the paper's numbers** (ImageNet val 50k / COCO val2017 5k images). Affected: " + ', '.join(
                    f"{s['dataset']}@{s['resolution'] or 'config'} (N={s.get('num_images')})" for s in low_n) + '.',
                '']
    for s in report['settings']:
        res = s.get('resolution')
        res_txt = f'{res}×{res}' if res else "config's test pipeline"
        n_txt = f"N = {s.get('num_images')} images evaluated"
        if s.get('num_skipped'):
            n_txt += f", {s['num_skipped']} unreadable skipped"
        if s.get('max_images'):
            n_txt += f" (--max-images {s['max_images']})"
        out += [f"## {s['dataset']} @ {res_txt}", '', f"{n_txt}; data: `{s.get('data_root') or '-'}`"
                + (f" (layout {s['layout']})" if s.get('layout') else ''), '']
        out += _table(s, labels) + ['']
    out += ['## Protocol', '']
    out += [f"- **Crop:** {proto.get('crop', '')}"]
    out += ['- **N per setting:** ' + '; '.join(
        f"{s['dataset']}@{s['resolution'] or 'config'}: {s.get('num_images')} evaluated, "
        f"{s.get('num_skipped', 0)} skipped" for s in report['settings'])]
    out += [f"- **Latent:** {proto.get('latent', '')}",
            f"- **PSNR:** {proto.get('psnr', '')}",
            f"- **SSIM:** {proto.get('ssim', '')}",
            f"- **LPIPS:** {proto.get('lpips', '')}",
            f"- **rFID:** {proto.get('rfid', '')}",
            f"- **Tiling:** {proto.get('tiling', 'none')}"]
    for k, v in proto.items():
        if k not in ('crop', 'latent', 'psnr', 'ssim', 'lpips', 'rfid', 'tiling', 'min_images_for_rfid'):
            out.append(f'- **{k}:** {v}')
    out.append('')
    if report.get('warnings'):
        out += ['## Warnings', ''] + [f'- **{w}**' for w in report['warnings']] + ['']
    extra = report.get('extra') or {}
    if extra:
        out += ['## Outputs', ''] + [f'- {k}: `{v}`' for k, v in extra.items()] + ['']
    weights = report.get('weights') or {}
    out += ['## Models', '', '| Label | Config | Weights |', '|---|---|---|']
    for m in report['models']:
        w = weights.get(m['label']) or _default_weights(m)
        cell = f"`{w['detail']}`" if w.get('source') == 'checkpoint' else (
            f"**{w['detail']}**" if w.get('source') == 'random' else w['detail'])
        out.append(f"| {m['label']} | `{m.get('config', '')}` | {cell} |")
    return '\n'.join(out) + '\n'


def write_report(report: Mapping[str, Any], md_path: Optional[str] = None, json_path: Optional[str] = None,
                 json_extra: Optional[Mapping[str, Any]] = None) -> None:
    """Write the Markdown (``md_path``) and / or the JSON (``json_path``; ``json_extra`` keys added on top)."""
    if md_path:
        os.makedirs(osp.dirname(osp.abspath(md_path)), exist_ok=True)
        with open(md_path, 'w', encoding='utf-8') as f:
            f.write(render_markdown(report))
    if json_path:
        os.makedirs(osp.dirname(osp.abspath(json_path)), exist_ok=True)
        data = dict(json_extra or {})
        data.update(report)
        with open(json_path, 'w', encoding='utf-8') as f:
            json.dump(data, f, indent=2)  # report values are NaN-free; legacy `metrics` may hold NaN
