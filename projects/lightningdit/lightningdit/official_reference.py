"""This project's LightningDiT against the official hustvl/LightningDiT code, run in the same process.

:func:`load_official` imports the reference's ``models/lightningdit.py`` and ``transport/`` from a checkout folder
(nothing of it is copied here). Third-party modules it imports and this environment lacks are replaced for the import
by minimal stand-ins that implement just what the reference calls (:data:`STAND_INS`); the real package is used
wherever it is importable. ``torch.compile`` is made the identity while the reference's modules load (its
decorators would otherwise compile every call; eager execution is the same function).

:func:`run_checks` builds a small official LightningDiT (its own initialisation, then Gaussian noise added to
every weight but the frozen ``pos_embed``, so that no adaLN-Zero layer stays zero), saves it as an official
``train.py`` checkpoint, converts the file with
:func:`~.models.official_checkpoint.convert_official_checkpoint`, loads the result into our ``LatentFlowModel``
through the tools' loader, and returns the max |official - ours| of: the forward pass (the released configuration
and one with QK-norm, ``wo_shift`` and ``learn_sigma``), the transport's training terms on the same noise and times,
and Euler / Heun samples from the same noise without and with the reference's 3-channel CFG (interval 0.11), each on
the reference's ``num_sampling_steps`` time grid. Three controls must differ instead (:data:`CONTROLS`): the weights
with a key rename only, the grid-point count taken as a step count, CFG on every channel.
``projects/lightningdit/tools/check_official.py`` prints the table;
``projects/lightningdit/tests/test_ldit_official.py`` asserts it.
"""
from __future__ import annotations

import contextlib
import importlib
import os.path as osp
import sys
import tempfile
import types
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from transvae.registry import MODELS
from transvae.utils.errors import InputNotFoundError

#: third-party modules the reference imports that may be absent here, and what stands in for them
STAND_INS = {
    'einops': '`rearrange` / `repeat` for the three patterns of its RoPE',
    'fairscale': 'the names its rmsnorm.py imports for its LLaMA classes (unused by RMSNorm)',
    'torchdiffeq': "`odeint` with the fixed-grid 'euler' and 'heun2' steps of torchdiffeq",
}
#: what every check must stay below
TOLERANCE = 1e-5


# --------------------------------------------------------------------------------------------------- stand-ins
def _einops_stand_in() -> types.ModuleType:
    mod = types.ModuleType('einops')

    def rearrange(x: Tensor, pattern: str, **axes: int) -> Tensor:
        if pattern == '... (d r) -> ... d r':
            return x.reshape(*x.shape[:-1], -1, axes['r'])
        if pattern == '... d r -> ... (d r)':
            return x.flatten(-2)
        raise NotImplementedError(f'einops stand-in: pattern {pattern!r}')

    def repeat(x: Tensor, pattern: str, **axes: int) -> Tensor:
        if pattern == '... n -> ... (n r)':
            return x.unsqueeze(-1).expand(*x.shape, axes['r']).flatten(-2)
        raise NotImplementedError(f'einops stand-in: pattern {pattern!r}')

    mod.rearrange, mod.repeat = rearrange, repeat
    return mod


def _fairscale_stand_in() -> dict[str, types.ModuleType]:
    def unused(name: str) -> type:
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            raise NotImplementedError(f'fairscale stand-in: {name} is not available')
        return type(name, (), {'__init__': init})

    mods = {n: types.ModuleType(n) for n in ('fairscale', 'fairscale.nn', 'fairscale.nn.model_parallel',
                                             'fairscale.nn.model_parallel.initialize',
                                             'fairscale.nn.model_parallel.layers')}
    layers = mods['fairscale.nn.model_parallel.layers']
    for name in ('ColumnParallelLinear', 'ParallelEmbedding', 'RowParallelLinear'):
        setattr(layers, name, unused(name))
    mods['fairscale.nn.model_parallel.initialize'].get_model_parallel_world_size = lambda: 1
    mods['fairscale'].nn = mods['fairscale.nn']
    mods['fairscale.nn'].model_parallel = mods['fairscale.nn.model_parallel']
    mods['fairscale.nn.model_parallel'].initialize = mods['fairscale.nn.model_parallel.initialize']
    mods['fairscale.nn.model_parallel'].layers = layers
    return mods


