"""Peak-memory measurement and estimation: a live-tensor tracker, a quadratic peak model, budgets, process peak RSS.

:class:`LiveTensorTracker` counts the bytes of tensor storages that ATen ops allocate while it is active (inputs and
weights excluded) and keeps their peak. :class:`PeakModel` is ``peak(P) = a·P + b·P² + c`` in pixels ``P``, fitted
exactly through three tracked measurements: the linear term is the activations, the quadratic term appears only
where attention materialises the ``N×N`` scores (the math SDPA kernel; PyTorch's CPU flash kernel keeps it at 0).
The process-level helpers read and reset Linux's peak resident set size (``VmHWM``), which tools report as the
measured peak.
"""
from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorTracker(TorchDispatchMode):
    """Peak bytes of tensor storages allocated by ATen ops while active (inputs and weights excluded).

    Storages are keyed by their data pointer and released through a ``weakref`` finaliser on the storage object
    (PyTorch keeps one Python storage object per storage), so views and in-place ops are not double counted.
    Memory allocated and freed inside one fused kernel (workspaces) is not seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, int] = {}

    def _free(self, ptr: int, nbytes: int) -> None:
        if self._live.pop(ptr, None) is not None:
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        inputs = None
        for t in tree_leaves(out):
            if not isinstance(t, Tensor):
                continue
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr == 0 or ptr in self._live:
                continue
            if inputs is None:  # views / in-place results of inputs (weights included) are not allocations
                inputs = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs))
                          if isinstance(a, Tensor)}
            if ptr in inputs:
                continue
            n = st.nbytes()
            self._live[ptr] = n
            self.current += n
            self.peak = max(self.peak, self.current)
            weakref.finalize(st, self._free, ptr, n)
        return out


def measure_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak live bytes of the tensors ``fn()`` allocates (its result kept until it returns)."""
    with LiveTensorTracker() as tr:
        res = fn()
        peak = tr.peak
    del res
    return peak


@dataclass(frozen=True)
class PeakModel:
    """``peak_bytes(P) = a·P + b·P² + c`` for ``P`` pixels (per batch element for ``a`` and ``b``)."""

    a: float
    b: float
    c: float

    def __call__(self, pixels: float, batch: int = 1) -> int:
        return int(batch * (self.a * pixels + self.b * pixels * pixels) + self.c)

    @classmethod
    def fit(cls, points: Sequence[tuple[float, float]]) -> PeakModel:
        """The quadratic through three ``(pixels, bytes)`` points; ``b`` and ``c`` are clipped at 0 and a quadratic
        term below 0.1 % of the largest measurement is treated as noise (purely linear)."""
        if len(points) != 3:
            raise ValueError(f'PeakModel.fit needs three (pixels, bytes) points, got {len(points)}')
        (p1, m1), (p2, m2), (p3, m3) = sorted(points)
        if not p1 < p2 < p3:
            raise ValueError(f'PeakModel.fit needs three distinct pixel counts, got {[p1, p2, p3]}')
        d12 = (m2 - m1) / (p2 - p1)
        d23 = (m3 - m2) / (p3 - p2)
        b = (d23 - d12) / (p3 - p1)
        b = max(b, 0.0) if b * p3 * p3 > 1e-3 * m3 else 0.0
        a = d12 - b * (p1 + p2)
        c = max(m1 - a * p1 - b * p1 * p1, 0.0)
        return cls(a, b, c)

    @classmethod
    def calibrate(cls, run: Callable[[int], object], pixels_of: Callable[[int], float],
                  sizes: Sequence[int] = (2, 4, 6)) -> PeakModel:
        """Fit from :func:`measure_peak_bytes` of ``run(s)`` for three ``sizes`` (``pixels_of(s)`` pixels each)."""
        return cls.fit([(float(pixels_of(s)), float(measure_peak_bytes(lambda s=s: run(s)))) for s in sizes])


def default_memory_budget_mb(device: torch.device | str = 'cpu') -> float:
    """Half the available host memory (``MemAvailable``) on CPU; 80 % of free device memory on CUDA."""
    device = torch.device(device)
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return 0.8 * free / 2**20
    try:
        with open('/proc/meminfo') as fh:
            for line in fh:
                if line.startswith('MemAvailable:'):
                    return 0.5 * int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.5 * (os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')) / 2**20


def _status_kb(field: str) -> int:
    try:
        with open('/proc/self/status') as fh:
            for line in fh:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """Current resident set size of this process (0 where ``/proc`` is not available)."""
    return _status_kb('VmRSS') * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since start or the last :func:`reset_peak_rss`."""
    return _status_kb('VmHWM') * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); ``False`` where that is not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as fh:
            fh.write('5')
        return True
    except OSError:
        return False


__all__ = ['LiveTensorTracker', 'measure_peak_bytes', 'PeakModel', 'default_memory_budget_mb', 'rss_bytes',
           'peak_rss_bytes', 'reset_peak_rss']
