"""The LDM / AutoencoderKL converters in ``tools/model_converters/`` run end to end (``main([...])``), each with one
refused input; the references are diffusers' own ``AutoencoderKL`` / ``from_pretrained`` (optional: ``diffusers``).

* ``diffusers_to_transvae.py``: a diffusers pipeline folder's ``vae/`` -> package; the package is the checkpoint of a
  benchmark config for ``tools/test.py`` (``build_model``), and gives diffusers' outputs.
* ``transvae_to_diffusers.py``: that package (and a config + checkpoint) -> a folder diffusers' ``from_pretrained``
  loads, bit-identical in weights to the original diffusers VAE (the round trip), same outputs.
* ``ldm_to_transvae.py``: a Lightning-style ``.ckpt`` (``state_dict`` nesting, ``loss.*`` keys) + a latent-diffusion
  yaml -> package equal to the source model, ``scale_factor`` as the latent normalisation.
"""
from __future__ import annotations

import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from transvae.apis.entry import build_model
from transvae.apis.pretrained import from_pretrained, save_pretrained
from transvae.models.adapters import to_ldm_state_dict
from transvae.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')
REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
NO_DIFFUSERS = 'diffusers is optional (requirements/optional.txt)'
#: the SD3.5 / FLUX layout at the benchmark configs' --preset cpu widths (so their model loads the package)
SMALL_SD3 = dict(block_out_channels=[32, 64, 128, 128], layers_per_block=1, norm_num_groups=8, latent_channels=16,
                 down_block_types=['DownEncoderBlock2D'] * 4, up_block_types=['UpDecoderBlock2D'] * 4,
                 use_quant_conv=False, use_post_quant_conv=False, scaling_factor=1.5305, shift_factor=0.0609)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', 'model_converters', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _refused(main, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert str(e.value.code).startswith('error: ')
    return str(e.value.code)


def test_diffusers_to_transvae_and_back(tmp_path, capsys):
    diffusers = pytest.importorskip('diffusers', reason=NO_DIFFUSERS)
    torch.manual_seed(0)
    ref = _perturbed(diffusers.AutoencoderKL(**SMALL_SD3))
    ref.save_pretrained(str(tmp_path / 'pipe' / 'vae'))
    pkg, out = str(tmp_path / 'pkg'), str(tmp_path / 'out')
    to_transvae = _tool('diffusers_to_transvae').main
    assert to_transvae([str(tmp_path / 'pipe'), pkg]) == 0  # a pipeline folder: its vae/ is taken
    assert 'shift_factor 0.0609' in capsys.readouterr().out
    ours = from_pretrained(pkg)
    x = torch.rand(1, 3, 16, 24) * 2 - 1
    with torch.no_grad():
        mean, mean_ref = ours.encode(x).mean, ref.encode(x).latent_dist.mean
        assert (mean - mean_ref).abs().max() <= 1e-5 * mean_ref.abs().max()
    # the package is the checkpoint of the benchmark config (here at its --preset cpu widths) for tools/test.py
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'benchmarks', 'sd35-vae_f8d16.py'))
    from transvae.engine.config_surgery import apply_preset
    bench = build_model(apply_preset(cfg, 'cpu'), osp.join(pkg, 'model.safetensors'))
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in bench.state_dict().items())
    torch.testing.assert_close(bench.latent_std, torch.full((16,), 1 / 1.5305))

    to_diffusers = _tool('transvae_to_diffusers').main
    assert to_diffusers([pkg, out]) == 0
    back = diffusers.AutoencoderKL.from_pretrained(out).eval()  # diffusers' own loader
    ref_sd, back_sd = ref.state_dict(), back.state_dict()
    assert set(ref_sd) == set(back_sd) and all(torch.equal(back_sd[k], ref_sd[k]) for k in ref_sd)
    assert (back.config.scaling_factor, back.config.shift_factor) == (1.5305, 0.0609)
    with torch.no_grad():
        torch.testing.assert_close(back.decode(mean_ref).sample, ref.decode(mean_ref).sample, atol=0, rtol=0)

    assert 'is a transvae package already' in _refused(to_transvae, [pkg, str(tmp_path / 'x')])
    (tmp_path / 'empty').mkdir()
    assert 'no config.json' in _refused(to_transvae, [str(tmp_path / 'empty'), str(tmp_path / 'x')])


