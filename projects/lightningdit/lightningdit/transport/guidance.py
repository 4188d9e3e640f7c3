"""Classifier-free guidance with a guidance interval (off by default: Fig. 6 is without CFG)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from transvae.engine.config_validation import ConfigValueError
from transvae.registry import MODELS

from .settings import check_number

#: largest accepted guidance scale: the published CFG scales are 1.5-10; far above, samples leave the data range
MAX_SCALE = 100.0

Model = Callable[..., Tensor]  # model(x, t, y, force_drop=None) -> v


@MODELS.register_module()
class ClassifierFreeGuidance:
    """``v = v_u + s (v_c - v_u)`` for ``t >= interval_start``, the conditional ``v_c`` elsewhere.

    ``v_u`` is the model with the null class (``force_drop``), both halves in one doubled batch. With ``scale=1``
    the model runs once, conditionally. LightningDiT's CFG results use ``interval_start=0.11`` (no guidance on the
    high-noise part, t < 0.11) and scales 6.7-10. By default every channel is guided.

    ``guided_channels=k`` reproduces the reference exactly: its ``forward_with_cfg``, kept from DiT (which guided 3 of
    the 4 noise channels of an SD-VAE latent "for exact reproducibility"), guides only channels ``0..k-1`` with
    ``k = 3``; channels ``k..`` are the conditional prediction ``v_c``. On LightningDiT's 16 / 32-channel latents that
    leaves most channels unguided, so it is an option, not the default.

    Args:
        scale: guidance scale ``s`` (1.0 = no guidance), finite, in ``[0, MAX_SCALE]`` (0: unconditional samples).
        interval_start: guidance only for ``t >= interval_start`` (0.0 = everywhere), in ``[0, 1]``.
        guided_channels: ``None`` (default): every channel; an integer ``k >= 1``: only the first ``k`` channels
            (3 = the reference's CFG), the rest conditional.
    """

    def __init__(self, scale: float = 1.0, interval_start: float = 0.0, guided_channels: int | None = None) -> None:
        # validated at build: inf / NaN would turn every sample into NaN (black images, FID ~ 670, exit 0)
        self.scale = check_number('model.guidance.scale', scale, low=0.0, high=MAX_SCALE,
                                  hint=' (1.0 = no guidance; LightningDiT uses 6.7-10)')
        self.interval_start = check_number('model.guidance.interval_start', interval_start, low=0.0, high=1.0,
                                           hint=' (guidance only for t >= interval_start)')
        if guided_channels is not None and (isinstance(guided_channels, bool) or not isinstance(guided_channels, int)
                                            or guided_channels < 1):
            raise ConfigValueError(f'model.guidance.guided_channels={guided_channels!r}: expected None (every channel) '
                                   'or an integer >= 1 (3 = the reference\'s CFG on the first 3 channels)')
        self.guided_channels = guided_channels

    @property
    def enabled(self) -> bool:
        return self.scale != 1.0

    def velocity_fn(self, model: Model, y: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """The guided velocity ``(x (B, ...), t (B,)) -> (B, ...)`` for class labels ``y`` ``(B,)``."""

        def cond(x: Tensor, t: Tensor) -> Tensor:
            return model(x, t, y)

        if not self.enabled:
            return cond

        def guided(x: Tensor, t: Tensor) -> Tensor:
            if float(t[0]) < self.interval_start:
                return cond(x, t)
            b = x.shape[0]
            drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
            v = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, y]), force_drop=drop)
            v_c, v_u = v[:b], v[b:]
            if self.guided_channels is None:
                return v_u + self.scale * (v_c - v_u)
            k = self.guided_channels
            return torch.cat([v_u[:, :k] + self.scale * (v_c[:, :k] - v_u[:, :k]), v_c[:, k:]], dim=1)

        return guided
