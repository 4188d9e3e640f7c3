"""DINOv2 ViT-L/14 (``vit_large_patch14_dinov2.lvd142m``): the paper's VF-loss target, loaded from a local file."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor

from transvae.registry import MODELS

from .base import FrozenFoundationModel

__all__ = ['DINOv2', 'load_weights_file']

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def load_weights_file(path: str) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch file loaded with ``weights_only=True`` (no pickled code).

    A torch file holding ``{'model': ...}`` / ``{'state_dict': ...}`` is unwrapped.
    """
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    state = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('model', 'state_dict', 'teacher'):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


@MODELS.register_module()
class DINOv2(FrozenFoundationModel):
    """Frozen DINOv2 (timm, ``pretrained=False``, ``img_size=224``) with weights from ``weights_path``.

    PAPER.md §3.4: the image is bilinearly resized to 224 x 224 and the patch tokens (CLS / register tokens dropped)
    are reshaped to a 16 x 16 x 1024 map. VA-VAE feeds the ``[-1, 1]`` image without ImageNet normalisation
    (``imagenet_norm=False``, the default, reproduces it); ``imagenet_norm=True`` normalises as DINOv2 was trained.

    Args:
        weights_path: local ``.safetensors`` or torch weights file in timm or original (facebookresearch) key
            format; converted with timm's ``checkpoint_filter_fn`` (positional embedding resampled to 16 x 16).
        arch: timm model name.
        img_size: network input size (224 -> 16 x 16 patches).
        imagenet_norm: normalise with the ImageNet mean / std.
        strict: require every key to match.
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``depth`` for tests).

    The network is built lazily (:class:`FrozenFoundationModel`): ``__init__`` reads only the architecture (on the meta
    device, no weights), and the file is loaded by :meth:`build` (the VF loss calls it when training starts) or at
    the first forward, so a model built for inference (``init_model``, ``tools/extract_latents.py``,
    ``tools/test.py``) does not need the weights, which only the VF loss of training uses.

    Raises:
        FileNotFoundError: at :meth:`build` / the first forward, ``weights_path`` is missing (nothing is
            downloaded).
        RuntimeError: at the same point, the file's keys do not fit ``arch`` (``strict``).

    Shapes:
        ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, embed_dim, img_size/14, img_size/14)`` (1024 x 16 x 16 for ViT-L).
    """

    log_tag = 'dinov2'
    is_proxy = False

    def __init__(self, weights_path: str, arch: str = 'vit_large_patch14_dinov2.lvd142m', img_size: int = 224,
                 imagenet_norm: bool = False, strict: bool = True, model_kwargs: dict | None = None) -> None:
        super().__init__()
        import timm
        if not weights_path:
            raise ValueError('DINOv2: weights_path is empty; point it at a local .safetensors / torch file of '
                             f'{arch!r} (nothing is downloaded)')
        self.arch = arch
        self.weights_path = weights_path
        self.img_size = img_size
        self.imagenet_norm = imagenet_norm
        self.strict = strict
        self.model_kwargs = dict(model_kwargs or {})
        with torch.device('meta'):  # the architecture only: no memory, no weights, no file
            shape = timm.create_model(arch, pretrained=False, img_size=img_size, num_classes=0, **self.model_kwargs)
        self.out_channels = shape.embed_dim
        self.name = f'{arch} ({weights_path})'
        self._set_lazy_net()
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _build_net(self) -> torch.nn.Module:
        """The timm network with the local weights (called once, by :meth:`build` or the first forward)."""
        arch, weights_path = self.arch, self.weights_path
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(
                f'DINOv2 weights not found at {weights_path!r} (needed by the VF loss for training only). Nothing is '
                f'downloaded: export the timm model {arch!r} once where the internet is reachable, e.g. '
                f'`safetensors.torch.save_file(timm.create_model("{arch}", pretrained=True).state_dict(), '
                '"checkpoints/dinov2_vitl14.safetensors")`, and point `weights_path` at it -- or use the offline '
                'proxy `dict(type="VGG16Proxy")` (not the paper).')
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn
        net = timm.create_model(arch, pretrained=False, img_size=self.img_size, num_classes=0, **self.model_kwargs)
        state = checkpoint_filter_fn(load_weights_file(weights_path), net)
        missing, unexpected = net.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not k.startswith('head')]
        if self.strict and (missing or unexpected):
            raise RuntimeError(f'DINOv2 weights {weights_path}: missing keys {missing[:10]}, unexpected keys '
                               f'{unexpected[:10]} (of {len(missing)} / {len(unexpected)})')
        return net

    def extract(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, size=(self.img_size, self.img_size), mode='bilinear', align_corners=False)
        if self.imagenet_norm:
            x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        tokens = self.net.forward_features(x)  # (B, prefix + N, C), final norm applied
        tokens = tokens[:, self.net.num_prefix_tokens:]  # (B, N, C) patch tokens
        gh, gw = self.net.patch_embed.grid_size
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)  # (B, C, 16, 16)
