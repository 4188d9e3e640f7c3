"""LightningDiT ``transport``: the cases the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md) found
unpinned: the settings messages and ranges (``check_number``, guidance, sampler), the guidance interval at its
boundary and on a batch with different times, the time grid (shift off / on, one step, float64 then float32, its
device), the timestep distributions (std, a generator's device), the cosine term taken over channels on a
non-square map, and ``expand_t``'s dtype."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from projects.lightningdit.lightningdit.transport.guidance import MAX_SCALE, ClassifierFreeGuidance
from projects.lightningdit.lightningdit.transport.loss import VelocityLoss
from projects.lightningdit.lightningdit.transport.ode_samplers import EulerODESampler, HeunODESampler, time_grid
from projects.lightningdit.lightningdit.transport.settings import check_number
from projects.lightningdit.lightningdit.transport.timesteps import LogitNormalTimesteps, UniformTimesteps
from transvae.engine.config_validation import ConfigValueError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ===================================================================================================== settings
def test_check_number_messages_and_ranges():
    assert check_number('k', 3) == 3.0 and isinstance(check_number('k', 3), float)
    assert check_number('k', 0.0, low=0.0) == 0.0 and check_number('k', 1.0, high=1.0) == 1.0
    assert check_number('k', 0.5, low=0.0, low_open=True) == 0.5
    cases = [(dict(value=float('nan')), "k=nan: expected a finite number in [-inf, inf]"),
             (dict(value=True), "k=True: expected a finite number in [-inf, inf]"),
             (dict(value='2'), "k='2': expected a finite number in [-inf, inf]"),
             (dict(value=-0.5, low=0.0, hint=' (why)'), 'k=-0.5: expected a number in [0.0, inf] (why)'),
             (dict(value=2, high=1.5), 'k=2: expected a number in [-inf, 1.5]'),
             (dict(value=0.0, low=0.0, low_open=True), 'k=0.0: expected a number in (0.0, inf]')]
    for kw, msg in cases:
        with pytest.raises(ConfigValueError) as err:
            check_number('k', **kw)
        assert str(err.value) == msg


def test_guidance_defaults_ranges_and_messages():
    g = ClassifierFreeGuidance()
    assert g.scale == 1.0 and g.interval_start == 0.0
    assert ClassifierFreeGuidance(scale=0.0).scale == 0.0 and ClassifierFreeGuidance(scale=MAX_SCALE).scale == MAX_SCALE
    assert ClassifierFreeGuidance(interval_start=1.0).interval_start == 1.0
    cases = [(dict(scale=-0.5), f'model.guidance.scale=-0.5: expected a number in [0.0, {MAX_SCALE}] (1.0 = no '
                                'guidance; LightningDiT uses 6.7-10)'),
             (dict(scale=MAX_SCALE + 1), f'model.guidance.scale={MAX_SCALE + 1}: expected a number in [0.0, '
                                         f'{MAX_SCALE}] (1.0 = no guidance; LightningDiT uses 6.7-10)'),
             (dict(interval_start=-0.25), 'model.guidance.interval_start=-0.25: expected a number in [0.0, 1.0] '
                                          '(guidance only for t >= interval_start)'),
             (dict(interval_start=1.5), 'model.guidance.interval_start=1.5: expected a number in [0.0, 1.0] '
                                        '(guidance only for t >= interval_start)')]
    for kw, msg in cases:
        with pytest.raises(ConfigValueError) as err:
            ClassifierFreeGuidance(**kw)
        assert str(err.value) == msg


def _toy_model(x, t, y, force_drop=None):
    """v = x * (1 + t) + (class term unless dropped): conditional and unconditional differ."""
    cls = torch.where(force_drop, torch.zeros_like(y, dtype=x.dtype), y.to(x.dtype) + 1.0) if force_drop is not None \
        else y.to(x.dtype) + 1.0
    return x * (1 + t.view(-1, 1, 1, 1)) + cls.view(-1, 1, 1, 1)


def test_guidance_interval_is_inclusive_and_read_from_the_first_time():
    """Guided from ``t >= interval_start`` on (t = 0.5 at 0.5 is guided); the batch's first time decides."""
    g = ClassifierFreeGuidance(scale=3.0, interval_start=0.5)
    fn = g.velocity_fn(_toy_model, torch.tensor([2, 5]))
    x = torch.randn(2, 2, 3, 4, generator=gen(0))
    t = torch.tensor([0.5, 0.2])
    v_c = _toy_model(x, t, torch.tensor([2, 5]))
    v_u = _toy_model(x, t, torch.tensor([2, 5]), force_drop=torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(fn(x, t), v_u + 3.0 * (v_c - v_u))
    t = torch.tensor([0.4, 0.9])
    torch.testing.assert_close(fn(x, t), _toy_model(x, t, torch.tensor([2, 5])))  # below the interval: conditional


# ================================================================================================ ODE samplers
def test_sampler_defaults_and_step_count_checks():
    for cls in (EulerODESampler, HeunODESampler):
        s = cls()
        assert s.num_steps == 250 and s.shift == 0.3
        assert cls(num_steps=1).num_steps == 1
        for bad in (0, True, 2.0):
            with pytest.raises(ConfigValueError) as err:
                cls(num_steps=bad)
            assert str(err.value) == f'model.sampler.num_steps={bad!r}: expected an integer >= 1'
        with pytest.raises(ConfigValueError) as err:
            cls(shift=float('inf'))
        assert str(err.value) == ('model.sampler.shift=inf: expected a finite number in [-inf, inf] (< 1: more steps '
                                  'near the noise; <= 0 or 1: uniform grid)')


def test_time_grid_shift_rules_and_precision():
    """Uniform for shift 1 (the default), 0 and -1; ``s t / (1 + (s - 1) t)`` computed in float64, then float32."""
    uniform = torch.linspace(0, 1, 8, dtype=torch.float64).float()
    for shift in (1.0, 0.0, -1.0):
        assert torch.equal(time_grid(7, shift), uniform)
    assert torch.equal(time_grid(7), uniform)
    for shift in (2.0, 0.3):
        t = torch.linspace(0, 1, 8, dtype=torch.float64)
        assert torch.equal(time_grid(7, shift), (shift * t / (1 + (shift - 1) * t)).float())
    t = torch.linspace(0, 1, 12, dtype=torch.float64)
    assert torch.equal(time_grid(11, 0.3), (0.3 * t / (1 + (0.3 - 1) * t)).float())
    assert torch.equal(time_grid(1, 0.3), torch.tensor([0.0, 1.0]))
    assert time_grid(3, 0.3, device='meta').device.type == 'meta'
    with pytest.raises(ValueError, match=r'^num_steps must be >= 1, got 0$'):
        time_grid(0)


# ============================================================================================ time distributions
def test_timestep_distributions():
    with pytest.raises(ValueError, match=r'^std must be > 0, got 0$'):
        LogitNormalTimesteps(std=0)
    ln = LogitNormalTimesteps(mean=0.4, std=0.7)
    t = ln.sample(5, generator=gen(1))
    torch.testing.assert_close(t, torch.sigmoid(torch.randn(5, generator=gen(1)) * 0.7 + 0.4))
    u = UniformTimesteps().sample(6, generator=gen(2))
    assert torch.equal(u, torch.rand(6, generator=gen(2))) and u.dtype == torch.float32
    # a CPU generator draws on the CPU (its device), the result then moves to the requested device
    assert ln.sample(3, device='meta', generator=gen(3)).device.type == 'meta'
    assert UniformTimesteps().sample(3, device='meta', generator=gen(3)).device.type == 'meta'
    assert UniformTimesteps().sample(4).shape == (4,)


# ================================================================================================== loss, expand
def test_velocity_loss_cosine_over_channels_on_a_non_square_map():
    loss = VelocityLoss(cos_weight=0.7)
    pred = torch.randn(2, 3, 4, 5, generator=gen(4), dtype=torch.float64)
    target = torch.randn(2, 3, 4, 5, generator=gen(5), dtype=torch.float64)
    out = loss(pred, target)
    close = dict(check_dtype=False, rtol=1e-6, atol=1e-7)  # the loss is computed in float32
    torch.testing.assert_close(out['loss_mse'], ((pred - target) ** 2).mean(), **close)
    cos = (pred * target).sum(1) / (pred.norm(dim=1) * target.norm(dim=1))  # over channels, per position
    torch.testing.assert_close(out['loss_cos'], 0.7 * (1 - cos).mean(), **close)
    torch.testing.assert_close(out['loss_cos'], 0.7 * (1 - F.cosine_similarity(pred, target, dim=1)).mean(), **close)
    assert math.isclose(float(VelocityLoss()(pred, pred)['loss_cos']), 0.0, abs_tol=1e-6)


def test_expand_t_casts_to_the_sample_dtype():
    from projects.lightningdit.lightningdit.transport.path import expand_t
    x = torch.zeros(2, 3, 4, 5, dtype=torch.bfloat16)
    e = expand_t(torch.tensor([0.25, 0.5]), x)
    assert e.shape == (2, 1, 1, 1) and e.dtype == torch.bfloat16


# ======================================================================================== models: embeddings, adaLN
@pytest.mark.parametrize('freq_dims,max_period', [(8, 10000.0), (7, 50.0)])
def test_timestep_sinusoid_by_hand(freq_dims, max_period):
    """DiT's ``timestep_embedding``: ``w_k = max_period ** (-k / half)``, ``[cos(t w), sin(t w)]``, an odd width
    zero-padded at the end; times off the unit interval too."""
    from projects.lightningdit.lightningdit.models.embeddings import TimestepEmbedder
    m = TimestepEmbedder(embed_dims=6, freq_dims=freq_dims, max_period=max_period)
    t = torch.tensor([0.0, 0.3, 0.9, 17.5], dtype=torch.float64)
    half = freq_dims // 2
    w = torch.tensor([max_period ** (-k / half) for k in range(half)], dtype=torch.float64)
    want = torch.cat([torch.cos(t[:, None] * w), torch.sin(t[:, None] * w)], dim=1)
    if freq_dims % 2:
        want = torch.cat([want, torch.zeros(4, 1, dtype=torch.float64)], dim=1)
    got = m.sinusoidal(t)
    assert got.dtype == torch.float32 and got.shape == (4, freq_dims)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=2e-6)
    assert TimestepEmbedder(6).freq_dims == 256 and TimestepEmbedder(6).max_period == 10000.0
    assert m.double()(t).dtype == torch.float64  # the features follow the MLP's dtype
    assert m.to('meta').sinusoidal(t.to('meta')).device.type == 'meta'


