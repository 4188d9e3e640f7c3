"""ODE samplers from noise (t = 0) to data (t = 1) on a (optionally shifted) time grid."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from transvae.engine.config_validation import ConfigValueError
from transvae.registry import MODELS

from .settings import check_number

VelocityFn = Callable[[Tensor, Tensor], Tensor]  # (x (B, ...), t (B,)) -> v (B, ...)


def time_grid(num_steps: int, shift: float = 1.0, device: torch.device | str = 'cpu') -> Tensor:
    """``num_steps + 1`` times from 0 to 1: ``linspace`` mapped by ``t -> s t / (1 + (s - 1) t)``.

    ``shift`` ``s < 1`` puts more steps near the noise end (LightningDiT samples with ``timestep_shift=0.3``);
    ``s = 1`` (or ``s <= 0``, the reference's "off") keeps the uniform grid. The end points stay 0 and 1.
    """
    if num_steps < 1:
        raise ValueError(f'num_steps must be >= 1, got {num_steps}')
    t = torch.linspace(0, 1, num_steps + 1, dtype=torch.float64)
    if shift > 0 and shift != 1:
        t = shift * t / (1 + (shift - 1) * t)
    return t.to(device=device, dtype=torch.float32)


class _ODESampler:
    """Shared set-up: the time grid and how many steps it has.

    Two names for the one count, so a config says which it means:

    * ``num_steps``: integration steps, i.e. the grid has ``num_steps + 1`` points (0 and 1 included); this
      project's convention (and the default, 250 steps);
    * ``num_grid_points``: points of the time grid, i.e. ``num_grid_points - 1`` steps; the reference's
      ``sample.num_sampling_steps`` means this (it builds ``linspace(0, 1, num_sampling_steps)``), so its 250 is
      ``num_grid_points=250`` = ``num_steps=249``.

    Give at most one of them (both: a config error naming the two keys).

    Args:
        num_steps: integration steps (>= 1); 250 when neither count is given.
        shift: time shift ``s`` of :func:`time_grid` (0.3 in LightningDiT; ``<= 0`` or 1: uniform grid).
        num_grid_points: grid points including both ends (>= 2), the reference's ``num_sampling_steps``.
    """

    def __init__(self, num_steps: int | None = None, shift: float = 0.3, num_grid_points: int | None = None) -> None:
        if num_steps is not None and num_grid_points is not None:
            raise ConfigValueError(f'model.sampler: num_steps={num_steps!r} and num_grid_points={num_grid_points!r} '
                                   'both given; set one (num_steps = integration steps; num_grid_points = time-grid '
                                   'points = steps + 1, the reference\'s num_sampling_steps)')
        if num_grid_points is not None:
            if isinstance(num_grid_points, bool) or not isinstance(num_grid_points, int) or num_grid_points < 2:
                raise ConfigValueError(f'model.sampler.num_grid_points={num_grid_points!r}: expected an integer >= 2 '
                                       '(time-grid points including t = 0 and t = 1)')
            num_steps = num_grid_points - 1
        elif num_steps is None:
            num_steps = 250
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ConfigValueError(f'model.sampler.num_steps={num_steps!r}: expected an integer >= 1')
        # a NaN shift would silently fall back to the uniform grid (``shift > 0`` is False)
        self.num_steps = num_steps
        self.shift = check_number('model.sampler.shift', shift, hint=' (< 1: more steps near the noise; <= 0 or 1: '
                                                                      'uniform grid)')

    @property
    def num_grid_points(self) -> int:
        """Points of the time grid (``num_steps + 1``): the reference's ``num_sampling_steps``."""
        return self.num_steps + 1

    def nfe(self) -> int:
        """Velocity evaluations per sample (CFG doubles the batch of each, not their number)."""
        raise NotImplementedError

    def sample(self, velocity: VelocityFn, x0: Tensor) -> Tensor:
        raise NotImplementedError


@MODELS.register_module()
class EulerODESampler(_ODESampler):
    """Explicit Euler: ``x_{n+1} = x_n + (t_{n+1} - t_n) v(x_n, t_n)``. Exact for fields constant along the path."""

    def nfe(self) -> int:
        return self.num_steps

    @torch.no_grad()
    def sample(self, velocity: VelocityFn, x0: Tensor) -> Tensor:
        """Integrate from ``x0`` ``(B, ...)`` at t = 0 to t = 1."""
        ts = time_grid(self.num_steps, self.shift, x0.device)
        x = x0
        for i in range(self.num_steps):
            t = ts[i].expand(x.shape[0])
            x = x + (ts[i + 1] - ts[i]) * velocity(x, t).to(x.dtype)
        return x


@MODELS.register_module()
class HeunODESampler(_ODESampler):
    """Heun (explicit trapezoid): an Euler predictor, then the average of the two end slopes; 2 NFE per step."""

    def nfe(self) -> int:
        return 2 * self.num_steps

    @torch.no_grad()
    def sample(self, velocity: VelocityFn, x0: Tensor) -> Tensor:
        ts = time_grid(self.num_steps, self.shift, x0.device)
        x = x0
        for i in range(self.num_steps):
            dt = ts[i + 1] - ts[i]
            v0 = velocity(x, ts[i].expand(x.shape[0])).to(x.dtype)
            x_pred = x + dt * v0
            v1 = velocity(x_pred, ts[i + 1].expand(x.shape[0])).to(x.dtype)
            x = x + dt * 0.5 * (v0 + v1)
        return x
