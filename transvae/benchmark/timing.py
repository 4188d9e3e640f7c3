"""Timing primitives: synchronised wall-clock calls, round-robin interleaving, the matmul peak, a training step."""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Optional

import torch

__all__ = ['sync', 'timed', 'interleaved', 'matmul_peak', 'make_train_step', 'ctx_call', 'no_grad_call']


def sync(device: str) -> None:
    """Wait for the device (CUDA) to finish its queued work."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    """Seconds one call of ``fn`` takes, device-synchronised before and after."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: str,
                bar: Any = None) -> dict[str, list[float]]:
    """Run each callable ``warmup`` then ``repeats`` times, interleaved round-robin; returns all timings."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            out[k].append(timed(fn, device))
        if bar is not None:
            bar.update(1)
    return out


def matmul_peak(device: str, sizes: tuple[int, ...] = (1024, 2048, 3072, 4096), repeats: int = 3,
                dtype: torch.dtype = torch.float32) -> dict:
    """Best achieved FLOP/s of square matmuls over ``sizes`` (2 n³ FLOPs each)."""
    best, per = 0.0, {}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        ts = [timed(lambda: a @ b, device) for _ in range(repeats)]
        fl = 2 * n ** 3 / min(ts)
        per[n] = fl / 1e9
        best = max(best, fl)
    return dict(gflops=best / 1e9, per_size_gflops=per)


def make_train_step(model: torch.nn.Module, b: int, res: int, device: str, amp: Optional[str] = None,
                    channels_last: bool = False) -> tuple[Callable[[], Any], torch.Tensor]:
    """One fwd + bwd + AdamW step of the VAE loss without LPIPS (L1 + KL with the config's KL weight)."""
    from transvae.models.utils.speed import autocast
    model.train()
    params = [p for n, p in model.named_parameters() if not n.startswith('rec_loss') and p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(b, 3, res, res, generator=g) * 2 - 1).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    kl_w = getattr(model.kl_loss, 'loss_weight', 1e-8)

    def step() -> torch.Tensor:
        with autocast(device, amp):
            post = model.encode(x)
            rec = model.decode(post.sample(), out_size=x.shape[-2:])
            loss = (rec.float() - x).abs().mean() + kl_w * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, x


def ctx_call(fn: Callable[[], Any], ctx: contextlib.AbstractContextManager) -> Any:
    """``fn()`` inside ``ctx``."""
    with ctx:
        return fn()


def no_grad_call(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` wrapped to run under ``torch.no_grad()`` (an inference call to time)."""
    def run() -> Any:
        with torch.no_grad():
            return fn()
    return run
