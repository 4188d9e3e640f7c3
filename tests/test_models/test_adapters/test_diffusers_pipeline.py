"""A transvae VAE as the ``vae`` of a real diffusers pipeline (``DiffusersVAEWrapper``; issue 22, item 3).

The pipeline tests run diffusers' own ``DiTPipeline`` (a tiny random ``DiTTransformer2DModel`` sized for our latents,
a DDIM scheduler, our wrapper as ``vae``) and ``VaeImageProcessor`` end to end on the CPU; they are skipped only where
diffusers is not installed (``requirements/optional.txt``). The wrapper's own contract (decode / encode equal to our
model's, the latent-normalisation modes, tiling, slicing, the config) needs no diffusers and always runs.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from transvae.models.adapters import DiffusersVAEWrapper, vae_from_diffusers
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

NO_DIFFUSERS = 'diffusers is not installed (optional: pip install -r requirements/optional.txt)'

#: f8, d4 TransVAE (CNN stages at 1/1 and 1/2, Transformer stages at 1/4 and 1/8)
TRANSVAE = dict(arch=dict(widths=[16, 16, 32, 32], depths=[1, 1, 1, 1], latent_channels=4, head_dim=16),
                encoder=dict(type='TransVAEEncoder'), decoder=dict(type='TransVAEDecoder'))
#: f4, d4 CNN-VAE (LDM layout, mid attention): no width list, so block_out_channels is a placeholder
CNN = dict(arch=dict(base_channels=16, channel_mults=[1, 2, 2], num_res_blocks=1, latent_channels=4, attn_levels=[],
                     mid_attn=True), encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'))
#: f8, d4 ViT-VAE: one width at any f (placeholder block_out_channels); not exactly tileable
VIT = dict(arch=dict(embed_dims=32, depth=1, latent_channels=4, patch_size=8, head_dim=16),
           encoder=dict(type='ViTEncoder'), decoder=dict(type='ViTDecoder'))
ARCHS = dict(transvae=TRANSVAE, cnn=CNN, vit=VIT)
#: per-channel latent statistics (as latent extraction writes them)
MEAN, STD = torch.tensor([0.3, -0.2, 0.05, 0.7]), torch.tensor([1.5, 0.4, 2.0, 0.9])


def build(arch: dict = TRANSVAE, stats: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(dict(type='VAE', rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None), **arch))
    if stats:
        model.set_latent_stats(MEAN, STD)
    return model.eval()


def images(b: int = 2, h: int = 32, w: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    smooth = torch.stack([torch.sin(5 * yy + 1), torch.cos(7 * xx), torch.sin(3 * (xx + yy))])
    return (0.6 * smooth + 0.3 * torch.rand(b, 3, h, w, generator=g)).clamp(-1, 1)


def latents(b: int = 2, h: int = 4, w: int = 6) -> torch.Tensor:
    return torch.randn(b, 4, h, w, generator=torch.Generator().manual_seed(2))


def dit_pipeline(vae: nn.Module, latent_size: int):
    """diffusers' ``DiTPipeline``: a tiny random DiT for the vae's latent channels and ``latent_size``, DDIM, ``vae``
    (our wrapper, or diffusers' ``AutoencoderKL`` to compare with)."""
    diffusers = pytest.importorskip('diffusers', reason=NO_DIFFUSERS)
    torch.manual_seed(3)
    d = vae.config.latent_channels
    # learned sigma (out = 2d) as in DiT; 1000 classes because the pipeline's null class for guidance is id 1000
    dit = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=d,
                                          out_channels=2 * d, num_layers=1, sample_size=latent_size, patch_size=2,
                                          num_embeds_ada_norm=1000).eval()
    with torch.no_grad():  # adaLN-Zero starts as the identity (output 0): give the blocks non-zero weights
        for name, p in dit.named_parameters():
            if 'norm' in name or 'proj_out' in name:
                p.normal_(0, 0.05)
    return diffusers.DiTPipeline(transformer=dit, vae=vae, scheduler=diffusers.DDIMScheduler())


