"""Gradient accumulation through the project's optimizer wrappers (the TransVAE-L stage-1 recipes, issue 24).

``configs/transvae/transvae-l_f16d32_8xb32-100e_in1k.py`` trains 16 images per GPU x ``accumulative_counts=2``
(L f8d16: 8 x 4) instead of 32 x 1. Through the real ``train_step`` of a tiny TransVAE (L1 + LPIPS + KL, the
posterior mean decoded so no noise differs) and the wrapper built by mmengine's ``build_optim_wrapper`` from an
``optim_wrapper`` config as the recipes state it (``type``, ``optimizer``, ``accumulative_counts``), two
micro-batches of B/2 with accumulation 2 must give the parameters of one batch B without accumulation after the
optimizer step, and no step may happen after the first micro-batch. The data are fixed tensors (no augmentation).
"""
from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from transvae.apis import register_all_modules
from transvae.registry import MODELS

register_all_modules()
MICRO = 'configs/_base_/models/transvae-micro_f8d16.py'


def tiny_cfg() -> dict:
    """TransVAE-micro (CNN stem + Transformer stages, L1 + LPIPS + KL) at widths 8-16, one block per stage, decoding
    the posterior mean (``sample_posterior=False``: the micro-batches draw no different noise)."""
    cfg = Config.fromfile(MICRO).model
    cfg.arch.update(widths=[8, 8, 16, 16], depths=[1, 1, 1, 1], head_dim=8)
    cfg.arch.cnn_block_cfg.norm_cfg.num_groups = 4
    cfg.arch.norm_out_cfg.num_groups = 4
    cfg.sample_posterior = False
    return cfg.to_dict()


def _setup(wrapper: str, counts: int, optimizer: dict, seed: int = 0) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(seed)
    model = MODELS.build(tiny_cfg()).train()
    ow = build_optim_wrapper(model, dict(type=wrapper, optimizer=optimizer, accumulative_counts=counts))
    ow.initialize_count_status(model, 0, 4 * counts)  # as the Runner does before the first iteration
    return model, ow


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


OPTIMIZERS = {
    'SGD': dict(type='SGD', lr=1e-3),
    # the recipe's AdamW (components/adamw_warmup.py); a larger eps keeps Adam's first step g / |g| away from the
    # sign of near-zero gradients, where float rounding of the two summation orders could flip it
    'AdamW': dict(type='AdamW', lr=1e-3, betas=(0.5, 0.9), weight_decay=0.0, eps=1e-4),
}


# (wrapper, optimizer, max|diff| / largest parameter move). fp32: summation order and rounding at the parameters'
# scale (AdamW moves each by ~lr). bf16 autocast on the CPU: two half-size batches round differently from one, so
# only SGD there (Adam's first step amplifies that rounding of near-zero gradients to +-lr).
CASES = [('SafeOptimWrapper', 'SGD', 1e-4), ('SafeOptimWrapper', 'AdamW', 1e-4), ('SafeAmpOptimWrapper', 'SGD', 5e-2)]


@pytest.mark.parametrize('wrapper,opt,rtol', CASES)
def test_accumulation_equals_the_larger_batch(wrapper, opt, rtol):
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref, ow_ref = _setup(wrapper, 1, OPTIMIZERS[opt])
    acc, ow_acc = _setup(wrapper, 2, OPTIMIZERS[opt])
    start = _params(acc)
    assert _max_diff(start, _params(ref)) == 0.0

    ref.train_step({'inputs': x}, ow_ref)
    acc.train_step({'inputs': x[:2]}, ow_acc)
    assert _max_diff(start, _params(acc)) == 0.0, 'stepped after the first of two micro-batches'
    assert ow_acc.applied_steps == 0
    acc.train_step({'inputs': x[2:]}, ow_acc)
    assert ow_ref.applied_steps == ow_acc.applied_steps == 1

    moved = _max_diff(start, _params(ref))
    diff = _max_diff(_params(ref), _params(acc))
    assert moved > 1e-4  # the step did something
    # plus a few float32 ulps of the largest weight: the two sums of micro-batch gradients round differently, and a
    # weight of magnitude ~1 moves in steps of 1.2e-7 (AdamW's lr-sized step makes that visible; threads change it)
    ulps = 4 * torch.finfo(torch.float32).eps * max(float(p.abs().max()) for p in _params(ref).values())
    assert diff <= rtol * moved + ulps, \
        f'{wrapper}/{opt}: max|diff| {diff:.3g} after one step (largest move {moved:.3g}, {ulps:.3g} of rounding)'
    print(f'{wrapper}/{opt}: max|diff| {diff:.3g}, largest parameter move {moved:.3g}')


def test_nonfinite_micro_batch_skips_the_accumulated_step():
    """A NaN loss in the first micro-batch skips the optimizer step at the end of the accumulation."""
    model, ow = _setup('SafeOptimWrapper', 2, OPTIMIZERS['SGD'])
    start = _params(model)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    bad = x.clone()
    bad[0, 0, 0, 0] = float('nan')
    model.train_step({'inputs': bad}, ow)
    model.train_step({'inputs': x}, ow)
    assert ow.applied_steps == 0 and ow.consecutive_nonfinite == 1
    assert _max_diff(start, _params(model)) == 0.0
    assert all(p.grad is None for p in model.parameters())  # the skipped accumulation does not leak into the next