def _torchdiffeq_stand_in() -> types.ModuleType:
    mod = types.ModuleType('torchdiffeq')

    def odeint(func: Callable, y0: Tensor, t: Tensor, *, rtol: Any = None, atol: Any = None, method: str | None = None,
               options: Any = None, **_: Any) -> Tensor:
        """The solution at every point of ``t`` for a fixed-grid method on the grid ``t`` itself."""
        if method not in ('euler', 'heun2'):
            raise NotImplementedError(f'torchdiffeq stand-in: method {method!r} (only euler, heun2)')
        ys, y = [y0], y0
        for t0, t1 in zip(t[:-1], t[1:]):
            dt = t1 - t0
            f0 = func(t0, y)
            if method == 'euler':
                dy = dt * f0
            else:  # Heun's method: tableau c2 = 1, a21 = 1, b = (1/2, 1/2)
                dy = dt * (f0 * 0.5 + func(t0 + dt, y + dt * f0) * 0.5)
            y = y + dy
            ys.append(y)
        return torch.stack(ys)

    mod.odeint = odeint
    return mod


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


@contextlib.contextmanager
def _isolated_import(repo: str, stand_ins: dict[str, types.ModuleType]) -> Iterator[None]:
    """``repo`` first on ``sys.path``, the stand-ins in ``sys.modules``, ``torch.compile`` the identity; afterwards
    the reference's top-level packages (``models``, ``transport``) and the stand-ins leave ``sys.modules`` again
    and whatever held those names before is restored."""
    names = ('models', 'transport', *stand_ins)
    saved = {k: v for k, v in sys.modules.items() if k.split('.')[0] in names}
    for k in saved:
        del sys.modules[k]
    sys.modules.update(stand_ins)
    compile_ = torch.compile
    torch.compile = lambda fn=None, **kw: fn if fn is not None else (lambda f: f)
    sys.path.insert(0, repo)
    try:
        yield
    finally:
        sys.path.remove(repo)
        torch.compile = compile_
        for k in [k for k in sys.modules if k.split('.')[0] in names]:
            del sys.modules[k]
        sys.modules.update(saved)


def load_official(repo: str) -> types.SimpleNamespace:
    """Import the reference's model and transport modules from the checkout ``repo``.

    Returns:
        ``SimpleNamespace(lightningdit=<models.lightningdit>, transport=<transport package>, stand_ins=[names])``.

    Raises:
        InputNotFoundError: ``repo`` lacks ``models/lightningdit.py`` or ``transport/__init__.py``.
        ImportError: a module the reference needs is absent and has no stand-in (``timm``, ``scipy``).
    """
    for rel in ('models/lightningdit.py', 'transport/__init__.py'):
        if not osp.isfile(osp.join(repo, rel)):
            raise InputNotFoundError(f'{repo} is not a hustvl/LightningDiT checkout: {rel} not found')
    stand_ins: dict[str, types.ModuleType] = {}
    if not _importable('einops'):
        stand_ins['einops'] = _einops_stand_in()
    if not _importable('fairscale'):
        stand_ins.update(_fairscale_stand_in())
    if not _importable('torchdiffeq'):
        stand_ins['torchdiffeq'] = _torchdiffeq_stand_in()
    with _isolated_import(osp.abspath(repo), stand_ins):
        ldit = importlib.import_module('models.lightningdit')
        transport = importlib.import_module('transport')
    return types.SimpleNamespace(lightningdit=ldit, transport=transport,
                                 stand_ins=sorted({k.split('.')[0] for k in stand_ins}))


# ------------------------------------------------------------------------------------------------------ checks
def _official_model(off: types.SimpleNamespace, seed: int, **options: Any) -> torch.nn.Module:
    """A small official LightningDiT (latent 8x8x4, patch 2, width 64, 2 heads, depth 2, 10 classes): its own init,
    then noise added to every weight but ``pos_embed`` (adaLN-Zero alone would make every block the identity)."""
    torch.manual_seed(seed)
    kw = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=2, num_classes=10,
              use_swiglu=True, use_rope=True, use_rmsnorm=True)
    model = off.lightningdit.LightningDiT(**dict(kw, **options))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != 'pos_embed':
                p.add_(torch.randn_like(p) * (0.3 if p.dim() == 1 else 0.6 / p.shape[-1] ** 0.5))
    return model.eval()


