"""GlobalFlopCounter: torch's FLOP counts without the module hooks that keep checkpointed recomputations alive."""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.distributed._tools.mem_tracker import MemTracker
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from transvae.benchmark.global_flops import GlobalFlopCounter


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.nn.functional.gelu(self.a(x)))


class _Checkpointed(nn.Module):
    def __init__(self, c: int = 32, n: int = 6) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Block(c) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = checkpoint(blk, x, use_reentrant=False)
        return x


def _step_peak_and_flops(counter_cls) -> tuple[int, int]:
    """Peak tracked bytes of one fwd + bwd of a checkpointed MLP stack under ``counter_cls`` (``None``: no counter)."""
    torch.manual_seed(0)
    model = _Checkpointed()
    x = torch.randn(512, 32, requires_grad=True)
    tracker = MemTracker()
    tracker.track_external(model)
    counter = counter_cls(display=False) if counter_cls else contextlib.nullcontext()
    with tracker, counter:
        model(x).sum().backward()
    peak = next(iter(tracker.get_tracker_snapshot('peak').values()))
    total = sum(v for k, v in peak.items() if 'Total' not in str(k))
    return total, (counter.get_total_flops() if counter_cls else 0)


def test_counting_does_not_keep_recomputed_tensors_alive():
    bare, _ = _step_peak_and_flops(None)
    torch_peak, torch_flops = _step_peak_and_flops(FlopCounterMode)
    ours_peak, ours_flops = _step_peak_and_flops(GlobalFlopCounter)
    assert torch_peak > bare  # the hazard itself: torch's counter holds the recomputations
    assert ours_peak == bare
    assert ours_flops == torch_flops > 0  # the same count (forward, recomputation and backward)


def test_counts_by_op_under_global():
    lin = nn.Linear(8, 16)
    with GlobalFlopCounter() as c:
        lin(torch.randn(4, 8))
    counts = c.get_flop_counts()
    assert set(counts) == {'Global'}
    assert counts['Global'][torch.ops.aten.addmm] == 2 * 4 * 8 * 16 == c.get_total_flops()
