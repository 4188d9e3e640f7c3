"""The GPU check's pieces (``tools/analysis_tools/gpu_check.sh`` runs them): the configs it trains, the inputs it
makes, the bf16 peak of the device, and the report it writes.

The check trains the paper's real recipe configs with the real Runner for a few iterations each; it changes only
what a GPU machine without ImageNet needs and what a short run must not do, and writes each change into a config
file of its own (``_base_`` = the recipe) so the run is ``tools/train.py THAT_FILE`` and can be read and repeated:

* data: the bundled photo set (``SamplePhotosDataset``) at the recipe's crop size (256²) instead of ImageNet;
  LightningDiT reads latent shards of random values of the right shape (:func:`write_random_latents`), labelled so;
* the VF loss's DINOv2 ViT-L/14 reads the recipe's weights file when it exists, else a file of random weights of the
  same architecture (:func:`write_random_dinov2`): the same FLOPs, no download;
* no validation / test loop (their data are ImageNet), no checkpoint at the end except where the next step loads it;
* :class:`~transvae.benchmark.step_meter.StepMeterHook` measures the run from inside the Runner.

``dry_run`` adds the tiny sizes (widths, crop, batch, DiT size) that let the same steps run on a CPU in seconds.

MFU = FLOPs per step (counted by ``FlopCounterMode`` in the measured run) / median step time / the device's dense
bf16 peak (:data:`PEAK_BF16_TFLOPS`, from the device name, or an override, or a measured matmul peak where the
table has no entry: the report says which).
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ['PEAK_BF16_TFLOPS', 'TrainStep', 'bf16_peak', 'config_text', 'write_random_latents',
           'write_random_dinov2', 'train_row', 'benchmark_rows', 'planner_row', 'render_markdown', 'fmt_bytes']

#: dense (no sparsity) bf16 tensor-core peak in TFLOP/s by device-name pattern, first match wins (NVIDIA datasheets)
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    (r'GH200', 989.4),
    (r'H200 NVL', 835.5),
    (r'H200', 989.4),
    (r'H100 PCIe', 756.5),
    (r'H100 NVL', 835.5),
    (r'H100|H800', 989.4),
    (r'B200', 2250.0),
    (r'A100|A800', 312.0),
    (r'L40S', 362.1),
    (r'L40\b', 181.0),
    (r'\bL4\b', 121.0),
    (r'\bA10\b', 125.0),
    (r'RTX 4090', 165.2),
    (r'RTX 3090', 71.0),
)


def bf16_peak(device_name: Optional[str], override_tflops: Optional[float] = None,
              measured_tflops: Optional[float] = None, measured_what: str = 'measured matmul peak'
              ) -> dict[str, Any]:
    """The peak that MFU is taken against: ``override_tflops``, else the table entry of ``device_name``, else
    ``measured_tflops`` (labelled ``measured_what``); ``tflops`` is ``None`` when none is known.

    Returns:
        ``dict(tflops=..., source=...)``.
    """
    if override_tflops:
        return dict(tflops=float(override_tflops), source='--peak-tflops')
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if device_name and re.search(pattern, device_name):
            return dict(tflops=tflops, source=f'dense bf16 datasheet peak of {pattern!r} (matched {device_name!r})')
    if measured_tflops:
        return dict(tflops=float(measured_tflops), source=measured_what)
    return dict(tflops=None, source=f'unknown device {device_name!r}: give --peak-tflops')


@dataclass
class TrainStep:
    """One training step of the check: a recipe config, what the check changes in it, how it is launched.

    Attributes:
        name: short key (``t_stage1``, ``l_fsdp``, ``t_gan``, ``dit_b1``): file and JSON names.
        title: one line for the report.
        base_config: the recipe config (repository-relative).
        overrides: top-level config keys the check sets (merged into the recipe as a child config does).
        iters: iterations to train.
        launcher: ``'train'`` (``tools/train.py``) or ``'dist1'`` (``tools/dist_train.sh CONFIG 1``).
        amp: pass ``--amp --amp-dtype bfloat16`` (the recipe has no AMP wrapper of its own).
        plan: ask the run planner for this step's prediction.
        batch: the per-GPU batch the step trains with (the recipe's, or the dry run's).
        notes: what the report should say about this step's inputs (random weights / data).
    """

    name: str
    title: str
    base_config: str
    overrides: dict[str, Any]
    iters: int
    launcher: str = 'train'
    amp: bool = True
    plan: bool = True
    batch: int = 0
    notes: list[str] = field(default_factory=list)


def config_text(base_config: str, overrides: dict[str, Any], header: str) -> str:
    """The text of a child config: ``_base_ = [base_config]`` (absolute) and one ``key = value`` line per override.

    Values must be Python literals (``repr`` round-trips them); mmengine merges dicts into the recipe's and replaces
    lists and scalars, as in any leaf config (``_delete_=True`` inside a dict replaces it whole).
    """
    lines = [f'# {ln}' if ln else '#' for ln in header.splitlines()]
    lines.append(f'_base_ = [{osp.abspath(base_config)!r}]')
    for key, value in overrides.items():
        lines.append(f'{key} = {value!r}')
    return '\n'.join(lines) + '\n'


def write_random_latents(root: str, shape: tuple[int, int, int], num: int, num_classes: int,
                         shards: int = 2, seed: int = 0) -> dict[str, Any]:
    """Latent shards of standard-normal values in the layout of ``tools/extract_latents.py --flip`` (labels cycle
    over ``num_classes``), with their channel statistics: input for a LightningDiT speed run, not for learning.

    Args:
        root: new folder to write.
        shape: ``(d, h, w)`` of one latent.
        num: latents in all.
        num_classes: labels are ``i % num_classes``.
        shards: number of shard files.
        seed: generator seed.

    Returns:
        what was written (for the report).
    """
    import torch
    from safetensors.torch import save_file

    from transvae.utils.latent_shards import STATS_FILE, shard_path
    os.makedirs(root, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    per = math.ceil(num / shards)
    s1 = torch.zeros(shape[0], dtype=torch.float64)
    s2 = torch.zeros(shape[0], dtype=torch.float64)
    count, start = 0, 0
    for i in range(shards):
        n = min(per, num - start)
        z = torch.randn(n, *shape, generator=g)
        zf = z.flip(-1)
        idx = torch.arange(start, start + n)
        meta = dict(num_shards=shards, shard=i, shard_size=per, flip=True, source='random N(0, 1) latents (gpu_check)')
        save_file(dict(latents=z, latents_flip=zf, labels=idx % num_classes, indices=idx), shard_path(root, i),
                  metadata={'json': json.dumps(meta)})
        for t in (z, zf):
            s1 += t.double().sum(dim=(0, 2, 3))
            s2 += t.double().pow(2).sum(dim=(0, 2, 3))
            count += t.shape[0] * shape[1] * shape[2]
        start += n
    mean = s1 / count
    std = (s2 / count - mean ** 2).clamp_min(0).sqrt()
    save_file({'mean': mean.float().view(1, -1, 1, 1), 'std': std.float().view(1, -1, 1, 1)},
              osp.join(root, STATS_FILE))
    return dict(root=root, shape=list(shape), num=num, num_classes=num_classes, shards=shards,
                values='random N(0, 1)')


def write_random_dinov2(path: str, arch: str, img_size: int = 224, model_kwargs: Optional[dict] = None,
                        seed: int = 0) -> dict[str, Any]:
    """A safetensors file of randomly initialised timm ``arch`` weights (the architecture the ``DINOv2`` VF target
    builds): the VF loss then costs what it costs with the real weights, without them.

    Returns:
        what was written (for the report).
    """
    import timm
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    net = timm.create_model(arch, pretrained=False, img_size=img_size, num_classes=0, **(model_kwargs or {}))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    save_file(state, tmp)
    os.replace(tmp, path)
    return dict(path=path, arch=arch, params=sum(v.numel() for v in state.values()), weights='random (timm init)')


# ---------------------------------------------------------------------------------------------------------------------
# report rows
# ---------------------------------------------------------------------------------------------------------------------
def fmt_bytes(n: Optional[float]) -> str:
    """``n`` bytes as GiB (``'-'`` for ``None``)."""
    return '-' if n is None else f'{n / 2**30:.2f} GiB'


def _finite_losses(losses: list[dict]) -> Optional[bool]:
    vals = [v for d in losses for k, v in d.items() if 'loss' in k and isinstance(v, float)]
    return None if not vals else all(math.isfinite(v) for v in vals)


def _total_loss(d: dict) -> Optional[float]:
    """The step's total loss: mmengine's ``loss`` (the sum of the ``loss*`` terms), else that sum (the GAN stage logs
    its generator and discriminator terms without a total)."""
    if isinstance(d.get('loss'), float):
        return d['loss']
    vals = [v for k, v in d.items() if k.startswith('loss') and isinstance(v, float)]
    return sum(vals) if vals else None


def planner_row(planner: dict, measured_peak: Optional[float], flops_counted: Optional[int],
                step_s: Optional[float]) -> dict[str, Any]:
    """Predicted (the run planner's JSON) against measured: peak memory, FLOPs per step, step time."""
    if planner.get('status') != 'ok':
        return dict(status=planner.get('status', 'planner unavailable'), detail=planner.get('detail'))
    pred_peak = planner.get('peak_memory_bytes')
    pred_flops = planner.get('flops_per_step')
    pred_step = planner.get('step_time_s')
    return dict(
        status='ok', predicted_peak_bytes=pred_peak, measured_peak_bytes=measured_peak,
        measured_over_predicted_peak=(measured_peak / pred_peak) if measured_peak and pred_peak else None,
        predicted_flops_per_step=pred_flops,
        counted_over_predicted_flops=(flops_counted / pred_flops) if flops_counted and pred_flops else None,
        predicted_step_s=pred_step, measured_over_predicted_step=(step_s / pred_step) if step_s and pred_step else None,
        fits=planner.get('fits'))


def train_row(step: TrainStep, meter: Optional[dict], peak: dict, planner: Optional[dict]) -> dict[str, Any]:
    """The report row of one training step from its :class:`StepMeterHook` record (``None``: nothing measured)."""
    row: dict[str, Any] = dict(step=step.name, title=step.title, config=step.base_config, iters_requested=step.iters,
                               notes=list(step.notes))
    if not meter:
        row.update(measured=False)
        if planner is not None:
            row['planner'] = planner_row(planner, None, None, None)
        return row
    summ = meter.get('summary', {})
    step_s = summ.get('median_s')
    iters = [t for t in meter.get('iter_s', [])][min(2, max(len(meter.get('iter_s', [])) - 1, 0)):]
    flops = meter.get('flops_per_step')
    achieved = flops / step_s if flops and step_s else None
    tflops = peak.get('tflops')
    mem = meter.get('memory', {})
    measured_peak = mem.get('peak_allocated_bytes')
    if measured_peak is None and mem.get('peak_rss_bytes') is not None:
        measured_peak = mem['peak_rss_bytes']
    losses = meter.get('losses', [])
    row.update(
        measured=True, iters_done=meter.get('iters_done', 0), finished=bool(meter.get('finished')),
        world_size=meter.get('world_size'), batch_size=meter.get('batch_size'), amp_dtype=meter.get('amp_dtype'),
        optim_wrapper=meter.get('optim_wrapper'), params=meter.get('params'),
        trainable_params=meter.get('trainable_params'), device_name=meter.get('device_name'),
        step_s_median=step_s, timed_iters=summ.get('timed_iters', 0),
        iter_s_median=sorted(iters)[len(iters) // 2] if iters else None,
        images_per_s=(meter.get('batch_size') or 0) / step_s if step_s and meter.get('batch_size') else None,
        flops_per_step=flops, achieved_tflops=achieved / 1e12 if achieved else None,
        mfu=achieved / (tflops * 1e12) if achieved and tflops else None, peak_source=peak.get('source'),
        memory_kind=mem.get('kind'), measured_peak_bytes=measured_peak,
        loss_first=_total_loss(losses[0]) if losses else None, loss_last=_total_loss(losses[-1]) if losses else None,
        losses_finite=_finite_losses(losses), flops_by_op_top=dict(list((meter.get('flops_by_op') or {}).items())[:6]))
    if planner is not None:
        cpu_note = None if mem.get('peak_allocated_bytes') is not None else (
            'measured = process peak RSS on the CPU (Python, libraries and the data included): not comparable')
        row['planner'] = dict(planner_row(planner, measured_peak, flops, step_s), measured_note=cpu_note)
    return row


def benchmark_rows(bench: dict, peak_tflops: Optional[float] = None) -> list[dict[str, Any]]:
    """Per resolution and batch: encode / decode medians of our model and the SD-VAE reference, the speed-up, the
    GMAC ratio, the MFU of encode + decode (2 FLOPs per MAC, against ``peak_tflops``) and each peak memory, from
    ``tools/analysis_tools/benchmark.py --json``'s document."""
    rows = []
    models = bench.get('models', {})
    ref = bench.get('reference') or {}
    for name, m in models.items():
        for res, per_b in m.get('latency', {}).items():
            for b, lat in per_b.items():
                rl = ref.get('latency', {}).get(res, {}).get(b, {})
                ratio = bench.get('ratios', {}).get(name, {}).get(f'enc+dec@{res}/b{b}', {})
                row = dict(model=name, res=int(res), batch=int(b), encode_s=lat.get('encode', {}).get('median_s'),
                           decode_s=lat.get('decode', {}).get('median_s'),
                           sdvae_encode_s=rl.get('encode', {}).get('median_s'),
                           sdvae_decode_s=rl.get('decode', {}).get('median_s'),
                           speedup_vs_sdvae=ratio.get('speedup_vs_sdvae'),
                           gmacs_ratio_sdvae_over_ours=ratio.get('gmacs_ratio_sdvae_over_ours'),
                           gmacs=m.get('gmacs', {}).get(res, {}).get('total'),
                           sdvae_gmacs=ref.get('gmacs', {}).get(res, {}).get('total'))
                for who, (e, d, g) in dict(mfu=(row['encode_s'], row['decode_s'], row['gmacs']),
                                           sdvae_mfu=(row['sdvae_encode_s'], row['sdvae_decode_s'],
                                                      row['sdvae_gmacs'])).items():
                    row[who] = (2e9 * g * int(b) / (e + d) / (peak_tflops * 1e12)
                                if e and d and g and peak_tflops else None)
                for mode in ('encode', 'decode'):
                    key = f'{mode}@{res}/b{b}'
                    ours_m = m.get('memory', {}).get(key, {})
                    ref_m = ref.get('memory', {}).get(key, {})
                    row[f'{mode}_peak_mb'] = ours_m.get('peak_delta_mb', ours_m.get('error') and 'error')
                    row[f'sdvae_{mode}_peak_mb'] = ref_m.get('peak_delta_mb', ref_m.get('error') and 'error')
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------------------
def _f(v: Any, nd: int = 3, scale: float = 1.0, suffix: str = '') -> str:
    if v is None or isinstance(v, str):
        return '-' if v is None else v
    return f'{v * scale:.{nd}f}{suffix}'


def _g(v: Any, scale: float = 1.0, suffix: str = '') -> str:
    """Four significant digits (figures that span orders of magnitude: the dry run's and a GPU's)."""
    return '-' if v is None else f'{v * scale:.4g}{suffix}'


def render_markdown(report: dict) -> str:
    """The Markdown report of the check's JSON document."""
    m = report.get('machine', {})
    out = [f"# GPU check ({'dry run on the CPU, tiny sizes' if report.get('dry_run') else 'GPU'})", '',
           f"Command: `{report.get('command', '')}`  ",
           f"Machine: {m.get('device_name') or m.get('device')}, {m.get('cpu_count')} CPUs, torch {m.get('torch')}"
           + (f", {fmt_bytes(m.get('device_memory_bytes'))}" if m.get('device_memory_bytes') else '') + '  ',
           f"Started {report.get('started_utc')}, wall {_f(report.get('wall_s'), 1)} s of a "
           f"{_f(report.get('budget_s'), 0)} s budget.  ",
           f"MFU peak: {_f(report.get('peak', {}).get('tflops'), 1)} TFLOP/s ({report.get('peak', {}).get('source')})",
           '', '## Steps', '', '| step | status | wall s | timeout s | log |', '| --- | --- | --- | --- | --- |']
    for s in report.get('steps', []):
        out.append(f"| {s['name']} | {s['status']} | {_f(s.get('wall_s'), 1)} | {_f(s.get('timeout_s'), 0)} | "
                   f"{s.get('log') or '-'} |")
    rows = report.get('train_rows', [])
    if rows:
        out += ['', '## Training steps (real recipe configs, real Runner)', '',
                '| step | iters | batch | amp | step s (median) | iter s | img/s | TFLOP/step | achieved TFLOP/s | MFU '
                '| peak memory | loss first → last |', '| ' + ' | '.join(['---'] * 12) + ' |']
        for r in rows:
            if not r.get('measured'):
                out.append(f"| {r['step']} | not measured | | | | | | | | | | |")
                continue
            out.append(
                f"| {r['step']} | {r['iters_done']}/{r['iters_requested']} | {r.get('batch_size')} | "
                f"{r.get('amp_dtype') or 'fp32'} | {_f(r.get('step_s_median'), 4)} | {_f(r.get('iter_s_median'), 4)} | "
                f"{_f(r.get('images_per_s'), 1)} | {_g(r.get('flops_per_step'), 1e-12)} | "
                f"{_g(r.get('achieved_tflops'))} | {_g(r.get('mfu'), 100, '%')} | "
                f"{fmt_bytes(r.get('measured_peak_bytes'))} | {_f(r.get('loss_first'), 4)} → "
                f"{_f(r.get('loss_last'), 4)} |")
        out += ['']
        for r in rows:
            out.append(f"- {r['step']}: {r['title']} (`{r['config']}`)" + ''.join(f'; {n}' for n in r.get('notes', [])))
        out += ['', '## Run planner: predicted vs measured', '',
                '| step | planner | predicted peak | measured peak | measured / predicted | counted / predicted FLOPs '
                '| measured / predicted step time | fits |', '| ' + ' | '.join(['---'] * 8) + ' |']
        for r in rows:
            p = r.get('planner')
            if p is None:
                continue
            if p.get('status') != 'ok':
                detail = (p.get('detail') or '').split(' | ')[-1].replace('|', '/')[:160]
                out.append(f"| {r['step']} | {p.get('status')}{': ' + detail if detail else ''} | | | | | | |")
                continue
            out.append(f"| {r['step']} | ok | {fmt_bytes(p.get('predicted_peak_bytes'))} | "
                       f"{fmt_bytes(p.get('measured_peak_bytes'))} | {_f(p.get('measured_over_predicted_peak'), 3)} | "
                       f"{_f(p.get('counted_over_predicted_flops'), 3)} | "
                       f"{_f(p.get('measured_over_predicted_step'), 3)} | {p.get('fits')} |")
            if p.get('measured_note'):
                out.append(f"|  | ({p['measured_note']}) | | | | | | |")
    brows = report.get('benchmark_rows', [])
    if brows:
        out += ['', '## Benchmark against SD-VAE (batch 1; same process, interleaved)', '',
                '| model | res | enc s | dec s | SD-VAE enc s | SD-VAE dec s | speed-up | GMAC ratio '
                '| MFU / SD-VAE MFU | enc / dec peak MiB | SD-VAE enc / dec peak MiB |',
                '| ' + ' | '.join(['---'] * 11) + ' |']
        for b in brows:
            out.append(f"| {b['model']} | {b['res']} | {_f(b['encode_s'], 4)} | {_f(b['decode_s'], 4)} | "
                       f"{_f(b['sdvae_encode_s'], 4)} | {_f(b['sdvae_decode_s'], 4)} | "
                       f"{_f(b['speedup_vs_sdvae'], 2)} | "
                       f"{_f(b['gmacs_ratio_sdvae_over_ours'], 2)} | {_g(b.get('mfu'), 100, '%')} / "
                       f"{_g(b.get('sdvae_mfu'), 100, '%')} | {_f(b['encode_peak_mb'], 0)} / "
                       f"{_f(b['decode_peak_mb'], 0)} | {_f(b['sdvae_encode_peak_mb'], 0)} / "
                       f"{_f(b['sdvae_decode_peak_mb'], 0)} |")
        if report.get('benchmark_reference'):
            out += ['', f"Reference: {report['benchmark_reference']}"]
    fails = [s for s in report.get('steps', []) if s['status'] != 'ok']
    if fails:
        out += ['', '## Failures', '']
        for s in fails:
            out += [f"### {s['name']}: {s['status']}", '']
            out += [s['detail'], ''] if s.get('detail') else []
            out += ['```', *(s.get('tail') or ['(no output)']), '```', ''] if s['status'] != 'skipped' else []
    return '\n'.join(out).rstrip() + '\n'
