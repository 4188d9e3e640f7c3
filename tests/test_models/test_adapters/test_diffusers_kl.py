"""DiffusersAutoencoderKL vs diffusers.AutoencoderKL on random weights (optional: needs `diffusers`)."""
from __future__ import annotations

import pytest
import torch

from transvae.models.adapters import DiffusersAutoencoderKL, convert_diffusers_state_dict
from transvae.registry import MODELS

SMALL = dict(in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
             latent_channels=4, down_block_types=('DownEncoderBlock2D',) * 2,
             up_block_types=('UpDecoderBlock2D',) * 2)


@pytest.mark.parametrize('extra', [dict(), dict(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1,
                                                scaling_factor=0.3611, mid_block_add_attention=True)])
def test_matches_diffusers(tmp_path, extra):
    diffusers = pytest.importorskip('diffusers')
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKL(**SMALL, **extra).eval()
    with torch.no_grad():  # non-trivial GroupNorm affine parameters
        for name, p in ref.named_parameters():
            if 'norm' in name:
                p.add_(torch.randn_like(p) * 0.1)
    ref.save_pretrained(str(tmp_path))  # config.json + diffusion_pytorch_model.safetensors
    model = MODELS.build(dict(type='DiffusersAutoencoderKL', pretrained_path=str(tmp_path))).eval()
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        post_ref = ref.encode(x).latent_dist
        post = model.encode(x)
        assert torch.allclose(post.mean, post_ref.mean, atol=1e-5)
        assert torch.allclose(post.logvar, post_ref.logvar, atol=1e-5)
        z = post_ref.mean
        assert torch.allclose(model.decode(z), ref.decode(z).sample, atol=1e-5)
        out = model(x, mode='predict')  # the tools/test.py path
    assert len(out) == 2 and out[0]['pred_img'].shape == (3, 32, 48)
    assert model.downsample_factor == 2 and model.latent_channels == 4
    sf, sh = ref.config.scaling_factor, ref.config.shift_factor or 0.0
    assert torch.allclose(model.normalize_latent(z), (z - sh) * sf, atol=1e-6)


def test_deprecated_attention_keys_and_errors(tmp_path):
    model = DiffusersAutoencoderKL(config=dict(SMALL))
    sd = {k: v for k, v in model.state_dict().items() if k.startswith(('encoder.', 'decoder.'))}
    old = {}
    for k, v in sd.items():
        k = k.replace('encoder.quant_conv', 'quant_conv').replace('decoder.post_quant_conv', 'post_quant_conv')
        for new, dep in (('to_q', 'query'), ('to_k', 'key'), ('to_v', 'value'), ('to_out.0', 'proj_attn')):
            if f'attentions.0.{new}.' in k:
                k = k.replace(new, dep)
                v = v[:, :, None, None] if v.dim() == 2 else v
        old[k] = v
    conv = convert_diffusers_state_dict(old)
    assert set(conv) == set(sd) and all(torch.equal(conv[k], sd[k]) for k in sd)
    with pytest.raises(FileNotFoundError, match='config.json'):
        DiffusersAutoencoderKL(pretrained_path=str(tmp_path))