# ------------------------------------------------------------------------------------------------ a real pipeline
@pytest.mark.parametrize('stats', [False, True], ids=['identity_stats', 'per_channel_stats'])
def test_dit_pipeline_end_to_end(stats):
    """DiTPipeline samples latents with its transformer and scheduler and decodes them with our model: the images it
    returns are exactly our model's decode of the latents it handed to ``vae.decode`` (denormalised per channel in
    the default ``'inside'`` mode), at ``f`` times the latent size."""
    model = build(stats=stats)
    vae = DiffusersVAEWrapper(model)
    pipe = dit_pipeline(vae, latent_size=4)
    assert pipe.vae is vae and pipe.components['vae'] is vae
    assert pipe.device == torch.device('cpu') and pipe.dtype == torch.float32
    seen = []
    decode = vae.decode

    def spy(z, *args, **kwargs):
        seen.append(z.clone())
        return decode(z, *args, **kwargs)

    vae.decode = spy
    out = pipe(class_labels=[1, 7], num_inference_steps=3, guidance_scale=4.0,
               generator=torch.Generator().manual_seed(0), output_type='pt')
    vae.decode = decode
    assert out.images.shape == (2, 3, 32, 32)  # f = 8 times the DiT's 4 x 4 latent
    assert len(seen) == 1 and seen[0].shape == (2, 4, 4, 4)
    z = seen[0] * vae.config.scaling_factor  # what the sampler produced (scaling 1.0 here)
    with torch.no_grad():
        ref = model.decode(model.denormalize_latent(z) if stats else z)
    assert torch.equal(out.images, (ref / 2 + 0.5).clamp(0, 1))
    assert out.images.std() > 0.01  # a real picture of the random decoder, not a constant

    pil = pipe(class_labels=[5], num_inference_steps=2, guidance_scale=1.0,
               generator=torch.Generator().manual_seed(0)).images  # output_type='pil', no guidance
    assert len(pil) == 1 and pil[0].size == (32, 32)
    pipe.to('cpu')  # DiffusionPipeline.to moves our wrapper like any of its nn.Module components


def test_dit_pipeline_with_a_cnn_vae_and_tiling():
    """Any transvae VAE: a CNN-VAE (f4) in the same pipeline, decoding through our exact tiling after
    ``enable_tiling``: the images equal the untiled pipeline's (same seed) up to float rounding."""
    vae = DiffusersVAEWrapper(build(CNN))
    pipe = dit_pipeline(vae, latent_size=6)
    run = dict(class_labels=[2], num_inference_steps=2, guidance_scale=1.0, output_type='pt')
    whole = pipe(generator=torch.Generator().manual_seed(0), **run).images
    vae.enable_tiling(tile=8)
    assert vae.use_tiling and vae.model.tiling.mode == 'exact'
    tiled = pipe(generator=torch.Generator().manual_seed(0), **run).images
    vae.disable_tiling()
    assert whole.shape == tiled.shape == (1, 3, 24, 24)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize('latent_norm', ['scalar', 'inside'])
