"""Rule out implementation faults behind the Fig. 3(a)/(b) results: RoPE against its defining formula and its
relative-position property (also beyond the training grid), APE interpolation against timm's resampling."""
import math

import pytest
import torch

from transvae.models.layers.position import LearnableAPE, RoPE2D, apply_rope


def _reference_rope(x: torch.Tensor, hw: tuple[int, int], theta: float = 10000.0) -> torch.Tensor:
    """Loop-by-loop 2D axial RoPE (EVA-02, interleaved pairs): pair j < hd/4 rotates by row * theta^(-4j/hd), pair
    hd/4 + j by col * theta^(-4j/hd); (a, b) -> (a cos - b sin, a sin + b cos). ``x``: (N, hd) in float64."""
    h, w = hw
    hd = x.shape[-1]
    out = torch.empty_like(x)
    for n in range(h * w):
        pos = (n // w, n % w)
        for j in range(hd // 2):
            axis, k = (0, j) if j < hd // 4 else (1, j - hd // 4)
            ang = pos[axis] * theta ** (-4.0 * k / hd)
            a, b = x[n, 2 * j], x[n, 2 * j + 1]
            out[n, 2 * j] = a * math.cos(ang) - b * math.sin(ang)
            out[n, 2 * j + 1] = a * math.sin(ang) + b * math.cos(ang)
    return out


@pytest.mark.parametrize('hw', [(4, 4), (3, 7)])
def test_rope_matches_reference_formula(hw):
    hd = 16
    rope = RoPE2D(head_dim=hd)
    x = torch.randn(2, 3, hw[0] * hw[1], hd, generator=torch.Generator().manual_seed(0))
    ours = apply_rope(x, rope.get_embed(hw))
    ref = _reference_rope(x[1, 2].double(), hw)
    torch.testing.assert_close(ours[1, 2].double(), ref, atol=2e-5, rtol=1e-5)
    q, k = rope.qk_transform(hw)(x, x)  # the transform attention applies: the same rotation on q and k
    torch.testing.assert_close(q, ours)
    torch.testing.assert_close(k, ours)


def test_rope_scores_depend_only_on_relative_position_beyond_the_training_grid():
    """q·k of one query / key vector placed at p and p + d is the same for every p, on a 32x32 grid (8x the 4x4
    training grid of a 64² input at f16): what makes RoPE extrapolate, so a failure to would not be the encoding."""
    hd, hw = 32, (32, 32)
    g = torch.Generator().manual_seed(1)
    qv, kv = torch.randn(hd, generator=g), torch.randn(hd, generator=g)
    n = hw[0] * hw[1]
    rope = RoPE2D(head_dim=hd).get_embed(hw)
    q = apply_rope(qv.expand(1, 1, n, hd).contiguous(), rope)[0, 0].double()
    k = apply_rope(kv.expand(1, 1, n, hd).contiguous(), rope)[0, 0].double()

    def score(p, d):
        i, j = p[0] * hw[1] + p[1], (p[0] + d[0]) * hw[1] + p[1] + d[1]
        return float(q[i] @ k[j])

    for d in [(0, 1), (2, -3), (5, 7)]:
        s = [score(p, d) for p in [(0, 3), (3, 3), (10, 12), (20, 20), (24, 8)]]
        assert max(s) - min(s) < 1e-4 * max(1.0, abs(s[0]))
    assert abs(score((0, 3), (0, 1)) - score((0, 3), (5, 7))) > 1e-3  # and it does depend on the offset


def test_ape_interpolation_matches_timm():
    """Bicubic APE resampling equals timm's resample_abs_pos_embed (antialias off: identical kernel, a = -0.75)."""
    from timm.layers import resample_abs_pos_embed
    ape = LearnableAPE(embed_dims=8, grid_size=4)
    with torch.no_grad():
        ape.pos_embed.normal_(generator=torch.Generator().manual_seed(2))
    for hw in [(8, 8), (16, 16), (32, 32), (4, 12)]:
        ours = ape.embed_tokens(torch.zeros(1, hw[0] * hw[1], 8), hw)
        ref = resample_abs_pos_embed(ape.pos_embed.data, new_size=list(hw), old_size=[4, 4], num_prefix_tokens=0,
                                     interpolation='bicubic', antialias=False)
        torch.testing.assert_close(ours, ref, atol=0, rtol=0)
    assert torch.equal(ape.embed_tokens(torch.zeros(1, 16, 8), (4, 4)), ape.pos_embed.data)  # the training grid
