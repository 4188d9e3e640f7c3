"""What a component of our model costs, and the most a faster kernel for it could gain.

A component (the per-head Q/K norm, RoPE) is removed through config overrides, which leaves the counted MACs
unchanged (norms and rotations are not MACs), and the model is timed without it, interleaved repeat by repeat with
the plain model and the reference, in one process. A removed component costs nothing at all, so the figures read
with it removed are an **upper bound** on what any fused or hand-written kernel of that component can reach: if a
target is missed even then, no kernel of that component alone reaches it.

Two figures per removal, the two speed targets of the benchmark:

* enc+dec at the first resolution (batch 1): our speed-up over SD-VAE divided by the GMAC ratio (1.0: our model is as
  fast per MAC as SD-VAE);
* the micro training step: our achieved FLOP/s over the plain conv VAE's (3 × forward MACs × 2 / step time for
  both).
"""
from __future__ import annotations

import statistics
from typing import Any, Callable

import torch

from .options import BenchmarkOptions
from .targets import CodecTarget, build_ours, build_sdvae, codec_macs, train_step_flops
from .timing import interleaved, make_train_step, no_grad_call

__all__ = ['COMPONENT_REMOVALS', 'removal_options', 'run_component_costs']

#: component -> the config overrides that remove it (``_delete_`` replaces the whole sub-dict)
COMPONENT_REMOVALS: dict[str, dict[str, Any]] = {
    'qk_norm': {'model.arch.block_cfg.attn_cfg.qk_norm_cfg': None},
    'rope': {'model.arch.pe_cfg': dict(_delete_=True, type='NoPE')},
}


def removal_options(components: list[str]) -> dict[str, Any]:
    """The config overrides removing every component in ``components`` (names of :data:`COMPONENT_REMOVALS`)."""
    out: dict[str, Any] = {}
    for c in components:
        if c not in COMPONENT_REMOVALS:
            raise KeyError(f"unknown component '{c}'; removable: {sorted(COMPONENT_REMOVALS)}")
        out.update(COMPONENT_REMOVALS[c])
    return out


def _variants(components: list[str]) -> dict[str, list[str]]:
    """'plain', each component alone, and (for two or more) all of them together."""
    out = {'plain': []} | {f'-{c}': [c] for c in components}
    if len(components) > 1:
        out['-' + '-'.join(components)] = list(components)
    return out


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def run_component_costs(opts: BenchmarkOptions, config: str, components: list[str], device: str,
                        cfg_options: dict) -> dict:
    """Time enc+dec (``config`` at ``opts.resolutions[0]``, against SD-VAE) and the micro train step (against
    ``opts.train_reference``) with each component removed; see the module docstring.

    Returns:
        ``{'resolution', 'components', 'enc+dec': {variant: {...}}, 'train_step': {variant: {...}}}``, each variant
        with its median time, the time ratio to the plain model (median of paired repeats) and the target figure.
    """
    variants = _variants(components)
    res = opts.resolutions[0] if opts.resolutions else 256
    out: dict[str, Any] = {'resolution': res, 'components': list(components)}

    ref = None if opts.no_reference else build_sdvae(device)
    x = torch.rand(1, 3, res, res, device=device) * 2 - 1
    fns: dict[str, Callable[[], Any]] = {}
    gmacs: dict[str, float] = {}
    for name, comps in variants.items():
        m = build_ours(config, None, opts.preset, dict(cfg_options, **removal_options(comps)), device)
        t = CodecTarget('ours', m, m.downsample_factor, m.latent_channels)
        gmacs[name] = codec_macs(t, res)
        fns[name] = (lambda m=m: m.decoder(m.encoder(x)[:, :m.latent_channels]))
    if ref is not None:
        gmacs['SD-VAE'] = codec_macs(ref, res)
        fns['SD-VAE'] = (lambda: ref.dec(ref.enc(x)[:, :ref.latent]))

    ts = interleaved({k: no_grad_call(v) for k, v in fns.items()}, opts.repeats, opts.warmup, device)
    out['enc+dec'] = {}
    for name in variants:
        e = dict(median_s=statistics.median(ts[name]), time_ratio_vs_plain=_median_ratio(ts[name], ts['plain']),
                 gmacs=gmacs[name] / 1e9)
        if ref is not None:
            speedup = 1 / _median_ratio(ts[name], ts['SD-VAE'])
            e.update(speedup_vs_sdvae=speedup, speedup_over_gmacs_ratio=speedup / (gmacs['SD-VAE'] / gmacs[name]))
        out['enc+dec'][name] = e

    if opts.train_step:
        steps, macs = {}, {}
        roles = {name: (opts.train_config, comps) for name, comps in variants.items()}
        if opts.train_reference:
            roles['reference'] = (opts.train_reference, [])
        for name, (cfg, comps) in roles.items():
            torch.manual_seed(opts.seed)
            m = build_ours(cfg, None, None, removal_options(comps), device)
            t = CodecTarget('ours', m, m.downsample_factor, m.latent_channels)
            macs[name] = codec_macs(t, opts.train_res, opts.train_batch)
            steps[name] = make_train_step(m, opts.train_batch, opts.train_res, device)[0]
        ts = interleaved(steps, opts.train_repeats, 2, device)
        gflops = {k: train_step_flops(macs[k]) / statistics.median(v) / 1e9 for k, v in ts.items()}
        out['train_step'] = {}
        for name in variants:
            e = dict(median_s=statistics.median(ts[name]), time_ratio_vs_plain=_median_ratio(ts[name], ts['plain']),
                     achieved_gflops=gflops[name])
            if 'reference' in gflops:
                e['flops_ratio_vs_reference'] = gflops[name] / gflops['reference']
            out['train_step'][name] = e
        if 'reference' in gflops:
            out['train_step_reference'] = dict(config=opts.train_reference, median_s=statistics.median(
                ts['reference']), achieved_gflops=gflops['reference'])
    return out
