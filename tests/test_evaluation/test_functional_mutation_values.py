"""``transvae/evaluation/functional``: the cases the mutation run (tools/analysis_tools/mutation.sh, docs/TESTING.md)
found unpinned. SSIM against torchmetrics 1.9 (the definition ``ssim`` states) with tight tolerances: dark images
(where the constant ``C1 = (0.01 * 255)^2`` dominates), a non-default sigma and window, a non-default ``data_range``,
a non-square image exactly one window high, and the defaults of ``gaussian_kernel1d``. The FID statistics reader's
every refusal, FID preprocessing against torch's functionals, ``fid_from_features``' inputs (per-image lists, bf16
features) and its local compute under a process group. The two process-wide caches (the FID Inception network,
the LPIPS network of the metric) built from empty: the network each holds (the shipped weights, eval mode), its
device and its key."""
from __future__ import annotations

import pytest
import torch

from transvae.evaluation import functional as TF
from transvae.evaluation.functional.image_quality import gaussian_kernel1d


def _tm(p8: torch.Tensor, g8: torch.Tensor, **kw) -> list[float]:
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    return [tm_ssim(p8[i:i + 1].float(), g8[i:i + 1].float(), data_range=255.0, **kw).item()
            for i in range(p8.shape[0])]


def test_ssim_on_dark_images_matches_torchmetrics():
    """Pixel values 0..6 of 255: the means are tiny, so the C1 term decides the value."""
    g = torch.Generator().manual_seed(0)
    p8 = torch.randint(0, 7, (2, 3, 12, 17), generator=g).double()
    g8 = torch.randint(0, 7, (2, 3, 12, 17), generator=g).double()
    ours = TF.ssim(p8 / 255, g8 / 255)
    for o, t in zip(ours.tolist(), _tm(p8, g8)):
        assert o == pytest.approx(t, abs=2e-6)


def test_ssim_window_sigma_and_data_range_are_used():
    """Sigma 1.0 with its 9-wide window (torchmetrics sizes a Gaussian window ``2 int(3.5 sigma + 0.5) + 1``),
    inputs in [0, 2] (data_range 2), on an 11 x 15 image (exactly one default window high, the smallest allowed)."""
    g = torch.Generator().manual_seed(1)
    p8 = torch.randint(0, 256, (2, 3, 11, 15), generator=g).double()
    g8 = (p8 + torch.randint(-40, 41, (2, 3, 11, 15), generator=g)).clamp(0, 255)
    ours = TF.ssim(p8 / 255 * 2, g8 / 255 * 2, data_range=2.0, win_size=9, sigma=1.0)
    for o, t in zip(ours.tolist(), _tm(p8, g8, sigma=1.0)):
        assert o == pytest.approx(t, abs=2e-6)
    ours = TF.ssim(p8 / 255, g8 / 255)  # the default window fits an 11-pixel side
    for o, t in zip(ours.tolist(), _tm(p8, g8)):
        assert o == pytest.approx(t, abs=2e-6)
    with pytest.raises(ValueError, match=r'^ssim: images must be at least 11x11, got \(10, 15\)$'):
        TF.ssim(p8[..., :10, :] / 255, g8[..., :10, :] / 255)
    with pytest.raises(ValueError, match=r'^ssim: win_size must be odd, got 8$'):
        TF.ssim(p8 / 255, g8 / 255, win_size=8)


def test_gaussian_kernel_defaults():
    k = gaussian_kernel1d()
    coords = torch.arange(11, dtype=torch.float64) - 5
    want = torch.exp(-(coords / 1.5) ** 2 / 2)
    torch.testing.assert_close(k, want / want.sum(), rtol=1e-12, atol=0)