def test_drop_in_for_diffusers_autoencoder_kl(tmp_path, latent_norm):
    """The same DiTPipeline (transformer, scheduler, seed) with diffusers' own ``AutoencoderKL`` as ``vae`` and with
    our wrapper around that VAE's folder converted into our native CNN-VAE (``vae_from_diffusers``, as
    ``tools/model_converters/diffusers_to_transvae.py`` does: ``latent_mean`` = shift, ``latent_std`` =
    1 / scaling_factor) gives the same images: ``'scalar'`` restates its scaling factor, ``'inside'`` applies it
    inside decode."""
    diffusers = pytest.importorskip('diffusers', reason=NO_DIFFUSERS)
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                                  norm_num_groups=8, latent_channels=4, down_block_types=('DownEncoderBlock2D',) * 2,
                                  up_block_types=('UpDecoderBlock2D',) * 2).eval()
    ref.save_pretrained(str(tmp_path))
    from safetensors.torch import load_file
    with open(tmp_path / 'config.json') as f:
        config = json.load(f)
    model, _ = vae_from_diffusers(config, load_file(str(tmp_path / 'diffusion_pytorch_model.safetensors')))
    assert type(model.encoder).__name__ == 'CNNEncoder'
    vae = DiffusersVAEWrapper(model, latent_norm=latent_norm)
    assert vae.config.scaling_factor == (pytest.approx(ref.config.scaling_factor) if latent_norm == 'scalar' else 1.0)
    outs = []
    for v in (ref, vae):
        pipe = dit_pipeline(v, latent_size=8)
        outs.append(pipe(class_labels=[1, 2], num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                         output_type='pt').images)
    assert outs[0].shape == (2, 3, 16, 16) and outs[0].std() > 0.01
    torch.testing.assert_close(outs[1], outs[0], atol=1e-6, rtol=0)


def test_image_processor_round_trip():
    """``VaeImageProcessor`` with the pipelines' ``vae_scale_factor = 2 ** (len(block_out_channels) - 1)``: it crops
    an image to our factor, hands the VAE exactly our ``[-1, 1]`` input convention (``VAEDataPreprocessor``'s), and
    its postprocessed reconstruction is our model's."""
    pytest.importorskip('diffusers', reason=NO_DIFFUSERS)
    from diffusers.image_processor import VaeImageProcessor
    from PIL import Image

    model = build()
    vae = DiffusersVAEWrapper(model)
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    assert scale == model.downsample_factor == vae.config.downsample_factor == 8
    proc = VaeImageProcessor(vae_scale_factor=scale)
    rgb = (np.random.default_rng(0).random((45, 61, 3)) * 255).astype(np.uint8)  # not multiples of 8
    x = proc.preprocess(Image.fromarray(rgb))
    assert x.shape == (1, 3, 40, 56)  # resized down to multiples of f, as for an AutoencoderKL
    u8 = torch.from_numpy(np.array(Image.fromarray(rgb).resize((56, 40), resample=Image.LANCZOS))).permute(2, 0, 1)
    ours = MODELS.build(dict(type='VAEDataPreprocessor'))(dict(inputs=[u8]))['inputs']
    torch.testing.assert_close(x, ours, atol=1e-6, rtol=0)  # same [-1, 1] mapping: no conversion needed
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        assert z.shape == (1, 4, 5, 7)
        rec = vae.decode(z).sample
        assert torch.equal(rec, model.reconstruct(x))
    pil = proc.postprocess(rec, output_type='pil')[0]
    assert pil.size == (56, 40)
    pt = proc.postprocess(rec, output_type='pt')
    assert torch.equal(pt, (model.reconstruct(x) / 2 + 0.5).clamp(0, 1))


