"""Generation FID (FID-10K of Fig. 6): reference statistics and the distance.

The features are the core's offline Inception-v3 (``transvae.evaluation.functional.fid``); the distance is the
core's float64 Fréchet distance. Reference statistics come from an ADM-style ``.npz`` (``mu``, ``sigma``) or are
computed once from a folder of real images and cached as such an ``.npz``.
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from transvae.datasets.transforms import DEFAULT_MAX_PIXELS, check_image_pixels
from transvae.evaluation.functional.fid import (FIDInceptionV3, feature_statistics, frechet_distance,
                                                get_fid_inception, load_fid_statistics)
from transvae.utils.errors import InputNotFoundError

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.JPEG', '.bmp', '.webp')


def load_reference_npz(path: str, dim: int | None = FIDInceptionV3.num_features) -> tuple[np.ndarray, np.ndarray]:
    """``(mu (2048,), sigma (2048, 2048))`` from an ADM-style reference ``.npz`` (keys ``mu`` and ``sigma``), validated
    by the core reader :func:`transvae.evaluation.functional.fid.load_fid_statistics` (a ``.npy``, a truncated file,
    missing keys, wrong dtypes or shapes, NaN: an error naming the file)."""
    return load_fid_statistics(path, dim=dim)


def check_reference(ref: str, dim: int | None = FIDInceptionV3.num_features) -> dict:
    """Check a FID reference before anything is sampled: an ``.npz`` is read and validated (it is small), a folder
    must hold images (their statistics are computed, or read from the cache, at the end). Returns a description."""
    if not ref:
        raise ValueError('no FID reference given: an ADM .npz with mu / sigma or a folder of real images')
    if osp.isfile(ref):
        load_reference_npz(ref, dim)
        return dict(kind='npz', path=osp.abspath(ref))
    if not osp.isdir(ref):
        raise InputNotFoundError(f'FID reference {ref} is neither an .npz file nor a folder of images')
    return dict(kind='folder', path=osp.abspath(ref), num_images=len(list_images(ref)))


def center_crop_image(img: Image.Image, size: int) -> Image.Image:
    """ADM's ``center_crop_arr``: box-downsample while the short side >= 2x ``size``, bicubic-resize the short side
    to ``size``, crop the centre square."""
    while min(img.size) >= 2 * size:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = size / min(img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def list_images(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively), sorted."""
    out = [osp.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(IMAGE_EXTS)]
    if not out:
        raise InputNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) under {folder}')
    return sorted(out)


@torch.no_grad()
def folder_features(folder: str, size: int, batch_size: int = 32, device: str = 'cpu') -> np.ndarray:
    """``(N, 2048)`` Inception features of every image of ``folder`` after :func:`center_crop_image`."""
    net = get_fid_inception(device)
    feats, batch = [], []
    paths = list_images(folder)
    for i, p in enumerate(paths):
        with Image.open(p) as im:  # the reference protocol: PIL's RGB conversion, no EXIF transpose
            check_image_pixels(im.size, DEFAULT_MAX_PIXELS, p, hint='a smaller reference image')  # header only
            arr = np.array(center_crop_image(im.convert('RGB'), size))  # a writable copy
        batch.append(torch.from_numpy(arr).permute(2, 0, 1))
        if len(batch) == batch_size or i == len(paths) - 1:
            feats.append(net(torch.stack(batch)).double().cpu())
            batch = []
    return torch.cat(feats).numpy()


def reference_statistics(ref: str, size: int = 256, cache_dir: str | None = None, device: str = 'cpu',
                         batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(mu, sigma, info)`` of the real images.

    ``ref`` is an ``.npz`` with ``mu`` / ``sigma`` (used as is), or a folder of images: its statistics are computed
    once (centre crops of ``size``) and cached in ``cache_dir`` (default: the folder) as
    ``fid_stats_<hash>.npz``, keyed by the sorted file list, the file sizes and ``size``.
    """
    if osp.isfile(ref):
        mu, sigma = load_reference_npz(ref)
        return mu, sigma, dict(kind='npz', path=osp.abspath(ref))
    if not osp.isdir(ref):
        raise InputNotFoundError(f'reference {ref} is neither an .npz file nor a folder of images')
    paths = list_images(ref)
    key = hashlib.sha256(repr([(osp.relpath(p, ref), osp.getsize(p)) for p in paths] + [size]).encode())
    cache = osp.join(cache_dir or ref, f'fid_stats_{key.hexdigest()[:16]}.npz')
    if osp.isfile(cache):
        mu, sigma = load_reference_npz(cache)
        return mu, sigma, dict(kind='folder', path=osp.abspath(ref), num_images=len(paths), cache=cache,
                               cached=True)
    feats = folder_features(ref, size, batch_size, device)
    mu, sigma = feature_statistics(feats)
    os.makedirs(osp.dirname(cache) or '.', exist_ok=True)
    tmp = f'{cache}.tmp.{os.getpid()}.npz'
    np.savez(tmp, mu=mu, sigma=sigma, num_images=len(paths), size=size)
    os.replace(tmp, cache)
    return mu, sigma, dict(kind='folder', path=osp.abspath(ref), num_images=len(paths), cache=cache, cached=False)


def fid_against(mu_ref: np.ndarray, sigma_ref: np.ndarray, feats: np.ndarray | Tensor) -> float:
    """FID of generated ``(N, D)`` features against reference statistics (float64).

    For ``N - 1 < D`` (small CPU runs) the trace term is computed exactly in the ``N``-dimensional span of the
    centred features: with ``Sigma_g = X^T X / (N - 1)``, the non-zero eigenvalues of ``Sigma_ref Sigma_g`` are those of
    the symmetric PSD ``X Sigma_ref X^T / (N - 1)``, so ``tr sqrtm(Sigma_ref Sigma_g) = sum sqrt(eig)`` (an ``N x N``
    ``eigvalsh`` instead of a ``D x D`` ``sqrtm``). Otherwise the core's :func:`frechet_distance`.
    """
    x = feats.detach().cpu().double().numpy() if isinstance(feats, Tensor) else np.asarray(feats, np.float64)
    mu_ref, sigma_ref = np.asarray(mu_ref, np.float64), np.asarray(sigma_ref, np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] != mu_ref.shape[0]:
        raise ValueError(f'need (N >= 2, {mu_ref.shape[0]}) features, got {x.shape}')
    n, d = x.shape
    if n - 1 >= d:
        mu, sigma = feature_statistics(x)
        return frechet_distance(mu, sigma, mu_ref, sigma_ref)
    mu = x.mean(axis=0)
    xc = x - mu
    m = xc @ sigma_ref @ xc.T / (n - 1)
    eig = np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)
    diff = mu - mu_ref
    return float(diff @ diff + np.trace(sigma_ref) + (xc * xc).sum() / (n - 1) - 2 * np.sqrt(eig).sum())