# ============================================================================ FID reference statistics (.npz reader)
def _npy(a) -> bytes:
    import io

    import numpy as np
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def _zip(path, members: dict, compression=None) -> str:
    import zipfile
    with zipfile.ZipFile(path, 'w', compression or zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


def test_load_fid_statistics_values_and_every_message(tmp_path):
    """Each refusal's exact message (they name the file and the fix), the values read (float64, other keys ignored),
    ``dim=None``, format 2.0 headers, and the size check against a header that claims more than the file holds."""
    import zipfile

    import numpy as np

    from transvae.evaluation.functional.fid import (FIDStatisticsError, FIDStatisticsKeyError, InputNotFoundError,
                                                    load_fid_statistics)
    fix = 'expected an .npz written by np.savez(path, mu=mu, sigma=sigma) (an ADM reference batch works)'
    mu, sigma = np.arange(3.0, dtype=np.float32) - 0.5, np.diag([1.0, 2.0, 3.0]) + 0.25
    good = str(tmp_path / 'good.npz')
    np.savez(good, arr_0=np.zeros((2, 2), np.uint8), sigma=sigma, mu=mu)
    m, s = load_fid_statistics(good, dim=3)
    assert m.dtype == np.float64 and s.dtype == np.float64
    assert np.array_equal(m, mu.astype(np.float64)) and np.array_equal(s, sigma)
    m, s = load_fid_statistics(tmp_path / 'good.npz', dim=None)  # a Path works; None: any D
    assert m.shape == (3,) and s.shape == (3, 3)
    # the npy format 2.0 header is read too
    import io
    v2 = io.BytesIO()
    np.lib.format.write_array(v2, sigma, version=(2, 0))
    v2p = _zip(tmp_path / 'v2.npz', {'mu.npy': _npy(mu.astype(np.float64)), 'sigma.npy': v2.getvalue()})
    assert np.array_equal(load_fid_statistics(v2p, dim=3)[1], sigma)
    v3 = io.BytesIO()
    np.lib.format.write_array(v3, sigma, version=(3, 0))
    v3p = _zip(tmp_path / 'v3.npz', {'mu.npy': _npy(mu), 'sigma.npy': v3.getvalue()})
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(v3p, dim=3)
    assert str(err.value) == f'FID reference statistics {v3p}: sigma is not a readable array (unsupported .npy ' \
                             'format version (3, 0))'

    missing = str(tmp_path / 'none.npz')
    with pytest.raises(InputNotFoundError) as err:
        load_fid_statistics(missing)
    assert str(err.value) == f'FID reference statistics {missing} not found'
    npy = str(tmp_path / 'single.npz')
    with open(npy, 'wb') as f:
        np.save(f, mu)
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(npy)
    assert str(err.value) == f'FID reference statistics {npy} is a single .npy array, not an .npz: {fix}'
    junk = tmp_path / 'junk.npz'
    junk.write_bytes(b'\x93NUMP' + b'x' * 40)  # one byte short of the .npy magic: a zip error, not the .npy message
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(str(junk))
    assert str(err.value) == (f'FID reference statistics {junk} is not a readable .npz (45 bytes: File is not a zip '
                              f'file; truncated or another format): {fix}')
    nokey = str(tmp_path / 'nokey.npz')
    np.savez(nokey, mu=mu, other=mu)
    with pytest.raises(FIDStatisticsKeyError) as err:
        load_fid_statistics(nokey, dim=3)
    assert str(err.value) == f"FID reference statistics {nokey} has no ['sigma'] (keys: ['mu', 'other']): {fix}"
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    assert str(FIDStatisticsKeyError()) == ''
    nothing = _zip(tmp_path / 'nothing.npz', {'readme.txt': b'x', 'mu.txt': b'1'})
    with pytest.raises(FIDStatisticsKeyError) as err:
        load_fid_statistics(nothing)
    assert str(err.value) == f"FID reference statistics {nothing} has no ['mu', 'sigma'] (keys: []): {fix}"
    hdr = _zip(tmp_path / 'hdr.npz', {'mu.npy': b'not an array', 'sigma.npy': _npy(sigma)})
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(hdr, dim=3)
    assert str(err.value).startswith(f'FID reference statistics {hdr}: mu is not a readable array (')
    for key, arrays, tail in [
            ('dtype', dict(mu=mu.astype(np.int32), sigma=sigma), 'mu has dtype int32, expected a float array'),
            ('cdtype', dict(mu=mu, sigma=sigma.astype(np.complex128)),
             'sigma has dtype complex128, expected a float array'),
            ('dim', dict(mu=mu, sigma=sigma), 'mu has shape (3,), expected (4,) (the features are 4-d)'),
            ('sig', dict(mu=mu, sigma=np.eye(2)), 'sigma has shape (2, 2), expected (3, 3) (the features are 3-d)'),
            ('rank', dict(mu=mu, sigma=np.ones(3)), 'sigma has shape (3,), expected (3, 3) (the features are 3-d)'),
            ('mu2d', dict(mu=sigma, sigma=sigma), 'mu has shape (3, 3), expected (3,) (the features are 3-d)'),
            ('nan', dict(mu=mu, sigma=sigma * np.nan), 'sigma holds NaN / Inf'),
            ('inf', dict(mu=mu * np.inf, sigma=sigma), 'mu holds NaN / Inf')]:
        p = str(tmp_path / f'{key}.npz')
        np.savez(p, **arrays)
        with pytest.raises(FIDStatisticsError) as err:
            load_fid_statistics(p, dim=4 if key == 'dim' else 3)
        assert str(err.value) == f'FID reference statistics {p}: {tail}', key
    # dim=None: D is mu's length; a scalar mu is refused as shape () vs (-1,)... i.e. never accepted
    p = str(tmp_path / 'scalar.npz')
    np.savez(p, mu=np.float64(1.0), sigma=np.eye(1))
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(p, dim=None)
    assert str(err.value) == f'FID reference statistics {p}: mu has shape (), expected (-1,)'
    p = str(tmp_path / 'any.npz')
    np.savez(p, mu=np.zeros(5), sigma=np.eye(4))
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(p, dim=None)
    assert str(err.value) == f'FID reference statistics {p}: sigma has shape (4, 4), expected (5, 5)'
    # a header claiming more bytes than stored (uncompressed member): refused before reading
    h = io.BytesIO()
    np.lib.format.write_array_header_1_0(h, dict(descr='<f8', fortran_order=False, shape=(20, 20)))
    short = h.getvalue() + b'\0' * 64  # 64 of the 3200 data bytes
    lie = _zip(tmp_path / 'lie.npz', {'mu.npy': _npy(np.zeros(20)), 'sigma.npy': short})
    info = zipfile.ZipFile(lie).getinfo('sigma.npy')
    assert info.file_size < 3200 and info.compress_size == info.file_size
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(lie, dim=20)
    assert str(err.value) == (f'FID reference statistics {lie}: sigma claims 3200 bytes, the file holds '
                              f'{info.compress_size} for it (truncated or malformed)')
    # a member exactly as large as the claimed data (the 128-byte header leaves it 128 bytes short): the size check
    # lets it through (it only refuses a claim beyond the member's size) and the read names the short data
    h20 = io.BytesIO()
    np.lib.format.write_array_header_1_0(h20, dict(descr='<f8', fortran_order=False, shape=(20,)))
    assert len(h20.getvalue()) == 128
    same = _zip(tmp_path / 'same.npz', {'mu.npy': h20.getvalue() + b'\0' * 32, 'sigma.npy': _npy(np.eye(20))})
    assert zipfile.ZipFile(same).getinfo('mu.npy').file_size == 160
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(same, dim=20)
    assert str(err.value).startswith(f'FID reference statistics {same}: mu cannot be read (ValueError: ')
    # a deflated member whose directory entry claims a size far beyond any real deflate ratio (a zip bomb's lie)
    import struct
    hz = io.BytesIO()
    np.lib.format.write_array_header_1_0(hz, dict(descr='<f8', fortran_order=False, shape=(200, 200)))
    bomb = str(tmp_path / 'bomb.npz')
    _zip(bomb, {'mu.npy': _npy(np.zeros(200)), 'sigma.npy': hz.getvalue() + b'\0' * 64},
         compression=zipfile.ZIP_DEFLATED)
    raw = bytearray(open(bomb, 'rb').read())
    entry = raw.find(b'PK\x01\x02', raw.find(b'PK\x01\x02') + 4)  # the central directory entry of sigma.npy
    raw[entry + 24:entry + 28] = struct.pack('<I', 320128)  # its uncompressed size: header + 200 x 200 float64
    open(bomb, 'wb').write(bytes(raw))
    zi = zipfile.ZipFile(bomb).getinfo('sigma.npy')
    assert zi.file_size == 320128 and zi.compress_size * 1100 < 320000
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(bomb, dim=200)
    assert str(err.value) == (f'FID reference statistics {bomb}: sigma claims 320000 bytes, the file holds '
                              f'{zi.compress_size} for it (truncated or malformed)')
    # a CRC error in the data (past zipfile's first read block, so the header reads and the data read fails)
    big = str(tmp_path / 'big.npz')
    np.savez(big, mu=np.ones(1000), sigma=np.eye(1000)[:1000, :1000])
    data = bytearray(open(big, 'rb').read())
    at = data.find(b'PK\x03\x04', 4) - 1  # the last data byte of the first member (mu.npy)
    assert data[at] == np.float64(1.0).tobytes()[-1]
    data[at] ^= 0x01
    crc = tmp_path / 'crc.npz'
    crc.write_bytes(bytes(data))
    with pytest.raises(FIDStatisticsError) as err:
        load_fid_statistics(str(crc), dim=1000)
    assert str(err.value) == (f"FID reference statistics {crc}: mu cannot be read (BadZipFile: Bad CRC-32 for file "
                              "'mu.npy'; truncated?)")


# ============================================================================ FID preprocessing / feature plumbing
def test_fid_preprocess_by_hand_non_square():
    """uint8 / float inputs (float quantised to uint8, out-of-range values clamped), resize to 299 x 299 with
    antialiased bilinear, no resize at 299 x 299, then ``(x - 128) / 128``; against torch's functionals."""
    import torch.nn.functional as F

    from transvae.evaluation.functional.fid import FIDInceptionV3
    g = torch.Generator().manual_seed(0)
    f = torch.rand(2, 3, 40, 70, generator=g) * 1.4 - 0.2  # values below 0 and above 1
    q = torch.round(f * 255).clamp(0, 255)
    assert q.min() == 0 and q.max() == 255
    want = (F.interpolate(q, size=(299, 299), mode='bilinear', align_corners=False, antialias=True) - 128) / 128
    got = FIDInceptionV3.preprocess(f)
    assert got.shape == (2, 3, 299, 299) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    u8 = q.to(torch.uint8)
    torch.testing.assert_close(FIDInceptionV3.preprocess(u8), want, atol=1e-6, rtol=0)
    # already 299 x 299: no resampling at all (an antialiased resize to the same size would still be exact, but a
    # 299 x 300 one is not skipped)
    full = torch.randint(0, 256, (1, 3, 299, 299), generator=g, dtype=torch.uint8)
    torch.testing.assert_close(FIDInceptionV3.preprocess(full), (full.float() - 128) / 128)
    wide = torch.randint(0, 256, (1, 3, 299, 300), generator=g, dtype=torch.uint8)
    torch.testing.assert_close(FIDInceptionV3.preprocess(wide), (F.interpolate(
        wide.float(), size=(299, 299), mode='bilinear', align_corners=False, antialias=True) - 128) / 128)
    for bad in (torch.zeros(3, 8, 8), torch.zeros(1, 4, 8, 8), torch.zeros(1, 1, 8, 8)):
        with pytest.raises(ValueError) as err:
            FIDInceptionV3.preprocess(bad)
        assert str(err.value) == f'FID features need (B, 3, H, W) images, got {tuple(bad.shape)}'


def test_feature_pass_through_and_common_subspace_boundary():
    from transvae.evaluation.functional.fid import FeaturePassThrough, project_to_common_subspace
    m = FeaturePassThrough(5)
    assert m.num_features == 5 and FeaturePassThrough().num_features == 2048
    x = torch.randn(3, 5)
    assert m(x) is x
    for bad in (torch.zeros(3, 4), torch.zeros(3, 5, 1), torch.zeros(5)):
        with pytest.raises(ValueError) as err:
            m(bad)
        assert str(err.value) == f'expected (N, 5) features, got {tuple(bad.shape)}'
    # n_real + n_fake == D: returned unchanged (one fewer: projected onto n orthonormal coordinates)
    real, fake = torch.randn(2, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    r, f = project_to_common_subspace(real, fake)
    assert r is real and f is fake
    r, f = project_to_common_subspace(real, fake[:2])
    assert r.shape == (2, 4) and f.shape == (2, 4)
    torch.testing.assert_close(r @ r.t(), real @ real.t())  # inner products kept
    torch.testing.assert_close(f @ r.t(), fake[:2] @ real.t())


def test_image_quality_input_checks_messages_and_quantize():
    """``psnr`` / ``ssim``'s input checks: each message in full (function and argument named), the range tolerance
    at its edges with a non-default ``data_range``; ``quantize_uint8`` clamps to 0..255 by itself."""
    ok = torch.full((1, 3, 8, 8), 0.5)
    cases = [
        ('psnr', dict(pred=ok.numpy(), target=ok), TypeError, 'psnr: pred must be a torch.Tensor, got ndarray'),
        ('ssim', dict(pred=ok, target=[1]), TypeError, 'ssim: target must be a torch.Tensor, got list'),
        ('psnr', dict(pred=ok[:, :2], target=ok[:, :2]), ValueError,
         'psnr: pred must have shape (B, 3, H, W), got (1, 2, 8, 8)'),
        ('psnr', dict(pred=ok, target=ok[0]), ValueError, 'psnr: target must have shape (B, 3, H, W), got (3, 8, 8)'),
        ('psnr', dict(pred=ok, target=ok, data_range=0.0), ValueError, 'psnr: data_range must be > 0, got 0.0'),
        ('ssim', dict(pred=ok[:0], target=ok[:0]), ValueError, 'ssim: pred is empty'),
        ('psnr', dict(pred=ok, target=ok.clone().fill_(float('nan'))), ValueError, 'psnr: target contains NaN or Inf'),
        ('psnr', dict(pred=ok.clone().fill_(float('inf')), target=ok), ValueError, 'psnr: pred contains NaN or Inf'),
        ('psnr', dict(pred=ok.clone().fill_(-0.003), target=ok, data_range=2.0), ValueError,
         'psnr: pred values span [-0.003, -0.003], expected [0, 2]. Images in [-1, 1] must be mapped with '
         '(x + 1) / 2, and clamped.'),
        ('psnr', dict(pred=ok, target=ok.clone().fill_(2.003), data_range=2.0), ValueError,
         'psnr: target values span [2.003, 2.003], expected [0, 2]. Images in [-1, 1] must be mapped with '
         '(x + 1) / 2, and clamped.')]
    for fn, kw, exc, msg in cases:
        with pytest.raises(exc) as err:
            getattr(TF, fn)(**kw)
        assert str(err.value) == msg, (fn, msg)
    one = torch.full((1, 3, 8, 8), 1.0)
    TF.psnr(one.clone().fill_(-0.0019), one.clone().fill_(2.0019), data_range=2.0)  # within 1e-3 * data_range
    TF.psnr(one.clone().fill_(0.0), one.clone().fill_(2.0), data_range=2.0)
    edge = torch.ones(1, 3, 8, 8, dtype=torch.float64)
    TF.psnr(edge * -(1e-3 * 2.0), edge * (2.0 + 1e-3 * 2.0), data_range=2.0)  # exactly at the tolerance: accepted
    TF.psnr(torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25))
    x = torch.tensor([-0.5, -0.001, 0.0, 0.5, 1.0, 1.2]).view(1, 1, 1, 6)
    q = TF.quantize_uint8(x * 2, data_range=2.0)
    assert q.dtype == torch.float64 and q.flatten().tolist() == [0.0, 0.0, 0.0, 128.0, 255.0, 255.0]


def test_fid_from_features_checks_and_two_images_each():
    """Exactly 2 images per set are enough (the value is the float64 Fréchet distance of the two sets' statistics);
    fewer, a 1-D set, or different widths are refused with their messages."""
    import numpy as np
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(2, 5, generator=g, dtype=torch.float64), torch.randn(2, 5, generator=g,
                                                                                 dtype=torch.float64) + 0.5
    want = TF.frechet_distance(*TF.feature_statistics(real), *TF.feature_statistics(fake))
    for exact in (True, False):
        assert TF.fid_from_features(real, fake, exact_subspace=exact) == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert TF.fid_from_features(real.numpy(), fake.numpy()) == pytest.approx(want, rel=1e-6, abs=1e-6)
    cases = [((real[:1], fake), 'FID needs at least 2 images in each set'),
             ((real, fake[:1]), 'FID needs at least 2 images in each set'),
             ((real[0], fake), 'need two (N, D) feature sets, got (5,) and (2, 5)'),
             ((real, fake[0]), 'need two (N, D) feature sets, got (2, 5) and (5,)'),
             ((real, fake[:, :4]), 'need two (N, D) feature sets, got (2, 5) and (2, 4)'),
             ((np.zeros((3, 2, 1)), np.zeros((3, 2, 1))), 'need two (N, D) feature sets, got (3, 2, 1) and (3, 2, 1)')]
    for args, msg in cases:
        with pytest.raises(ValueError) as err:
            TF.fid_from_features(*args)
        assert str(err.value) == msg


def test_image_checks_refuse_a_single_infinite_value():
    """One ``+inf`` (or ``-inf``) among finite values: the min (or the max) stays finite, the NaN / Inf message still
    names the problem (not the range check's message)."""
    x = torch.full((1, 3, 12, 12), 0.5)
    for bad, arg in ((float('inf'), 'pred'), (float('-inf'), 'target')):
        y = x.clone()
        y[0, 1, 3, 4] = bad
        pair = dict(pred=y, target=x) if arg == 'pred' else dict(pred=x, target=y)
        for fn in ('psnr', 'ssim'):
            with pytest.raises(ValueError) as err:
                getattr(TF, fn)(**pair)
            assert str(err.value) == f'{fn}: {arg} contains NaN or Inf'


# ============================================================================ fid_from_features: inputs, no collectives
def test_fid_from_features_accepts_per_image_lists_and_bf16_features(monkeypatch):
    """Array-likes go through ``np.asarray`` (a list of per-image ``(D,)`` tensors, which ``torch.as_tensor`` refuses),
    tensors do not (bf16 features, which numpy cannot hold); the value is the float64 Fréchet distance of the values
    given. Under an initialised process group the distance is computed locally: the features were gathered before
    (``FIDMetric``), and a torchmetrics sync here would be a collective that only rank 0 enters."""
    import torch.distributed as dist
    g = torch.Generator().manual_seed(4)
    real = torch.randn(3, 6, generator=g, dtype=torch.float64)
    fake = torch.randn(4, 6, generator=g, dtype=torch.float64) * 1.5 + 0.25

    def ref(r, f):
        return TF.frechet_distance(*TF.feature_statistics(r), *TF.feature_statistics(f))

    want = ref(real, fake)
    assert TF.fid_from_features(list(real), list(fake)) == pytest.approx(want, rel=1e-6)
    assert TF.fid_from_features(list(real.numpy()), fake) == pytest.approx(want, rel=1e-6)
    rb, fb = real.bfloat16(), fake.bfloat16()
    assert not torch.equal(rb.double(), real)
    want_b = ref(rb.double(), fb.double())
    assert TF.fid_from_features(rb, fb) == pytest.approx(want_b, rel=1e-6)
    assert TF.fid_from_features(rb, fb.double().numpy()) == pytest.approx(want_b, rel=1e-6)
    assert TF.fid_from_features(rb.double().numpy(), fb) == pytest.approx(want_b, rel=1e-6)
    # a process group "exists" (no default group is set up, so any collective would raise): computed locally
    monkeypatch.setattr(dist, 'is_available', lambda: True)
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    assert TF.fid_from_features(real, fake) == pytest.approx(want, rel=1e-6)


# ============================================================================ the FID Inception network and its cache
@pytest.fixture(scope='module')
def built_inception():
    """``get_fid_inception()`` (default device) from an empty cache, called twice: the module built, the cache after the
    first call, and the second call's result. The network is the real one (about 0.5 s to load)."""
    from transvae.evaluation.functional import fid as FF
    with pytest.MonkeyPatch.context() as mp:
        cache = {}
        mp.setattr(FF, '_INCEPTION_CACHE', cache)
        first = FF.get_fid_inception()
        after_first = dict(cache)
        second = FF.get_fid_inception('cpu')
    return first, after_first, second


def test_get_fid_inception_builds_the_shipped_network_once(built_inception):
    """Keyed by the normalised device (``'cpu'``, the default), built once, holding the shipped TorchScript network
    (weights equal to a fresh ``load_fid_inception()``), chunks of 32, always in eval mode (``train()`` included)."""
    from transvae.evaluation.functional.fid import FIDInceptionV3
    from transvae.models.pretrained.offline_weights import load_fid_inception
    module, cache, again = built_inception
    assert type(module) is FIDInceptionV3 and again is module
    assert list(cache) == ['cpu'] and cache['cpu'] is module
    assert module.chunk_size == 32 and module.num_features == 2048
    shipped = load_fid_inception().state_dict()
    ours = module.net.state_dict()
    assert list(ours) == list(shipped) and len(ours) > 100
    assert all(torch.equal(ours[k], shipped[k]) for k in shipped)
    assert not module.training and not module.net.training
    for mode in ((), (True, ), (False, )):
        assert module.train(*mode) is module
        assert not module.training and not any(m.training for m in module.modules())


def test_get_fid_inception_moves_the_network_to_the_device(monkeypatch):
    """The module is moved to the requested device (``meta`` here, the one other device on a CPU-only machine) and
    cached under it; ``'meta'`` and ``torch.device('meta')`` share the entry. The TorchScript Inception cannot be
    moved to ``meta``, so a 1 x 1 conv stands in for the loaded network here (the real one is checked above)."""
    from torch import nn

    from transvae.evaluation.functional import fid as FF
    cache = {}
    monkeypatch.setattr(FF, '_INCEPTION_CACHE', cache)
    monkeypatch.setattr(FF, 'load_fid_inception', lambda: nn.Conv2d(3, 2, 1))
    module = FF.get_fid_inception('meta')
    assert module.net.weight.device.type == 'meta' and not module.training and not module.net.training
    assert list(cache) == ['meta'] and cache['meta'] is module
    assert FF.get_fid_inception(torch.device('meta')) is module


# ============================================================================ the LPIPS metric's network cache
def test_lpips_metric_builds_the_pretrained_network_once_per_net_and_device(monkeypatch):
    """From an empty cache: ``lpips`` builds ``LPIPS(net, pretrained=True)`` (the shipped heads, by weights) once per
    ``(net, device)``, moves it to the images' device, caches nothing when the build fails, and asks for the net it was
    given (``'vgg'``: the builder's arguments are checked, then it is stopped: building VGG16 costs seconds)."""
    from transvae.evaluation.functional import image_quality as IQ
    from transvae.models.losses import lpips as lpips_mod
    from transvae.models.pretrained.offline_weights import load_lpips_heads

    class _Stop(Exception):
        pass

    real_build, calls = lpips_mod.build_lpips_module, []

    def recording_build(net: str = 'alex', pretrained: bool = True):
        calls.append((net, pretrained))
        if net == 'vgg':
            raise _Stop
        return real_build(net, pretrained)

    cache = {}
    monkeypatch.setattr(IQ, '_LPIPS_CACHE', cache)
    monkeypatch.setattr(lpips_mod, 'build_lpips_module', recording_build)
    g = torch.Generator().manual_seed(5)
    pred, gt = torch.rand(2, 3, 32, 40, generator=g), torch.rand(2, 3, 32, 40, generator=g)
    out = TF.lpips(pred, gt)
    assert calls == [('alex', True)] and list(cache) == [('alex', 'cpu')]
    module = cache[('alex', 'cpu')]
    assert isinstance(module, lpips_mod.LPIPS) and module.net_type == 'alex' and module.pretrained is True
    state = module.lpips_module.state_dict()
    heads = load_lpips_heads('alex')
    assert len(heads) == 5 and all(torch.equal(state[k], v) for k, v in heads.items())
    assert torch.equal(TF.lpips(pred, gt), out) and cache[('alex', 'cpu')] is module and len(calls) == 1
    with pytest.raises(_Stop):
        TF.lpips(pred, gt, net='vgg')
    assert calls[-1] == ('vgg', True) and list(cache) == [('alex', 'cpu')]
    meta = IQ._lpips_module('alex', torch.device('meta'))
    assert meta is not module and next(meta.lpips_module.parameters()).device.type == 'meta'
    assert cache[('alex', 'meta')] is meta and calls[-1] == ('alex', True)


def test_load_fid_statistics_deflate_bound_is_strict(tmp_path):
    """A deflated ``sigma`` whose directory entry claims exactly 1100 x its compressed size passes the size check (the
    bound refuses only claims beyond it) and fails at the read; one byte less compressed data and it is refused by the
    bound. ``D = 165``: ``8 D^2 = 217800 = 1100 x 198``; random bytes after the header tune the compressed size."""
    import io
    import struct
    import zipfile

    import numpy as np

    from transvae.evaluation.functional.fid import FIDStatisticsError, load_fid_statistics
    d = 165
    h = io.BytesIO()
    np.lib.format.write_array_header_1_0(h, dict(descr='<f8', fortran_order=False, shape=(d, d)))
    noise = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    found = {}
    for r in range(len(noise)):  # the smallest tails giving compressed sizes 198 and 197
        path = tmp_path / f'bound{r}.npz'
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('mu.npy', _npy(np.zeros(d)))
            z.writestr('sigma.npy', h.getvalue() + noise[:r], compress_type=zipfile.ZIP_DEFLATED)
        size = zipfile.ZipFile(path).getinfo('sigma.npy').compress_size
        if size in (197, 198) and size not in found:
            found[size] = path
        if len(found) == 2:
            break
    assert sorted(found) == [197, 198]
    for size, path in found.items():
        raw = bytearray(path.read_bytes())
        entry = raw.find(b'PK\x01\x02', raw.find(b'PK\x01\x02') + 4)  # sigma.npy's central directory entry
        raw[entry + 24:entry + 28] = struct.pack('<I', 128 + 8 * d * d)  # claims the whole array
        path.write_bytes(bytes(raw))
        assert zipfile.ZipFile(path).getinfo('sigma.npy').file_size == 128 + 217800
        with pytest.raises(FIDStatisticsError) as err:
            load_fid_statistics(str(path), dim=d)
        if size == 198:  # 217800 == 1100 x 198: allowed by the bound, the data read fails
            assert str(err.value).startswith(f'FID reference statistics {path}: sigma cannot be read (')
        else:
            assert str(err.value) == (f'FID reference statistics {path}: sigma claims 217800 bytes, the file holds '
                                      '197 for it (truncated or malformed)')