def _converted(official: torch.nn.Module, tmp: str, tag: str) -> tuple[torch.nn.Module, dict]:
    """``official`` saved as a ``train.py`` checkpoint, converted by the converter, loaded by the tools' loader:
    ``(our LatentFlowModel, its config)``."""
    from transvae.engine.checkpoint_io import load_weights

    from .models.official_checkpoint import convert_official_checkpoint
    src, out = osp.join(tmp, f'{tag}_official.pt'), osp.join(tmp, f'{tag}.pth')
    sd = official.state_dict()
    torch.save({'model': sd, 'ema': sd, 'opt': {}}, src)
    info = convert_official_checkpoint(src, out, num_heads=official.num_heads, overwrite=True)
    flow = MODELS.build(info['model'])
    load_weights(flow, out, allow_partial=False)
    return flow.eval(), info['model']


def _max_diff(a: Tensor, b: Tensor) -> float:
    if a.shape != b.shape:
        raise AssertionError(f'shapes differ: official {tuple(a.shape)}, ours {tuple(b.shape)}')
    return float((a.double() - b.double()).abs().max())


def _official_sample(off: types.SimpleNamespace, model: torch.nn.Module, z: Tensor, y: Tensor, method: str,
                     grid_points: int, shift: float, cfg_scale: float, interval_start: float) -> Tensor:
    """``inference.py``'s sampling: the reference's transport, ``Sampler.sample_ode`` and ``forward_with_cfg``."""
    transport = off.transport.create_transport('Linear', 'velocity', None, None, None, use_cosine_loss=True,
                                               use_lognorm=True)
    sample_fn = off.transport.Sampler(transport).sample_ode(sampling_method=method, num_steps=grid_points,
                                                            atol=1e-6, rtol=1e-3, reverse=False,
                                                            timestep_shift=shift)
    with torch.no_grad():
        if cfg_scale > 1.0:
            null = torch.full_like(y, model.y_embedder.num_classes)
            out = sample_fn(torch.cat([z, z]), model.forward_with_cfg, y=torch.cat([y, null]), cfg_scale=cfg_scale,
                            cfg_interval=True, cfg_interval_start=interval_start)[-1]
            return out[:z.shape[0]]
        return sample_fn(z, model.forward, y=y)[-1]


#: controls that must NOT agree (far above the tolerance): what a key rename alone gives (the core row-first
#: table), the reference's grid-point count taken as our step count (10 steps instead of 9), CFG on every channel
RENAME_ONLY = 'control: forward, key rename only (row-first table)'
STEPS_NOT_POINTS = 'control: Euler sample, 10 grid points taken as 10 steps'
ALL_CHANNELS = 'control: Euler sample, CFG on every channel'
CONTROLS = (RENAME_ONLY, STEPS_NOT_POINTS, ALL_CHANNELS)