def test_transvae_to_diffusers_from_config_and_refusals(tmp_path):
    diffusers = pytest.importorskip('diffusers', reason=NO_DIFFUSERS)
    model_cfg = dict(type='VAE', arch=dict(base_channels=16, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                           attn_levels=[1], mid_attn=True, norm_cfg=dict(type='GN', num_groups=8)),
                     encoder=dict(type='CNNEncoder', quant_conv=True), decoder=dict(type='CNNDecoder'),
                     rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))
    (tmp_path / 'cnn.py').write_text(f"default_scope = 'transvae'\nmodel = {model_cfg!r}\n")
    torch.manual_seed(0)
    model = _perturbed(MODELS.build(model_cfg))
    torch.save({'state_dict': model.state_dict()}, str(tmp_path / 'cnn.pth'))
    main = _tool('transvae_to_diffusers').main
    assert main([str(tmp_path / 'cnn.py'), str(tmp_path / 'cnn.pth'), str(tmp_path / 'out')]) == 0
    cfg = json.loads((tmp_path / 'out' / 'config.json').read_text())
    assert cfg['down_block_types'] == ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D']
    assert cfg['up_block_types'] == ['AttnUpDecoderBlock2D', 'UpDecoderBlock2D']
    assert (cfg['use_quant_conv'], cfg['use_post_quant_conv']) == (True, False)
    ref = diffusers.AutoencoderKL.from_pretrained(str(tmp_path / 'out')).eval()
    x = torch.rand(1, 3, 8, 12) * 2 - 1
    with torch.no_grad():
        a, b = model.encode(x).mean, ref.encode(x).latent_dist.mean
    assert (a - b).abs().max() <= 1e-5 * b.abs().max()

    # a TransVAE package is refused, naming what converts
    tv = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', 'transvae-micro_f8d16.py')).model
    tv.rec_loss = dict(type='ReconstructionNLL', perceptual_cfg=None)
    save_pretrained(MODELS.build(tv), str(tmp_path / 'tv'), config={'model': tv.to_dict()})
    msg = _refused(main, [str(tmp_path / 'tv'), str(tmp_path / 'out2')])
    assert 'TransVAEEncoder' in msg and 'only a VAE with CNNEncoder and CNNDecoder' in msg
    assert not osp.exists(tmp_path / 'out2' / 'config.json')


def test_ldm_to_transvae(tmp_path, capsys):
    torch.manual_seed(0)
    src = _perturbed(MODELS.build(dict(
        type='VAE', arch=dict(base_channels=16, channel_mults=[1, 2, 2], num_res_blocks=1, latent_channels=4,
                              attn_levels=[2], mid_attn=True, norm_cfg=dict(type='GN', num_groups=8)),
        encoder=dict(type='CNNEncoder', quant_conv=True), decoder=dict(type='CNNDecoder', post_quant_conv=True),
        rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))))
    ldm = to_ldm_state_dict(src)
    ldm.update({'loss.logvar': torch.zeros(()), 'loss.discriminator.main.0.weight': torch.randn(4, 3, 4, 4)})
    torch.save({'state_dict': ldm, 'global_step': 3, 'epoch': 1}, str(tmp_path / 'vae.ckpt'))
    (tmp_path / 'ldm.yaml').write_text(
        'model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    scale_factor: 0.18215\n'
        '    first_stage_config:\n      target: ldm.models.autoencoder.AutoencoderKL\n      params:\n'
        '        embed_dim: 4\n        ddconfig: {double_z: true, z_channels: 4, resolution: 32, in_channels: 3, '
        'out_ch: 3, ch: 16, ch_mult: [1, 2, 2], num_res_blocks: 1, attn_resolutions: [8], dropout: 0.0}\n')
    main = _tool('ldm_to_transvae').main
    pkg = str(tmp_path / 'pkg')
    assert main([str(tmp_path / 'vae.ckpt'), pkg, '--config', str(tmp_path / 'ldm.yaml'), '--norm-groups', '8']) == 0
    printed = capsys.readouterr().out
    assert 'attention at levels [2]' in printed and 'loss.* 2 keys' in printed and 'scaling_factor 0.18215' in printed
    ours = from_pretrained(pkg)
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in src.state_dict().items() if 'latent' not in k)
    torch.testing.assert_close(ours.latent_std, torch.full((4,), 1 / 0.18215))

    ldm['encoder.down.0.unknown.weight'] = torch.zeros(2)
    torch.save({'state_dict': ldm}, str(tmp_path / 'bad.ckpt'))
    msg = _refused(main, [str(tmp_path / 'bad.ckpt'), str(tmp_path / 'pkg2'), '--norm-groups', '8'])
    assert '1 unexpected: encoder.down.0.unknown.weight' in msg
    assert 'not found' in _refused(main, [str(tmp_path / 'missing.ckpt'), str(tmp_path / 'pkg3')])