def test_modulate_by_hand():
    from projects.lightningdit.lightningdit.models.dit_block import modulate
    x = torch.randn(2, 5, 3, generator=gen(6))
    shift, scale = torch.randn(2, 3, generator=gen(7)), torch.randn(2, 3, generator=gen(8))
    want = torch.stack([x[b] * (1 + scale[b]) + shift[b] for b in range(2)])
    torch.testing.assert_close(modulate(x, shift, scale), want)


def test_label_embedder_null_class_and_messages():
    from projects.lightningdit.lightningdit.models.embeddings import LabelEmbedder
    e = LabelEmbedder(num_classes=4, embed_dims=3, dropout_prob=0.25)
    labels = torch.tensor([0, 4, 2])  # 4 = the null class, a valid label
    torch.testing.assert_close(e(labels, train=False), e.table.weight[labels])
    force = torch.tensor([1, 0, 1])  # any integer mask, as booleans
    torch.testing.assert_close(e(labels, train=False, force_drop=force), e.table.weight[torch.tensor([4, 4, 4])])
    plain = LabelEmbedder(num_classes=4, embed_dims=3, dropout_prob=0.0)
    torch.testing.assert_close(plain(torch.tensor([3, 1]), train=True), plain.table.weight[torch.tensor([3, 1])])
    with pytest.raises(ValueError, match=r'^the null class needs dropout_prob > 0 \(the table has no null row\)$'):
        plain(torch.tensor([4]), train=False)
    with pytest.raises(ValueError, match=r'^class labels must be in \[0, 4\] \(4 = null class\), got range \[0, 5\]$'):
        e(torch.tensor([0, 5]), train=False)


