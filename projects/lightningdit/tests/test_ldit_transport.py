"""Transport: linear path, velocity target, loss, time sampling, Euler / Heun exactness, CFG."""
from __future__ import annotations

import pytest
import torch

from projects.lightningdit.lightningdit.transport import (ClassifierFreeGuidance, EulerODESampler, HeunODESampler,
                                                          LinearPath, LogitNormalTimesteps, VelocityLoss, time_grid)
from transvae.registry import MODELS


def test_path_endpoints_and_velocity_sign():
    path = LinearPath()
    x0, x1 = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    assert torch.equal(path.interpolate(x0, x1, torch.zeros(3)), x0)  # t = 0: noise
    assert torch.allclose(path.interpolate(x0, x1, torch.ones(3)), x1)  # t = 1: data
    t, h = torch.rand(3) * 0.8 + 0.1, 1e-3
    fd = (path.interpolate(x0, x1, t + h) - path.interpolate(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(path.velocity(x0, x1, t), fd, atol=1e-3)  # target = dx_t/dt, pointing noise -> data
    assert torch.equal(path.velocity(x0, x1), x1 - x0)


def test_velocity_loss_terms():
    loss = VelocityLoss()
    u = torch.randn(2, 3, 4, 4)
    out = loss(u, u)
    assert out['loss_mse'] == 0 and out['loss_cos'].abs() < 1e-6
    out = loss(-u, u)  # opposite direction: cosine 1 - (-1) = 2, mse = 4 * mean(u^2)
    assert torch.allclose(out['loss_cos'], torch.tensor(2.0), atol=1e-5)
    assert torch.allclose(out['loss_mse'], 4 * u.pow(2).mean(), atol=1e-5)
    assert 'loss_cos' not in VelocityLoss(cos_weight=0)(u, u)
    with pytest.raises(ValueError, match='shape'):
        loss(u, u[:1])


def test_logit_normal_timesteps():
    g = torch.Generator().manual_seed(0)
    t = LogitNormalTimesteps().sample(50000, generator=g)
    assert t.min() > 0 and t.max() < 1
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean()) < 0.02 and abs(logit.std() - 1) < 0.02
    shifted = LogitNormalTimesteps(mean=1.0).sample(20000, generator=g)
    assert shifted.median() > 0.7


def test_time_grid_and_shift():
    g = time_grid(250, 0.3)
    assert g.shape == (251,) and g[0] == 0 and g[-1] == 1 and (g.diff() > 0).all()
    assert g[125] < 0.5  # shift < 1 spends more steps near the noise end
    assert torch.allclose(time_grid(4, 1.0), torch.linspace(0, 1, 5))
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(time_grid(10, 0.3), 0.3 * t / (1 - 0.7 * t))
    with pytest.raises(ValueError):
        EulerODESampler(num_steps=0)


def test_euler_integrates_the_exact_flow_to_the_endpoint():
    x0, x1 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    # the optimal velocity towards one data point, (x1 - x) / (1 - t), is linear in x; Euler follows the straight
    # line exactly on any grid (also the shifted one)
    v = lambda x, t: (x1 - x) / (1 - t).view(-1, 1, 1, 1)  # noqa: E731
    for shift in (1.0, 0.3):
        out = EulerODESampler(num_steps=7, shift=shift).sample(v, x0)
        assert torch.allclose(out, x1, atol=1e-5)
    # a constant field: Euler and Heun land on x0 + c
    c = torch.randn_like(x0)
    for sampler in (EulerODESampler(5, 0.3), HeunODESampler(5, 0.3)):
        assert torch.allclose(sampler.sample(lambda x, t: c, x0), x0 + c, atol=1e-5)


def test_heun_is_second_order():
    x0 = torch.zeros(1, 1)
    v = lambda x, t: (3 * t ** 2).view(-1, 1)  # noqa: E731  exact x(1) = 1
    errs = [abs(HeunODESampler(n, 1.0).sample(v, x0).item() - 1) for n in (10, 20)]
    assert errs[1] < errs[0] / 3.5  # error ~ 1/n^2
    e_euler = abs(EulerODESampler(20, 1.0).sample(v, x0).item() - 1)
    assert errs[1] < e_euler / 10
    assert HeunODESampler(8).nfe() == 16 and EulerODESampler(8).nfe() == 8


class _Toy(torch.nn.Module):
    """v = x * w[y] + t, where the null class (index K) has its own weight."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(k + 1))
        self.k = k
        self.calls = []

    def forward(self, x, t, y, force_drop=None):
        self.calls.append(x.shape[0])
        if force_drop is not None:
            y = torch.where(force_drop, torch.full_like(y, self.k), y)
        return x * self.w[y].view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1)


def test_cfg_scale_one_is_the_conditional_model():
    model = _Toy()
    x, t, y = torch.randn(4, 2, 3, 3), torch.rand(4), torch.tensor([0, 1, 2, 1])
    fn = ClassifierFreeGuidance(scale=1.0, interval_start=0.0).velocity_fn(model, y)
    assert torch.equal(fn(x, t), model(x, t, y)) and model.calls[0] == 4  # one conditional pass, no doubled batch
    s = 4.0
    g = ClassifierFreeGuidance(scale=s).velocity_fn(model, y)(x, t)
    v_c, v_u = model(x, t, y), model(x, t, y, force_drop=torch.ones(4, dtype=torch.bool))
    assert torch.allclose(g, v_u + s * (v_c - v_u), atol=1e-5)
    interval = ClassifierFreeGuidance(scale=s, interval_start=0.5).velocity_fn(model, y)
    assert torch.allclose(interval(x, torch.full((4,), 0.2)), model(x, torch.full((4,), 0.2), y))  # no guidance
    assert torch.allclose(interval(x, torch.full((4,), 0.7)), g - t.view(-1, 1, 1, 1) + 0.7, atol=1e-5)


def _flow_model():
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='LatentFlowModel', latent_size=4,
        backbone=dict(type='LightningDiT', arch=None, depth=1, embed_dims=32, num_heads=2, patch_size=1,
                      in_channels=4, num_classes=3),
        sampler=dict(type='EulerODESampler', num_steps=3, shift=0.3)))


def test_flow_model_loss_and_seeded_sampling():
    model = _flow_model()
    data = dict(inputs=[torch.randn(4, 4, 4) for _ in range(2)], data_samples=[dict(label=0), dict(label=2)])
    batch = model.data_preprocessor(data, True)
    losses = model(**batch, mode='loss')
    assert set(losses) == {'loss_mse', 'loss_cos'} and all(v.isfinite() for v in losses.values())
    # the sample of seed s is the same alone or in a batch (distributed evaluation splits batches differently)
    z = model.sample(torch.tensor([0, 1, 2]), seeds=[5, 6, 7])
    z1 = model.sample(torch.tensor([1]), seeds=[6])
    assert z.shape == (3, 4, 4, 4) and torch.allclose(z[1], z1[0], atol=1e-5)
    # predict mode integrates the given noise (ClassBalancedNoiseDataset's seeded noise is initial_noise's)
    from projects.lightningdit.lightningdit.datasets import ClassBalancedNoiseDataset
    ds = ClassBalancedNoiseDataset(num_samples=8, latent_shape=(4, 4, 4), num_classes=3, seed=5)
    items = [ds[0], ds[1]]
    assert [it['data_samples']['label'] for it in items] == [0, 1]
    preds = model(torch.stack([it['inputs'] for it in items]), [it['data_samples'] for it in items], mode='predict')
    assert torch.allclose(preds[0]['pred_latent'], z[0], atol=1e-5) and preds[1]['index'] == 1
    with pytest.raises(ValueError, match='latent_shape'):
        model(torch.zeros(1, 4, 2, 2), [dict(label=0)], mode='predict')
    with pytest.raises(KeyError, match='label'):
        model(torch.zeros(1, 4, 4, 4), [dict()], mode='loss')


@pytest.mark.parametrize('cls,per_step', [(EulerODESampler, 1), (HeunODESampler, 2)])
def test_grid_points_vs_steps(cls, per_step):
    """``num_grid_points=N`` (the reference's ``num_sampling_steps``) is N - 1 steps; ``num_steps=N`` is N steps. The
    model is called ``per_step`` times per step, at the points of the shifted N-point grid (hand formula)."""
    seen = []

    def velocity(x, t):
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    x0 = torch.zeros(2, 1, 2, 2)
    for kw, steps in ((dict(num_grid_points=10), 9), (dict(num_steps=10), 10), (dict(), 250)):
        seen.clear()
        sampler = cls(shift=0.3, **kw)
        sampler.sample(velocity, x0)
        assert len(seen) == per_step * steps == sampler.nfe() and sampler.num_grid_points == steps + 1
    seen.clear()
    cls(num_grid_points=5, shift=0.3).sample(velocity, x0)
    u = [i / 4 for i in range(5)]
    grid = [0.3 * v / (1 + (0.3 - 1) * v) for v in u]  # the reference: linspace(0, 1, 5) then t -> s t / (1 + (s-1) t)
    expected = grid[:-1] if per_step == 1 else [p for a, b in zip(grid[:-1], grid[1:]) for p in (a, b)]
    assert seen == pytest.approx(expected, abs=1e-7)
    from transvae.engine.config_validation import ConfigValueError
    with pytest.raises(ConfigValueError, match='both given'):
        cls(num_steps=249, num_grid_points=250)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ConfigValueError, match='num_grid_points'):
            cls(num_grid_points=bad)


def test_cfg_on_the_first_channels_only():
    """``guided_channels=3`` (the reference's DiT legacy): channels 0-2 guided, channels 3.. = the conditional
    prediction; ``None`` (default) guides every channel; below the interval every channel is conditional."""
    torch.manual_seed(0)
    model = _Toy()
    x, t, y = torch.randn(4, 5, 3, 3), torch.full((4,), 0.6), torch.tensor([0, 1, 2, 1])
    s = 3.0
    v_c, v_u = model(x, t, y), model(x, t, y, force_drop=torch.ones(4, dtype=torch.bool))
    three = ClassifierFreeGuidance(scale=s, interval_start=0.11, guided_channels=3).velocity_fn(model, y)(x, t)
    assert torch.equal(three[:, 3:], v_c[:, 3:])
    assert torch.allclose(three[:, :3], v_u[:, :3] + s * (v_c[:, :3] - v_u[:, :3]), atol=1e-6)
    assert not torch.allclose(three[:, :3], v_c[:, :3])  # the guidance does act on the first three
    every = ClassifierFreeGuidance(scale=s, interval_start=0.11).velocity_fn(model, y)(x, t)
    assert torch.allclose(every, v_u + s * (v_c - v_u), atol=1e-6) and not torch.allclose(every[:, 3:], v_c[:, 3:])
    early = torch.full((4,), 0.05)
    assert torch.equal(ClassifierFreeGuidance(scale=s, interval_start=0.11, guided_channels=3).velocity_fn(
        model, y)(x, early), model(x, early, y))
    from transvae.engine.config_validation import ConfigValueError
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigValueError, match='guided_channels'):
            ClassifierFreeGuidance(scale=s, guided_channels=bad)