def run_checks(repo: str, seed: int = 0, grid_points: int = 250, cfg_scale: float = 4.0,
               interval_start: float = 0.11, shift: float = 0.3) -> tuple[dict[str, float], list[str]]:
    """Max |official - ours| of each check (module docstring), in a fixed order, and the stand-ins used.

    Every entry must stay below :data:`TOLERANCE` except the :data:`CONTROLS`, which show that each protocol option
    matters (they must be far above it).

    Args:
        repo: a hustvl/LightningDiT checkout.
        seed: seeds the weights, inputs and noise.
        grid_points: the reference's ``num_sampling_steps`` (our ``num_grid_points``) of the samples.
        cfg_scale / interval_start: the CFG of the guided samples (``cfg_interval`` on, as ``inference.py``).
        shift: the time shift of both.
    """
    off = load_official(repo)
    out: dict[str, float] = {}
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 8, 8, generator=g)
    t = torch.rand(3, generator=g)
    y = torch.tensor([1, 7, 10])  # 10 = the null class
    with tempfile.TemporaryDirectory() as tmp:
        official = _official_model(off, seed)
        ours, cfg = _converted(official, tmp, 'released')
        with torch.no_grad():
            ref = official(x, t, y)
            out['forward'] = _max_diff(ref, ours.backbone(x, t, y))
            renamed = MODELS.build(dict(cfg['backbone'], ape_cfg=dict(type='SinCosAPE')))
            renamed.load_state_dict(ours.backbone.state_dict())
            out[RENAME_ONLY] = _max_diff(ref, renamed.eval()(x, t, y))

        variant = _official_model(off, seed + 1, use_qknorm=True, wo_shift=True, learn_sigma=True)
        ours_variant, _ = _converted(variant, tmp, 'variant')
        with torch.no_grad():
            out['forward (QK-norm, wo_shift, learn_sigma)'] = _max_diff(variant(x, t, y),
                                                                        ours_variant.backbone(x, t, y))

        # transport: the reference's training terms; ours on the same x0 (first torch draw of both) and the same t
        x1, labels = torch.randn(3, 4, 8, 8, generator=g), torch.tensor([0, 3, 9])
        seen: dict[str, Tensor] = {}

        def recording(xt: Tensor, tt: Tensor, **kw: Any) -> Tensor:
            seen['t'] = tt.clone()
            return official(xt, tt, **kw)

        transport = off.transport.create_transport('Linear', 'velocity', None, None, None, use_cosine_loss=True,
                                                   use_lognorm=True)
        torch.manual_seed(seed)
        np.random.seed(seed)
        with torch.no_grad():
            terms = transport.training_losses(recording, x1, dict(y=labels))
        ours.timesteps = _FixedTimes(seen['t'])
        torch.manual_seed(seed)
        with torch.no_grad():
            mine = ours.loss(x1, labels)
        out['transport: MSE term'] = abs(float(terms['loss'].mean()) - float(mine['loss_mse']))
        out['transport: cosine term'] = abs(float(terms['cos_loss'].mean()) - float(mine['loss_cos']))

        z, ys = torch.randn(3, 4, 8, 8, generator=g), torch.tensor([2, 5, 8])
        for method, sampler in (('euler', 'EulerODESampler'), ('heun2', 'HeunODESampler')):
            for scale in (1.0, cfg_scale):
                ref = _official_sample(off, official, z, ys, method, grid_points, shift, scale, interval_start)
                ours.sampler = MODELS.build(dict(type=sampler, num_grid_points=grid_points, shift=shift))
                ours.guidance = MODELS.build(dict(type='ClassifierFreeGuidance', scale=scale,
                                                  interval_start=interval_start, guided_channels=3))
                name = f"{'Euler' if method == 'euler' else 'Heun'} sample, {grid_points} grid points" + (
                    f', 3-channel CFG {scale}' if scale > 1 else '')
                out[name] = _max_diff(ref, ours.sample(ys, noise=z))
                if method == 'euler' and scale == 1.0:  # on a coarse grid, where one step more is visible
                    coarse = _official_sample(off, official, z, ys, method, 10, shift, scale, interval_start)
                    ours.sampler = MODELS.build(dict(type=sampler, num_steps=10, shift=shift))
                    out[STEPS_NOT_POINTS] = _max_diff(coarse, ours.sample(ys, noise=z))
                if method == 'euler' and scale > 1.0:
                    ours.guidance = MODELS.build(dict(type='ClassifierFreeGuidance', scale=scale,
                                                      interval_start=interval_start))
                    out[ALL_CHANNELS] = _max_diff(ref, ours.sample(ys, noise=z))
    return out, off.stand_ins


class _FixedTimes:
    """Training times of a check: the ones the reference drew."""

    def __init__(self, t: Tensor) -> None:
        self.t = t

    def sample(self, n: int, device: torch.device | str = 'cpu', generator: Any = None) -> Tensor:
        return self.t[:n].to(device)


__all__ = ['ALL_CHANNELS', 'CONTROLS', 'RENAME_ONLY', 'STAND_INS', 'STEPS_NOT_POINTS', 'TOLERANCE', 'load_official',
           'run_checks']
