"""Per-image reconstruction metrics: PSNR, SSIM and LPIPS on uint8-quantised images.

Protocol (shared by all three and by :mod:`transvae.evaluation.metrics`): inputs are float tensors
``(B, 3, H, W)`` in ``[0, data_range]``; each image is first quantised as it would be saved to a PNG,
``q = clamp(round(x / data_range * 255), 0, 255)``, and the metric is computed on ``q`` in float64.
"""
from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['quantize_uint8', 'psnr', 'ssim', 'lpips', 'gaussian_kernel1d']

_RANGE_TOL = 1e-3


def _check_pair(pred: Tensor, target: Tensor, data_range: float, fn: str) -> None:
    for name, t in (('pred', pred), ('target', target)):
        if not isinstance(t, Tensor):
            raise TypeError(f'{fn}: {name} must be a torch.Tensor, got {type(t).__name__}')
        if t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(f'{fn}: {name} must have shape (B, 3, H, W), got {tuple(t.shape)}')
    if pred.shape != target.shape:
        raise ValueError(f'{fn}: pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}')
    if data_range <= 0:
        raise ValueError(f'{fn}: data_range must be > 0, got {data_range}')
    for name, t in (('pred', pred), ('target', target)):
        if t.dtype == torch.uint8:
            raise TypeError(f'{fn}: {name} is uint8; pass float images in [0, {data_range:g}] (e.g. x / 255)')
        if t.numel() == 0:
            raise ValueError(f'{fn}: {name} is empty')
        lo, hi = float(t.min()), float(t.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f'{fn}: {name} contains NaN or Inf')
        tol = _RANGE_TOL * data_range
        if lo < -tol or hi > data_range + tol:
            raise ValueError(f'{fn}: {name} values span [{lo:.4g}, {hi:.4g}], expected [0, {data_range:g}]. '
                             'Images in [-1, 1] must be mapped with (x + 1) / 2, and clamped.')


def quantize_uint8(x: Tensor, data_range: float = 1.0) -> Tensor:
    """``clamp(round(x / data_range * 255), 0, 255)`` as float64 (values are integers 0..255)."""
    return torch.round(x.detach().double() * (255.0 / data_range)).clamp_(0, 255)


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB of each image, on the uint8-quantised images.

    ``10 * log10(255^2 / mse)`` with ``mse`` averaged over the 3 channels and all pixels of one image
    (the same as torchmetrics ``PeakSignalNoiseRatio(data_range=255)`` applied image by image).

    Args:
        pred: ``(B, 3, H, W)`` in ``[0, data_range]``.
        target: ``(B, 3, H, W)`` in ``[0, data_range]``.
        data_range: The range of the float inputs (1.0 for ``[0, 1]``).

    Returns:
        ``(B,)`` float64; ``inf`` where an image is reproduced exactly after quantisation.
    """
    _check_pair(pred, target, data_range, 'psnr')
    p, t = quantize_uint8(pred, data_range), quantize_uint8(target, data_range)
    mse = (p - t).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(255.0**2 / mse)


def gaussian_kernel1d(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> Tensor:
    """Normalised 1-D Gaussian window of odd ``size`` (as torchmetrics and skimage ``truncate=3.5`` build it)."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords / sigma).square() / 2)
    return g / g.sum()


