"""Analytic FLOPs of a LightningDiT forward pass (multiply-add = 2 FLOPs), for throughput and MFU figures."""
from __future__ import annotations

from .lightningdit import LightningDiT


def dit_forward_flops(model: LightningDiT, batch: int, latent_hw: tuple[int, int]) -> int:
    """FLOPs of ``model(x, t, y)`` for ``batch`` latents of ``latent_hw``: the matmuls of the patch embedding,
    attention (QKV, ``QK^T``, ``AV``, projection), the FFN, the adaLN modulations, the time MLP and the output layer.
    Element-wise work (norms, activations, RoPE, softmax) is not counted."""
    p, d = model.patch_size, model.embed_dims
    n = (latent_hw[0] // p) * (latent_hw[1] // p)
    block = model.blocks[0]
    ffn_macs = sum(m.in_features * m.out_features for m in block.ffn.modules() if hasattr(m, 'in_features'))
    ada = block.adaLN_modulation[-1]
    per_block = n * (4 * d * d + ffn_macs) + 2 * n * n * d + ada.in_features * ada.out_features  # + scores, adaLN
    macs = len(model.blocks) * per_block
    macs += n * model.in_channels * p * p * d  # patch embedding
    macs += n * d * p * p * model.out_channels + 2 * d * d  # output layer + its modulation
    macs += model.t_embedder.freq_dims * d + d * d  # time MLP
    return 2 * batch * macs
