"""The reconstruction NLL of LDM / VA-VAE: ``(L1 + w_p * LPIPS) / exp(s) + s`` summed per image.

``s`` is a learnable scalar log-variance (initialised at 0); the sum runs over the ``3 * H * W`` pixels (the
LPIPS value of an image is broadcast over its pixels, as LDM does) and the result is averaged over the batch.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from transvae.registry import MODELS


@MODELS.register_module()
class ReconstructionNLL(nn.Module):
    """L1 + LPIPS reconstruction term with a learnable log-variance.

    Args:
        pixel_weight: weight of the per-pixel L1.
        perceptual_cfg: a registered perceptual loss ``(x, y) -> (B,)`` for images in ``[-1, 1]`` (``LPIPS``);
            ``None`` disables it.
        perceptual_weight: its weight (1.0 in every paper recipe).
        logvar_init: initial ``s``.
        learn_logvar: learn ``s`` (LDM) or keep it fixed.
    """

    def __init__(self, pixel_weight: float = 1.0, perceptual_cfg: dict | None = None,
                 perceptual_weight: float = 1.0, logvar_init: float = 0.0, learn_logvar: bool = True) -> None:
        super().__init__()
        self.pixel_weight = pixel_weight
        self.perceptual_weight = perceptual_weight
        self.perceptual = MODELS.build(perceptual_cfg) if perceptual_cfg is not None else None
        # shape (1,), not (): FSDP cannot shard 0-dim parameters. Checkpoints with a 0-dim `logvar` (written before)
        # still load (see _load_from_state_dict); torch loads this (1,) entry into a 0-dim parameter as well.
        self.logvar = nn.Parameter(torch.full((1,), float(logvar_init)), requires_grad=learn_logvar)

    def forward(self, inputs: Tensor, recons: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``inputs``, ``recons``: ``(B, 3, H, W)`` in ``[-1, 1]``.

        Returns:
            the NLL (a scalar, summed per image, averaged over the batch) and detached log scalars
            (per-pixel ``l1``, per-image ``lpips``, ``logvar``).
        """
        b = inputs.shape[0]
        l1 = (inputs - recons).abs()  # (B, 3, H, W)
        rec = self.pixel_weight * l1
        logs = {'l1': l1.detach().mean()}
        if self.perceptual is not None:
            p = self.perceptual(inputs, recons)  # (B,)
            rec = rec + self.perceptual_weight * p.view(b, 1, 1, 1)
            logs['lpips'] = p.detach().mean()
        logvar = self.logvar.reshape(())  # the scalar s
        nll = rec / torch.exp(logvar) + logvar
        logs['logvar'] = logvar.detach()
        return nll.sum() / b, logs

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        key = prefix + 'logvar'
        value = state_dict.get(key, None)
        if torch.is_tensor(value) and value.dim() == 0:  # a checkpoint of the former 0-dim parameter
            state_dict[key] = value.reshape(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