def test_dit_block_wiring_with_open_gates():
    """``x + g1 attn(modulate(norm1 x, s1, c1)) -> + g2 ffn(modulate(norm2 x, s2, c2))`` with non-zero adaLN weights
    (zero-initialised gates hide every wiring mistake), RoPE on Q / K and a spatial FFN (it needs ``hw``), composed
    by hand from the block's own parts; the chunk order is (s1, c1, g1, s2, c2, g2)."""
    from projects.lightningdit.lightningdit.models.dit_block import LightningDiTBlock
    from transvae.models.layers.position import RoPE2D
    torch.manual_seed(0)
    blk = LightningDiTBlock(8, 4, dict(type='RMSNorm'), dict(type='MultiHeadSelfAttention'), dict(type='FullConvFFN'))
    with torch.no_grad():
        for p in blk.adaLN_modulation.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen(9)))
    x, c = torch.randn(2, 6, 8, generator=gen(10)), torch.randn(2, 8, generator=gen(11))
    hw, qk = (2, 3), RoPE2D(4).qk_transform((2, 3))
    s1, c1, g1, s2, c2, g2 = F.linear(F.silu(c), blk.adaLN_modulation[1].weight, blk.adaLN_modulation[1].bias) \
        .chunk(6, dim=1)
    h = x + g1[:, None] * blk.attn(blk.norm1(x) * (1 + c1[:, None]) + s1[:, None], hw, qk)
    want = h + g2[:, None] * blk.ffn(blk.norm2(h) * (1 + c2[:, None]) + s2[:, None], hw)
    torch.testing.assert_close(blk(x, c, hw, qk), want)