# ------------------------------------------------------------------------------------------------ the wrapper contract
@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_decode_and_encode_equal_our_model_exactly(arch):
    model = build(ARCHS[arch])
    vae = DiffusersVAEWrapper(model)
    x, z = images(), latents()
    with torch.no_grad():
        assert torch.equal(vae.decode(z).sample, model.decode(z))
        (dec,) = vae.decode(z, return_dict=False, generator=torch.Generator())
        assert torch.equal(dec, model.decode(z))
        out = vae.encode(x)
        (dist,) = vae.encode(x, return_dict=False)
        post = model.encode(x)
        f = model.downsample_factor
        assert out.latent_dist.mode().shape == (2, 4, 32 // f, 48 // f)
        assert torch.equal(out.latent_dist.mode(), post.mode()) and torch.equal(dist.mean, post.mean)
        assert torch.equal(out.latent_dist.std, post.std) and torch.equal(out.latent_dist.logvar, post.logvar)
        # sample(generator) draws the noise as diffusers' DiagonalGaussianDistribution does: ours with the same seed
        s = out.latent_dist.sample(torch.Generator().manual_seed(4))
        assert torch.equal(s, post.sample(torch.Generator().manual_seed(4)))
        per_item = out.latent_dist.sample([torch.Generator().manual_seed(4), torch.Generator().manual_seed(5)])
        assert torch.equal(per_item[:1], s[:1]) and not torch.equal(per_item[1:], s[1:])
        assert torch.equal(vae(x).sample, model.reconstruct(x))
        assert torch.equal(vae(x, return_dict=False)[0], model.reconstruct(x))
    assert out[0] is out.latent_dist and out['latent_dist'] is out.latent_dist
    assert vae.config.block_out_channels == dict(transvae=(16, 16, 32, 32), cnn=(4, 4, 4), vit=(4, 4, 4, 4))[arch]
    assert 2 ** (len(vae.config.block_out_channels) - 1) == model.downsample_factor


def test_latent_norm_modes():
    """``'inside'`` applies the per-channel statistics in encode / decode (scalars 1 / 0); ``'scalar'`` states equal
    statistics as diffusers' scalars and refuses per-channel ones; ``'none'`` ignores them. The latents a pipeline
    works on, ``(encode - shift_factor) * scaling_factor``, are the same in both modes that use the statistics."""
    model = build(stats=True)
    x, z = images(), latents()
    inside = DiffusersVAEWrapper(model)
    assert (inside.config.scaling_factor, inside.config.shift_factor) == (1.0, 0.0)
    assert inside.config.latents_mean is None and inside.config.latents_std is None  # SDXL would normalise again
    with torch.no_grad():
        raw = model.encode(x)
        dist = inside.encode(x).latent_dist
        assert torch.equal(dist.mode(), model.normalize_latent(raw.mode()))
        assert torch.equal(dist.sample(torch.Generator().manual_seed(4)),
                           model.normalize_latent(raw.sample(torch.Generator().manual_seed(4))))
        torch.testing.assert_close(dist.std, raw.std / STD.view(1, -1, 1, 1))
        torch.testing.assert_close(dist.logvar.exp(), dist.var)
        assert torch.equal(inside.decode(z).sample, model.decode(model.denormalize_latent(z)))
        none = DiffusersVAEWrapper(model, latent_norm='none')
        assert (none.config.scaling_factor, none.config.shift_factor) == (1.0, 0.0)
        assert torch.equal(none.decode(z).sample, model.decode(z))
        assert torch.equal(none.encode(x).latent_dist.mode(), raw.mode())
    with pytest.raises(ValueError, match='per-channel'):
        DiffusersVAEWrapper(model, latent_norm='scalar')
    with pytest.raises(ValueError, match='latent_norm must be one of'):
        DiffusersVAEWrapper(model, latent_norm='scaled')

    model.set_latent_stats(torch.full((4,), 0.25), torch.full((4,), 1 / 0.18215))  # one value for every channel
    scalar, inside = DiffusersVAEWrapper(model, latent_norm='scalar'), DiffusersVAEWrapper(model)
    assert scalar.config.scaling_factor == pytest.approx(0.18215) and scalar.config.shift_factor == 0.25
    with torch.no_grad():
        assert torch.equal(scalar.encode(x).latent_dist.mode(), model.encode(x).mode())  # raw, as AutoencoderKL
        assert torch.equal(scalar.decode(z).sample, model.decode(z))
        c = scalar.config
        diffusion = (scalar.encode(x).latent_dist.mode() - c.shift_factor) * c.scaling_factor
        torch.testing.assert_close(diffusion, inside.encode(x).latent_dist.mode(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(scalar.decode(z / c.scaling_factor + c.shift_factor).sample,
                                   inside.decode(z).sample, atol=1e-5, rtol=1e-5)


def test_tiling_and_slicing_map_to_our_model():
    model = build()
    vae = DiffusersVAEWrapper(model)
    x, z = images(h=40, w=56), latents(h=5, w=7)
    with torch.no_grad():
        whole_x, whole_z = vae.encode(x).latent_dist.mode(), vae.decode(z).sample
        vae.enable_tiling()  # diffusers' no-argument call: our exact tiling, tile chosen from the memory budget
        assert model.tiling is not None and model.tiling.tile == 'auto' and model.tiling.mode == 'exact'
        vae.enable_tiling(tile=16, mode='exact')
        assert vae.use_tiling and model.tiling.tile == 16
        torch.testing.assert_close(vae.decode(z).sample, whole_z, atol=1e-5, rtol=0)
        torch.testing.assert_close(vae.encode(x).latent_dist.mode(), whole_x, atol=1e-5, rtol=0)
        vae.disable_tiling()
        assert not vae.use_tiling and model.tiling is None
        vae.enable_slicing()
        assert vae.use_slicing
        torch.testing.assert_close(vae.decode(z).sample, whole_z, atol=1e-5, rtol=0)
        torch.testing.assert_close(vae.encode(x).latent_dist.mode(), whole_x, atol=1e-5, rtol=0)
        vae.disable_slicing()
        assert not vae.use_slicing


def test_exact_tiling_refused_up_front_where_unsupported():
    """A ViT-VAE cannot tile exactly: ``enable_tiling()`` says so when called (not after a pipeline's last denoising
    step); the approximate mode works."""
    from transvae.models.autoencoders.exact_tiling import ExactTilingUnsupported

    vae = DiffusersVAEWrapper(build(VIT))
    with pytest.raises(ExactTilingUnsupported, match="mode='blend'"):
        vae.enable_tiling()
    assert not vae.use_tiling
    vae.enable_tiling(tile=16, mode='blend')
    with torch.no_grad():
        assert vae.decode(latents(1, 6, 6)).sample.shape == (1, 3, 48, 48)


def test_config_and_module_protocol():
    model = build().train()
    vae = DiffusersVAEWrapper(model)
    assert not model.training  # put in eval mode, as diffusers' from_pretrained leaves its models
    c = vae.config
    assert c.latent_channels == c['latent_channels'] == 4 and c.in_channels == c.out_channels == 3
    assert c.sample_size == 256 and c.force_upcast is False and c.transvae_class == 'VAE'
    assert hasattr(c, 'latents_mean') and not hasattr(c, 'no_such_key')
    with pytest.raises(AttributeError, match='read-only'):
        c.scaling_factor = 0.5
    with pytest.raises(TypeError, match='read-only'):
        c['scaling_factor'] = 0.5
    assert copy.deepcopy(vae).config == c
    assert vae.dtype == torch.float32 and vae.device == torch.device('cpu')
    assert vae.to(torch.float64) is vae and vae.dtype == torch.float64 and model.latent_mean.dtype == torch.float64
    with torch.no_grad():
        assert vae.decode(latents().double()).sample.dtype == torch.float64
    assert DiffusersVAEWrapper(build(), sample_size=512, block_out_channels=(8, 8, 8, 8)).config.sample_size == 512
    with pytest.raises(ValueError, match='log2'):
        DiffusersVAEWrapper(build(), block_out_channels=(8, 8))
    with pytest.raises(TypeError, match='wraps a transvae VAE'):
        DiffusersVAEWrapper(nn.Conv2d(3, 3, 1))


def test_offload_hook_runs_before_encode_and_decode():
    """As diffusers' ``apply_forward_hook``: an accelerate hook attached to the wrapper (model CPU offload) gets
    ``pre_forward(wrapper)`` before ``encode`` / ``decode``, which pipelines call instead of ``forward``."""
    vae = DiffusersVAEWrapper(build())
    calls = []

    class Hook:
        def pre_forward(self, module):
            calls.append(module)

    vae._hf_hook = Hook()
    with torch.no_grad():
        vae.decode(latents())
        vae.encode(images())
    assert calls == [vae, vae]
