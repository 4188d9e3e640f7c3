"""Component costs (transvae.benchmark.component_cost): removals are real and leave the counted MACs unchanged."""
from __future__ import annotations

import os.path as osp

import pytest
import torch

from transvae.benchmark import BenchmarkOptions, CodecTarget, build_ours, macs_of
from transvae.benchmark.component_cost import COMPONENT_REMOVALS, removal_options, run_component_costs
from transvae.models.layers import NoPE, RMSNorm

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MICRO = osp.join(REPO, 'configs/_base_/models/transvae-micro_f8d16.py')


def test_unknown_component_lists_the_removable_ones():
    with pytest.raises(KeyError, match='removable'):
        removal_options(['qk_norm', 'ffn'])


def test_removal_removes_the_component_and_keeps_the_macs():
    plain = build_ours(MICRO, None, None, {}, 'cpu')
    bare = build_ours(MICRO, None, None, removal_options(sorted(COMPONENT_REMOVALS)), 'cpu')
    assert any(isinstance(m, RMSNorm) for m in plain.modules())
    assert not any(isinstance(m, RMSNorm) for m in bare.modules())
    pes = [m for m in bare.modules() if hasattr(m, 'qk_transform')]
    assert pes and all(isinstance(m, NoPE) for m in pes)
    t0, t1 = (CodecTarget('ours', m, m.downsample_factor, m.latent_channels) for m in (plain, bare))
    for mode in ('encode', 'decode'):  # the bound compares the same MACs in less time
        assert macs_of(t0, mode, 32) == macs_of(t1, mode, 32)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # it is another model, not the same one
        assert not torch.allclose(plain.encoder(x), bare.encoder(x))


def test_run_component_costs_reports_every_variant():
    opts = BenchmarkOptions(configs=[MICRO], resolutions=[32], repeats=1, warmup=0, train_step=True, train_batch=2,
                            train_res=32, train_repeats=1, device='cpu')
    torch.manual_seed(0)
    out = run_component_costs(opts, MICRO, ['qk_norm', 'rope'], 'cpu', {})
    names = ['plain', '-qk_norm', '-rope', '-qk_norm-rope']
    assert list(out['enc+dec']) == names and list(out['train_step']) == names
    assert out['enc+dec']['plain']['time_ratio_vs_plain'] == 1.0
    assert len({v['gmacs'] for v in out['enc+dec'].values()}) == 1
    for v in out['enc+dec'].values():
        assert v['median_s'] > 0 and v['speedup_over_gmacs_ratio'] > 0
    for v in out['train_step'].values():
        assert v['achieved_gflops'] > 0 and v['flops_ratio_vs_reference'] > 0
    assert out['train_step_reference']['config'].endswith('cnn-vae-micro_f8d16.py')
