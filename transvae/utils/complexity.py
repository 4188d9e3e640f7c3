"""Parameter and MAC counts of VAEs (model zoo tables, scaling plots).

* :func:`count_params` counts a built module; :func:`count_params_meta` builds the encoder and decoder of a model
  config on the ``meta`` device (no memory is allocated, so 2B-parameter models count in a second).
* :func:`count_macs` traces a model with :class:`mmengine.analysis.FlopAnalyzer` (whose "flops" are
  multiply-accumulates, fvcore convention) plus an op handle for ``aten::scaled_dot_product_attention``, which
  MMEngine otherwise counts as zero (ENVIRONMENT.md §2.4): ``QK^T`` and ``AV`` give
  ``B·heads·(Nq·Nk·hd + Nq·Nk·hd_v)`` MACs, i.e. ``2·B·heads·N²·hd`` for self-attention. Softmax and element-wise
  ops are not counted; norms follow MMEngine's handles (5 per element for an affine LayerNorm / GroupNorm).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from transvae.registry import MODELS

# Encoder / decoder parameters in millions, PAPER.md Table 3 (TransVAE) and §2 Tables 4-6 (baselines).
PAPER_PARAMS: dict[str, tuple[float, float]] = {
    'transvae-t_f16d32': (21, 23), 'transvae-b_f16d32': (67, 73), 'transvae-l_f16d32': (266, 279),
    'transvae-h_f16d32': (633, 658), 'transvae-g_f16d32': (1100, 1200), 'transvae-l_f8d16': (353, 366),
    'cnn-vae-t_f16d32': (29, 41), 'cnn-vae-b_f16d32': (64, 93), 'cnn-vae-l_f16d32': (332, 371),
    'cnn-vae-h_f16d32': (450, 660), 'cnn-vae-g_f16d32': (1000, 1500),
    'vit-vae-t_f16d32': (26, 25), 'vit-vae-b_f16d32': (86, 85), 'vit-vae-l_f16d32': (303, 302),
    'vit-vae-h_f16d32': (681, 680), 'vit-vae-g_f16d32': (1200, 1300),
    'swin-vae-t_f16d32': (30, 30), 'swin-vae-b_f16d32': (64, 93), 'swin-vae-l_f16d32': (375, 375),
    'swin-vae-h_f16d32': (788, 788), 'swin-vae-g_f16d32': (1100, 1100),
}
# Paper rows that no consistent architecture reproduces (see the config headers and PAPER.md §1.9 / §2).
PAPER_INCONSISTENT: dict[str, str] = {
    'transvae-g_f16d32': 'depths [3,3,4,8,10] give 2.48B, not 2.3B ([.., 9] would)',
    'cnn-vae-l_f16d32': 'encoder ~254M with ch 384, not 332M',
    'swin-vae-b_f16d32': 'row duplicates CNN-VAE-B',
}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (shared parameters once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _model_cfg(cfg: Any) -> dict:
    """The ``model`` dict of a config (``Config``, dict with ``model``, or the model dict itself) as a plain dict."""
    if hasattr(cfg, 'to_dict'):
        cfg = cfg.to_dict()
    cfg = copy.deepcopy(dict(cfg))
    if 'model' in cfg and isinstance(cfg['model'], Mapping):
        cfg = dict(cfg['model'])
    if 'encoder' not in cfg or 'decoder' not in cfg:
        raise KeyError('count_params_meta needs a VAE model config with `encoder` and `decoder` keys')
    return cfg


def build_encoder_decoder(cfg: Any, device: str | torch.device | None = None) -> tuple[nn.Module, nn.Module]:
    """Build only the encoder and decoder of a VAE model config (``arch`` injected into both, as ``VAE`` does).

    Losses, discriminators and frozen networks are not built.
    """
    cfg = _model_cfg(cfg)
    arch = cfg.get('arch') or None

    def build() -> tuple[nn.Module, nn.Module]:
        return (MODELS.build(cfg['encoder'], default_args=copy.deepcopy(arch)),
                MODELS.build(cfg['decoder'], default_args=copy.deepcopy(arch)))

    if device is None:
        return build()
    with torch.device(device):
        return build()


def count_params_meta(cfg: Any) -> tuple[int, int]:
    """``(encoder, decoder)`` parameter counts of a VAE model config, built on the meta device."""
    enc, dec = build_encoder_decoder(cfg, device='meta')
    return count_params(enc), count_params(dec)


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of ``aten::scaled_dot_product_attention(q, k, v, ...)``: ``prod(batch) · Nq · Nk · (hd + hd_v)``."""
    from mmengine.analysis.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for s in q[:-2]:
        batch *= s
    nq, hd = q[-2], q[-1]
    nk, hdv = k[-2], v[-1]
    return int(batch * nq * nk * (hd + hdv))


def _analyzer(model: nn.Module, inputs: tuple[torch.Tensor, ...]):
    from mmengine.analysis import FlopAnalyzer

    fa = FlopAnalyzer(model, inputs)
    fa.set_op_handle(**{'aten::scaled_dot_product_attention': sdpa_flop_jit})
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    fa.tracer_warnings('none')
    return fa


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Multiply-accumulates of one forward pass (attention included).

    Args:
        model: a VAE (anything with ``encoder`` and ``decoder`` attributes, the encoder exposing
            ``downsample_factor`` and ``latent_channels``), or any module taking one tensor.
        input_shape: full shape of the image ``(B, C, H, W)`` (for a VAE) or of the module's input.

    Returns:
        For a VAE: ``{'encoder', 'decoder', 'total'}``, the decoder counted on the latent ``(B, d, H/f, W/f)``.
        Otherwise ``{'total'}``. Values are MACs (divide by 1e9 for GMACs).
    """
    shape = tuple(input_shape)
    was_training = model.training
    model.eval()
    try:
        param = next(iter(model.parameters()), None)
        kw = dict(device=param.device, dtype=param.dtype) if param is not None else {}
        x = torch.zeros(shape, **kw)
        if hasattr(model, 'encoder') and hasattr(model, 'decoder'):
            enc, dec = model.encoder, model.decoder
            f = enc.downsample_factor
            b, _, h, w = shape
            z = torch.zeros((b, dec.latent_channels, h // f, w // f), **kw)
            e = int(_analyzer(enc, (x, )).total())
            d = int(_analyzer(dec, (z, )).total())
            return dict(encoder=e, decoder=d, total=e + d)
        return dict(total=int(_analyzer(model, (x, )).total()))
    finally:
        model.train(was_training)


__all__ = [
    'PAPER_PARAMS', 'PAPER_INCONSISTENT', 'count_params', 'count_params_meta', 'build_encoder_decoder', 'count_macs',
    'sdpa_flop_jit'
]