def ssim(pred: Tensor,
         target: Tensor,
         data_range: float = 1.0,
         win_size: int = 11,
         sigma: float = 1.5,
         crop_border: bool = False) -> Tensor:
    """SSIM of each image on the uint8-quantised images (0..255, ``L = 255``).

    Definition (default, ``crop_border=False``): exactly torchmetrics 1.9
    ``structural_similarity_index_measure(data_range=255)``. SSIM is computed on each RGB channel separately (not
    on a luminance channel) with an 11x11 Gaussian window (sigma 1.5, population covariances clamped at 0,
    ``K1 = 0.01``, ``K2 = 0.03``); the images are reflect-padded by 5 pixels (torch ``'reflect'``) so the SSIM
    map covers every pixel, and the result is the mean over the three channels and all pixels.

    ``crop_border=True`` averages only where the window lies inside the image (a 5-pixel border is dropped), which
    is skimage's ``structural_similarity(channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``. The two differ only through the border pixels (about 0.01 on
    64x64 noisy crops, less on larger images).

    Args:
        pred: ``(B, 3, H, W)`` in ``[0, data_range]``, ``H, W >= win_size``.
        target: ``(B, 3, H, W)`` in ``[0, data_range]``.
        data_range: The range of the float inputs (1.0 for ``[0, 1]``).
        win_size: Gaussian window size (odd).
        sigma: Gaussian standard deviation.
        crop_border: Drop the border instead of reflect-padding (skimage's definition).

    Returns:
        ``(B,)`` float64 in ``[-1, 1]``.
    """
    _check_pair(pred, target, data_range, 'ssim')
    if win_size % 2 != 1:
        raise ValueError(f'ssim: win_size must be odd, got {win_size}')
    if min(pred.shape[-2:]) < win_size:
        raise ValueError(f'ssim: images must be at least {win_size}x{win_size}, got {tuple(pred.shape[-2:])}')
    x, y = quantize_uint8(pred, data_range), quantize_uint8(target, data_range)
    if not crop_border:
        pad = (win_size - 1) // 2
        x = F.pad(x, (pad, pad, pad, pad), mode='reflect')
        y = F.pad(y, (pad, pad, pad, pad), mode='reflect')
    c = x.shape[1]
    g = gaussian_kernel1d(win_size, sigma).to(x.device)
    gh = g.view(1, 1, 1, win_size).repeat(c, 1, 1, 1)
    gv = g.view(1, 1, win_size, 1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:  # separable 'valid' Gaussian filter, per channel
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    c1, c2 = (0.01 * 255)**2, (0.03 * 255)**2
    mu_x, mu_y = blur(x), blur(y)
    sxx = (blur(x * x) - mu_x.square()).clamp_(min=0)
    syy = (blur(y * y) - mu_y.square()).clamp_(min=0)
    sxy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x.square() + mu_y.square() + c1) * (sxx + syy + c2))
    return ssim_map.flatten(1).mean(dim=1)


_LPIPS_CACHE: dict[tuple[str, str], torch.nn.Module] = {}
_LPIPS_LOCK = threading.Lock()


def _lpips_module(net: str, device: torch.device) -> torch.nn.Module:
    key = (net, str(device))
    with _LPIPS_LOCK:
        module = _LPIPS_CACHE.get(key)
        if module is None:
            from transvae.models.losses.lpips import LPIPS  # lazy: imports the model package
            module = LPIPS(net=net, pretrained=True).to(device)
            _LPIPS_CACHE[key] = module
    return module


@torch.no_grad()
def lpips(pred: Tensor, target: Tensor, net: str = 'alex', data_range: float = 1.0, quantize: bool = True) -> Tensor:
    """LPIPS distance of each image (no gradients; for the differentiable loss use ``transvae.models.losses.LPIPS``).

    The frozen network is built once per ``(net, device)`` and cached for the process.

    Args:
        pred: ``(B, 3, H, W)`` in ``[0, data_range]``.
        target: ``(B, 3, H, W)`` in ``[0, data_range]``.
        net: ``'alex'`` (default, as in most VAE papers) or ``'vgg'``.
        data_range: The range of the float inputs.
        quantize: Quantise to uint8 first (the protocol shared with PSNR/SSIM); ``False`` uses the floats.

    Returns:
        ``(B,)`` float32 distances.
    """
    _check_pair(pred, target, data_range, 'lpips')
    if quantize:
        p, t = quantize_uint8(pred, data_range) / 255.0, quantize_uint8(target, data_range) / 255.0
    else:
        p, t = (pred.detach().double() / data_range).clamp(0, 1), (target.detach().double() / data_range).clamp(0, 1)
    module = _lpips_module(net, pred.device)
    return module(p.float() * 2 - 1, t.float() * 2 - 1)