# ============================================================== round 2 (mutation run of ba452f6): new settings
def test_guided_channels_boundary_value_and_messages():
    """``guided_channels=1`` is allowed (only channel 0 guided, the rest conditional); 0, bools, floats and strings
    are refused with the full message."""
    g = ClassifierFreeGuidance(scale=2.5, guided_channels=1)
    assert g.guided_channels == 1 and ClassifierFreeGuidance().guided_channels is None
    y = torch.tensor([1, 4])
    x = torch.randn(2, 3, 2, 5, generator=gen(1))
    t = torch.tensor([0.7, 0.3])
    v_c = _toy_model(x, t, y)
    v_u = _toy_model(x, t, y, force_drop=torch.ones(2, dtype=torch.bool))
    want = torch.cat([v_u[:, :1] + 2.5 * (v_c[:, :1] - v_u[:, :1]), v_c[:, 1:]], dim=1)
    torch.testing.assert_close(g.velocity_fn(_toy_model, y)(x, t), want)
    for bad in (0, -2, True, 2.0, '3'):
        with pytest.raises(ConfigValueError) as err:
            ClassifierFreeGuidance(guided_channels=bad)
        assert str(err.value) == (f'model.guidance.guided_channels={bad!r}: expected None (every channel) or an '
                                  "integer >= 1 (3 = the reference's CFG on the first 3 channels)")


def test_num_grid_points_boundary_and_messages():
    """``num_grid_points=2`` is one step (the grid 0, 1); below 2, bools and floats are refused; both counts given
    is refused, each message in full."""
    for cls in (EulerODESampler, HeunODESampler):
        s = cls(num_grid_points=2)
        assert (s.num_steps, s.num_grid_points) == (1, 2) and cls(num_grid_points=3).num_steps == 2
        for bad in (1, 0, True, 2.0):
            with pytest.raises(ConfigValueError) as err:
                cls(num_grid_points=bad)
            assert str(err.value) == (f'model.sampler.num_grid_points={bad!r}: expected an integer >= 2 (time-grid '
                                      'points including t = 0 and t = 1)')
        with pytest.raises(ConfigValueError) as err:
            cls(num_steps=4, num_grid_points=5)
        assert str(err.value) == ('model.sampler: num_steps=4 and num_grid_points=5 both given; set one (num_steps = '
                                  'integration steps; num_grid_points = time-grid points = steps + 1, the reference\'s '
                                  'num_sampling_steps)')
