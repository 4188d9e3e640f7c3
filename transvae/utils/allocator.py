"""CPU allocator tuning: keep large tensors in the malloc heap instead of fresh ``mmap`` pages.

glibc's ``malloc`` serves every request above its mmap threshold (dynamic, at most 32 MiB) with a fresh ``mmap``:
the pages are zero-filled by the kernel on first touch and returned to it on ``free``. One activation of a VAE at
256² and 128 channels is 33.5 MB, above that ceiling, so *every* elementwise op (GroupNorm, SiLU, residual add) on
the full-resolution stages pays ~8k page faults for its output. Raising the threshold lets freed blocks be reused.

Measured on the 2-core CPU of this project (``python -c`` loop of ``F.silu`` on a ``(1, 128, 256, 256)`` fp32
tensor, 50 calls): 13.5 ms per call with glibc's default, 2.0 ms with the threshold raised. Whole-model figures
are in ``tools/analysis_tools/benchmark.py`` (``--allocator``), which runs our model and the SD-VAE reference under
the same allocator. This is what Intel's PyTorch CPU tuning guide achieves by preloading jemalloc / tcmalloc,
without a preload or a dependency.

The cost: blocks served from the heap are kept by the process after ``free``, so a threshold above the largest
activations lets fragmentation raise the peak RSS. Measured (TransVAE-T decode at 1024², largest activations 537 MB;
process peak-RSS increase, ``benchmark.py --mem-resolutions 1024 --mem-modes decode``): glibc default 3192 MiB,
threshold 64 MiB 3264 MiB, 256 MiB 3685 MiB (1024 MiB: 5904 MiB on an earlier commit). The default, 64 MiB, keeps
the speed-up for the activations of batch-1 inference up to 256² at 128 channels (33.5 MB) and leaves larger tensors
to ``mmap``. Tools tune the allocator on CPU runs unless ``TRANSVAE_MALLOC_MMAP_THRESHOLD_MB`` is ``0``; any other
value of it sets the threshold in MiB.

Memory checks want the opposite: :func:`rss_follows_live_tensors` fixes the threshold at glibc's starting value
(128 KiB), so every tensor above it is its own ``mmap`` returned to the kernel on ``free`` and the RSS follows the live
tensor bytes, as ``torch.cuda.max_memory_allocated`` does on a GPU. Under the default dynamic threshold a freed
block raises the threshold to its size, and later blocks of that size stay in the heap after ``free``: TransVAE-T
stage 1 with activation checkpointing (batch 2, 128²) measured a 660-743 MiB step peak of RSS that way, against a
428 MiB peak of live allocations in the allocator's own record (profiler memory events); with the fixed threshold the
RSS peak is 429 MiB.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
ENV_VAR = 'TRANSVAE_MALLOC_MMAP_THRESHOLD_MB'
DEFAULT_THRESHOLD_MB = 64
LIVE_TENSORS_THRESHOLD = 128 * 1024
_state: dict[str, float | None] = {'threshold_mb': None}


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None


def tune_cpu_allocator(threshold_mb: int | None = None) -> int | None:
    """Raise glibc's mmap threshold (and the trim threshold with it) to ``threshold_mb`` MiB.

    Args:
        threshold_mb: the new threshold; ``None`` reads ``TRANSVAE_MALLOC_MMAP_THRESHOLD_MB`` (default 64),
            ``0`` leaves the allocator alone.

    Returns:
        The threshold in MiB now in effect, or ``None`` when nothing was changed (not glibc, disabled, or refused).
        Calling it again is harmless.
    """
    if threshold_mb is None:
        threshold_mb = int(os.environ.get(ENV_VAR, DEFAULT_THRESHOLD_MB))
    if threshold_mb <= 0:
        return None
    libc = _glibc()
    if libc is None:
        return None
    value = ctypes.c_int(min(threshold_mb * 1024 * 1024, 2**31 - 1))
    if not libc.mallopt(_M_MMAP_THRESHOLD, value):
        return None
    libc.mallopt(_M_TRIM_THRESHOLD, value)
    _state['threshold_mb'] = threshold_mb
    return threshold_mb


def rss_follows_live_tensors() -> bool:
    """Fix glibc's mmap (and trim) threshold at :data:`LIVE_TENSORS_THRESHOLD` bytes for memory measurements (see
    the module docstring); slower for large element-wise ops. Returns whether glibc took it."""
    libc = _glibc()
    if libc is None:
        return False
    value = ctypes.c_int(LIVE_TENSORS_THRESHOLD)
    if not libc.mallopt(_M_MMAP_THRESHOLD, value):
        return False
    libc.mallopt(_M_TRIM_THRESHOLD, value)
    _state['threshold_mb'] = LIVE_TENSORS_THRESHOLD / 2**20
    return True


def allocator_state() -> dict[str, float | None | str]:
    """What :func:`tune_cpu_allocator` did in this process, for logs and benchmark reports."""
    return dict(allocator='glibc malloc' if _glibc() is not None else platform.system(),
                mmap_threshold_mb=_state['threshold_mb'])
