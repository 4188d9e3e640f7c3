"""DiagonalGaussian by value (issue 23): sampling with a seeded generator, the mode, the KL against
``torch.distributions`` with a non-trivial mean / log-variance, the log-variance clamp bounds and what they do to
values and gradients, the NLL against ``Normal.log_prob``."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from transvae.models.distributions import DiagonalGaussian

pytestmark = pytest.mark.usefixtures('one_thread')


def moments(seed: int = 0, b: int = 2, d: int = 3, hw: tuple[int, int] = (3, 5)) -> tuple[torch.Tensor, ...]:
    """Mean ~ N(0.7, 1.3^2), log-variance in [-2.5, 1.5]: neither standard nor symmetric."""
    g = torch.Generator().manual_seed(seed)
    mean = 0.7 + 1.3 * torch.randn(b, d, *hw, generator=g, dtype=torch.float64)
    logvar = -2.5 + 4.0 * torch.rand(b, d, *hw, generator=g, dtype=torch.float64)
    return mean, logvar


def test_mean_comes_first_and_mode_is_the_mean():
    mean, logvar = moments()
    post = DiagonalGaussian(torch.cat([mean, logvar], 1))
    assert torch.equal(post.mode(), mean) and torch.equal(post.mean, mean) and torch.equal(post.logvar, logvar)
    torch.testing.assert_close(post.std, torch.exp(logvar / 2), rtol=1e-12, atol=0)
    torch.testing.assert_close(post.var, torch.exp(logvar), rtol=1e-12, atol=0)


def test_sample_with_a_seeded_generator_is_the_reparameterised_formula():
    mean, logvar = moments(1)
    post = DiagonalGaussian(torch.cat([mean, logvar], 1))
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(42), dtype=torch.float64)
    s = post.sample(generator=torch.Generator().manual_seed(42))
    torch.testing.assert_close(s, mean + torch.exp(0.5 * logvar) * eps, rtol=1e-12, atol=1e-12)
    # the generator is what makes it reproducible; two seeds give different draws
    assert not torch.equal(s, post.sample(generator=torch.Generator().manual_seed(43)))
    # the global RNG path: same seed, same draw
    torch.manual_seed(5)
    a = post.sample()
    torch.manual_seed(5)
    torch.testing.assert_close(a, mean + post.std * torch.randn(mean.shape, dtype=torch.float64))


def test_sample_statistics():
    """Many draws of one latent: empirical mean / std match ``mean`` / ``exp(logvar / 2)`` (std 0.2 vs 3.0)."""
    mean = torch.tensor([-1.5, 2.0]).view(1, 2, 1, 1).expand(4096, 2, 1, 1)
    logvar = torch.log(torch.tensor([0.04, 9.0])).view(1, 2, 1, 1).expand(4096, 2, 1, 1)
    s = DiagonalGaussian(torch.cat([mean, logvar], 1)).sample(torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.mean(0).flatten(), torch.tensor([-1.5, 2.0]), atol=0.15, rtol=0)
    torch.testing.assert_close(s.std(0).flatten(), torch.tensor([0.2, 3.0]), atol=0, rtol=0.05)


def test_kl_matches_torch_distributions():
    """Per item: sum over (d, h, w) of KL(N(mu, sigma^2) || N(0, 1)); not averaged over elements."""
    mean, logvar = moments(2)
    post = DiagonalGaussian(torch.cat([mean, logvar], 1))
    ref = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(dim=(1, 2, 3))
    assert post.kl().shape == (2,)
    torch.testing.assert_close(post.kl(), ref, rtol=1e-10, atol=1e-10)


def test_nll_matches_normal_log_prob():
    mean, logvar = moments(3)
    post = DiagonalGaussian(torch.cat([mean, logvar], 1))
    x = torch.randn(mean.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ref = -Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(post.nll(x), ref, rtol=1e-10, atol=1e-10)


def test_logvar_clamp_bounds_values_and_gradients():
    """Log-variance clamped to [-30, 20] (LDM): values outside use the bound, and give no gradient."""
    mean = torch.zeros(1, 1, 1, 6, dtype=torch.float64)
    raw = torch.tensor([-45.0, -30.5, -29.5, 0.3, 19.5, 21.0], dtype=torch.float64).view(1, 1, 1, 6)
    m = torch.cat([mean, raw], 1).requires_grad_(True)
    post = DiagonalGaussian(m)
    want = raw.clamp(-30.0, 20.0)
    assert torch.equal(post.logvar, want)
    torch.testing.assert_close(post.std, torch.exp(0.5 * want), rtol=1e-12, atol=0)
    ref_kl = kl_divergence(Normal(mean, torch.exp(0.5 * want)), Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(post.kl().sum(), ref_kl, rtol=1e-10, atol=0)
    post.kl().sum().backward()
    inside = (raw > -30) & (raw < 20)
    grad = m.grad[:, 1:]
    assert torch.all(grad[~inside] == 0)
    torch.testing.assert_close(grad[inside], (0.5 * (torch.exp(raw) - 1.0))[inside])  # dKL/dlogvar


def test_kl_gradient_with_respect_to_the_mean():
    mean, logvar = moments(5)
    m = torch.cat([mean, logvar], 1).requires_grad_(True)
    DiagonalGaussian(m).kl().sum().backward()
    torch.testing.assert_close(m.grad[:, :3], mean)  # dKL/dmu = mu


def test_deterministic():
    mean, logvar = moments(6)
    post = DiagonalGaussian(torch.cat([mean, logvar], 1), deterministic=True)
    assert torch.equal(post.sample(torch.Generator().manual_seed(0)), mean) and torch.equal(post.mode(), mean)
    assert torch.equal(post.kl(), torch.zeros(2, dtype=torch.float64))
