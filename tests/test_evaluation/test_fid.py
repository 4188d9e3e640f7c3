"""FID: the offline Inception network, the torchmetrics path and the independent float64 Fréchet distance."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

init_default_scope('transvae')

from transvae.evaluation.functional import fid as FF  # noqa: E402

skimage_data = pytest.importorskip('skimage.data')

N_CROPS = 32  # Inception at 299x299 costs ~0.15 s of 2-core CPU per image (more on a loaded machine)
N_NOISY = 16  # noisy copies of the first N_NOISY crops, at each of the NOISE levels
NOISE = (0.03, 0.08, 0.2)


def _real_crops(n: int = N_CROPS, size: int = 64) -> torch.Tensor:
    """(n, 3, size, size) float crops in [0, 1], spread over five bundled photos (fixed seed)."""
    photos = [
        skimage_data.astronaut(),
        skimage_data.chelsea(),
        skimage_data.coffee(),
        skimage_data.rocket(),
        skimage_data.hubble_deep_field()
    ]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n):
        img = photos[i % len(photos)]
        top, left = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        crops.append(torch.from_numpy(np.ascontiguousarray(img[top:top + size, left:left + size, :3])))
    return torch.stack(crops).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope='module')
def inception():
    return FF.get_fid_inception('cpu')


@pytest.fixture(scope='module')
def feats(inception):
    """Features of the clean crops and of noisy copies of the first N_NOISY crops at three noise levels."""
    gt = _real_crops()
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(gt[:N_NOISY].shape, generator=g)
    out = {'gt': gt, 'real': inception(gt)}
    for s in NOISE:
        out[s] = inception((gt[:N_NOISY] + s * noise).clamp(0, 1))
    return out


def _exact_lowrank_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Closed form for N < D: tr sqrt(S1 S2) = nuclear norm of C1 C2^T / sqrt((n1-1)(n2-1))."""
    r, f = real.astype(np.float64), fake.astype(np.float64)
    c1, c2 = r - r.mean(0), f - f.mean(0)
    n1, n2 = len(r), len(f)
    nuc = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    d = r.mean(0) - f.mean(0)
    return float(d @ d + (c1**2).sum() / (n1 - 1) + (c2**2).sum() / (n2 - 1) - 2 * nuc)


# --------------------------------------------------------------------------------------------- synthetic features
@pytest.mark.parametrize('n, d', [(300, 64), (40, 256)])
def test_torchmetrics_matches_float64_reference(n, d):
    rng = np.random.default_rng(n + d)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    real = np.abs(rng.normal(size=(n, d)) @ mix)
    fake = np.abs(rng.normal(size=(n, d)) @ mix + 0.3)
    mu1, s1 = FF.feature_statistics(real)
    mu2, s2 = FF.feature_statistics(fake)
    ref = FF.frechet_distance(mu1, s1, mu2, s2)
    assert FF.fid_from_features(real, fake) == pytest.approx(ref, rel=1e-3)
    assert FF.fid_from_features(real, fake, exact_subspace=False) == pytest.approx(ref, rel=1e-3)
    assert abs(FF.fid_from_features(real, real)) < 1e-6
    assert abs(FF.frechet_distance(mu1, s1, mu1, s1)) < 1e-4


def test_subspace_projection_is_exact():
    rng = np.random.default_rng(1)
    real = torch.from_numpy(np.abs(rng.normal(size=(30, 512))))
    fake = torch.from_numpy(np.abs(rng.normal(size=(25, 512)) + 0.1))
    pr, pf = FF.project_to_common_subspace(real, fake)
    assert pr.shape == (30, 55) and pf.shape == (25, 55)
    # inner products, hence means, traces and spectra, are preserved
    assert torch.allclose(pr @ pf.t(), real @ fake.t(), atol=1e-9)
    exact = _exact_lowrank_fid(real.numpy(), fake.numpy())
    assert FF.fid_from_features(real, fake) == pytest.approx(exact, rel=1e-7)


def test_frechet_distance_known_value():
    # 1-D: (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2) = (sqrt(s1) - sqrt(s2))^2 + (mu1 - mu2)^2
    assert FF.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == \
        pytest.approx(4.0 + 1.0)
    with pytest.raises(ValueError, match='shape'):
        FF.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match='at least 2'):
        FF.fid_from_features(np.zeros((1, 4)), np.zeros((3, 4)))


# --------------------------------------------------------------------------------------------- real images
def test_inception_network_and_preprocessing(inception):
    assert inception.num_features == 2048 and not inception.training
    x = torch.rand(2, 3, 40, 48)
    pre = FF.FIDInceptionV3.preprocess(x)
    assert pre.shape == (2, 3, 299, 299)
    assert pre.min() >= -1 and pre.max() <= 127 / 128
    u8 = torch.round(x * 255).to(torch.uint8)
    assert torch.equal(FF.FIDInceptionV3.preprocess(u8), pre)  # float input is uint8-quantised first
    assert FF.get_fid_inception('cpu') is inception  # cached per process
    assert '299' in FF.FID_PROTOCOL and 'antialias' in FF.FID_PROTOCOL


def test_features_deterministic_and_self_fid_zero(inception, feats):
    real = feats['real']
    assert real.shape == (N_CROPS, 2048) and torch.isfinite(real).all()
    again = torch.cat([inception(feats['gt'][:2]), inception(feats['gt'][2:5])])  # other batch split
    assert (again - real[:5]).abs().max().item() < 1e-3 * real.abs().max().item()
    assert abs(FF.fid_from_features(real, real)) < 1e-3
    again_all = torch.cat([again, real[5:]])
    assert abs(FF.fid_from_features(real, again_all)) < 1e-3


def test_fid_monotone_in_noise(feats):
    values = [FF.fid_from_features(feats['real'][:N_NOISY], feats[s]) for s in NOISE]
    assert 0 < values[0] < values[1] < values[2], values


def test_real_features_torchmetrics_vs_float64(feats):
    real, fake = feats['real'][:N_NOISY].double(), feats[NOISE[1]].double()
    tm = FF.fid_from_features(real, fake)
    # the float64 scipy reference on the same features, expressed in the (exact) common subspace
    pr, pf = FF.project_to_common_subspace(real, fake)
    mu1, s1 = FF.feature_statistics(pr)
    mu2, s2 = FF.feature_statistics(pf)
    assert tm == pytest.approx(FF.frechet_distance(mu1, s1, mu2, s2), rel=1e-3)
    assert tm == pytest.approx(_exact_lowrank_fid(real.numpy(), fake.numpy()), rel=1e-6)


@pytest.mark.slow
def test_real_features_full_dimension(feats):
    """Full 2048-d torchmetrics / scipy paths (20-40 s each on 2 CPU cores). With N = 16 << 2048 both are biased
    up by ~1e-3 relative by the square roots of ~2000 numerically-zero eigenvalues; the subspace path is exact."""
    real, fake = feats['real'][:N_NOISY].double(), feats[NOISE[1]].double()
    exact = FF.fid_from_features(real, fake)
    mu1, s1 = FF.feature_statistics(real)
    mu2, s2 = FF.feature_statistics(fake)
    assert FF.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(exact, rel=5e-3)
    assert FF.fid_from_features(real, fake, exact_subspace=False) == pytest.approx(exact, rel=5e-3)
