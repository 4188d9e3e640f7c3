"""The PatchGAN discriminator of pix2pix / taming-transformers (``NLayerDiscriminator``), PAPER.md §3.3."""
from __future__ import annotations

from torch import Tensor, nn

from transvae.registry import MODELS

__all__ = ['PatchGANDiscriminator']


@MODELS.register_module()
class PatchGANDiscriminator(nn.Module):
    """taming's ``NLayerDiscriminator``: k4 convs, BatchNorm, LeakyReLU 0.2, ``N(0, 0.02)`` init.

    Layout (``n_layers=3``, ``ndf=64``): conv s2 (64) -> [conv s2 + BN] (128, 256) -> conv s1 + BN (512) ->
    conv s1 (1). Convs followed by BatchNorm have no bias (as in taming).

    Args:
        in_channels: image channels.
        ndf: base width (64; 16 in the CPU presets).
        n_layers: number of stride-2 convs (3).

    Shapes:
        ``(B, 3, H, W) -> (B, 1, H/8 - 2, W/8 - 2)`` patch logits (30 x 30 for 256², 6 x 6 for 64²).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=False),
                   nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """taming's ``weights_init``: conv ``N(0, 0.02)``; BN weight ``N(1, 0.02)``, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)  # taming leaves the PyTorch default here; zero is the common choice
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)
