"""What a benchmark run measures (the fields mirror ``tools/analysis_tools/benchmark.py``'s flags)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

__all__ = ['BenchmarkOptions']


def _default_device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'cpu'


@dataclass
class BenchmarkOptions:
    """Settings of :func:`transvae.benchmark.run_benchmark`.

    Attributes:
        configs: model config files.
        checkpoint: one checkpoint per config (random weights when ``None``).
        preset / cfg_options: applied to every config (``cfg_options``: key -> value).
        resolutions / batch_sizes / modes / repeats / warmup: the latency grid (median of ``repeats`` after
            ``warmup``).
        mem_resolutions / mem_modes / no_memory: peak-memory runs (fresh process each).
        tiled_mem_resolutions / tile / overlap / memory_budget_mb / tile_limit / tile_mode: tiled runs (``tile``:
            ``None``, ``'auto'`` or a size in pixels as a string or int).
        amp / channels_last / compile / sdpa_backend / grad_checkpoint: speed switches (``amp``: 'fp32', 'bf16',
            'fp16').
        train_step / train_config / train_reference / train_batch / train_res / train_repeats: the micro training
            step, and a plain conv VAE of its size measured in the same loop (``train_reference=''`` skips it).
        switches / switch_list: each switch alone against the plain run.
        component_costs: components of our model (``qk_norm``, ``rope``) each timed removed, against the plain
            model and the references: the most a faster kernel of each could gain (empty: skipped;
            :mod:`transvae.benchmark.component_cost`).
        no_reference / no_peak: skip the SD-VAE reference / the matmul peak.
        device / threads / allocator / seed: environment (``allocator``: 'tuned', 'live' or 'glibc').
    """
    configs: list[str] = field(default_factory=list)
    checkpoint: Optional[list[Optional[str]]] = None
    preset: Optional[str] = None
    cfg_options: dict = field(default_factory=dict)
    resolutions: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    modes: list[str] = field(default_factory=lambda: ['encode', 'decode'])
    repeats: int = 5
    warmup: int = 1
    mem_resolutions: Optional[list[int]] = None
    mem_modes: Optional[list[str]] = None
    no_memory: bool = False
    tiled_mem_resolutions: list[int] = field(default_factory=list)
    tile: Optional[str] = None
    overlap: Optional[int] = None
    memory_budget_mb: Optional[float] = None
    tile_limit: Optional[int] = None
    tile_mode: str = 'blend'
    amp: str = 'fp32'
    channels_last: bool = False
    compile: Optional[str] = None
    sdpa_backend: str = 'auto'
    grad_checkpoint: bool = False
    train_step: bool = False
    train_config: str = 'configs/_base_/models/transvae-micro_f8d16.py'
    train_reference: str = 'configs/_base_/models/cnn-vae-micro_f8d16.py'
    train_batch: int = 16
    train_res: int = 64
    train_repeats: int = 10
    switches: bool = False
    switch_list: list[str] = field(default_factory=lambda: ['channels_last', 'bf16', 'sdpa_math', 'compile'])
    component_costs: list[str] = field(default_factory=list)
    no_reference: bool = False
    no_peak: bool = False
    device: str = field(default_factory=_default_device)
    threads: Optional[int] = None
    allocator: str = 'tuned'
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mem_resolutions is None:
            self.mem_resolutions = list(self.resolutions)
        if self.mem_modes is None:
            self.mem_modes = list(self.modes)
