"""DiagonalGaussian: the cases the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md) found unpinned:
which shapes are refused and what the message says, the variance of a deterministic posterior (the clamp's lower
bound, pinned against ``Normal.log_prob``), and a sample that stays on the moments' device (``meta`` stands in for
an accelerator)."""
from __future__ import annotations

import math
import re

import pytest
import torch
from torch.distributions import Normal

from transvae.models.distributions import DiagonalGaussian

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('shape', [(2, 5, 3, 4), (2, 6, 3), (6, 3, 4, 2, 1)])
def test_refuses_an_odd_channel_count_or_a_rank_other_than_four(shape):
    # (2, 5, 3, 4): rank 4, odd channels; (2, 6, 3): even channels, rank 3 -- each condition on its own is an error
    with pytest.raises(ValueError, match=r'^moments must be \(B, 2d, h, w\), got ' + re.escape(str(shape)) + '$'):
        DiagonalGaussian(torch.zeros(shape))


def test_deterministic_posterior_has_the_lower_clamp_variance():
    g = torch.Generator().manual_seed(3)
    mean = 0.4 + torch.randn(2, 3, 2, 5, generator=g, dtype=torch.float64)
    logvar = torch.rand(2, 3, 2, 5, generator=g, dtype=torch.float64)  # ignored when deterministic
    post = DiagonalGaussian(torch.cat([mean, logvar], 1), deterministic=True)
    torch.testing.assert_close(post.logvar, torch.full_like(mean, -30.0), rtol=0, atol=0)
    torch.testing.assert_close(post.std, torch.full_like(mean, math.exp(-15.0)), rtol=1e-12, atol=0)
    torch.testing.assert_close(post.var, torch.full_like(mean, math.exp(-30.0)), rtol=1e-12, atol=0)
    x = mean + 1e-7 * torch.randn(mean.shape, generator=g, dtype=torch.float64)
    ref = -Normal(mean, math.exp(-15.0)).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(post.nll(x), ref, rtol=1e-10, atol=1e-8)


def test_sample_is_drawn_on_the_moments_device():
    post = DiagonalGaussian(torch.empty(2, 4, 3, 5, device='meta'))
    s = post.sample()
    assert s.device.type == 'meta' and s.shape == (2, 2, 3, 5)
