"""The model package (``transvae.apis.pretrained``): ``save_pretrained`` / ``from_pretrained`` / ``export_pretrained``
and ``tools/model_converters/export_pretrained.py``.

Checkpoints are written in the format the runner writes with ``TransVAEEMAHook`` (the hook's own
``before_save_checkpoint`` swaps the average into ``state_dict`` and keeps the live weights in ``ema_state_dict``),
so "EMA preferred" is checked against what training really stores. Outputs of the package are compared bit for bit
(``torch.equal``) with the model ``init_model`` builds from the same config and checkpoint, on a non-square input.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save

from transvae.apis import from_pretrained, init_model, save_pretrained
from transvae.apis.pretrained import PretrainedFormatError, export_pretrained
from transvae.engine.checkpoint_compat import CheckpointMismatchError
from transvae.engine.hooks import TransVAEEMAHook
from transvae.registry import MODELS
from transvae.utils.errors import UserInputError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

TINY_ARCH = dict(widths=[16, 16, 32, 32], depths=[1, 1, 1, 1], latent_channels=4, head_dim=16)  # as conftest.py
CNN_ARCH = dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4, attn_levels=[1],
                mid_attn=True, norm_cfg=dict(type='GN', num_groups=4))


def tiny_model_cfg() -> dict:
    return dict(type='VAE', arch=dict(TINY_ARCH), encoder=dict(type='TransVAEEncoder'),
                decoder=dict(type='TransVAEDecoder'), rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


def cnn_model_cfg() -> dict:
    return dict(type='VAE', arch=dict(CNN_ARCH), encoder=dict(type='CNNEncoder', down_cfg=dict(type='StridedConvDown')),
                decoder=dict(type='CNNDecoder', up_cfg=dict(type='InterpConvUp')),
                rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


MODELS_UNDER_TEST = {'transvae': tiny_model_cfg, 'cnn': cnn_model_cfg}


def _write_config(tmp_path, model_cfg: dict, name: str = 'tiny_vae.py') -> str:
    path = tmp_path / name
    path.write_text(f'model = {model_cfg!r}\n'
                    "train_cfg = dict(type='IterBasedTrainLoop', max_iters=100)\n"
                    "optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4))\n")
    return str(path)


def _ema_checkpoint(config: str, out: str, stats: bool = True) -> torch.nn.Module:
    """A checkpoint as ``TransVAEEMAHook`` saves it (EMA in ``state_dict``, live weights in ``ema_state_dict``);
    returns the live model."""
    torch.manual_seed(0)
    model = init_model(config)
    if stats:
        d = model.latent_channels
        model.set_latent_stats(torch.linspace(-0.5, 0.5, d), torch.linspace(0.5, 2.0, d))
    ema = MODELS.build(dict(type='TrainableEMA', momentum=0.5), default_args=dict(model=model))
    ema.update_parameters(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ema.update_parameters(model)  # the average now differs from the live weights
    hook = TransVAEEMAHook()
    hook.ema_model, hook.src_model = ema, model
    ckpt = {'meta': {'iter': 7, 'epoch': 0, 'experiment_name': 'tiny'},
            'state_dict': {k: v.clone() for k, v in model.state_dict().items()}}
    hook.before_save_checkpoint(None, ckpt)
    torch.save(ckpt, out)
    return model


def _image() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(2, 3, 48, 80, generator=g) * 2 - 1  # non-square


@torch.no_grad()
def _outputs(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    post = model.encode(x)
    z = post.mode()
    return z, model.decode(z), model.normalize_latent(z)


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = _image()
    for u, v in zip(_outputs(a, x), _outputs(b, x)):
        assert u.dtype == v.dtype and torch.equal(u, v)


# ---------------------------------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kind', sorted(MODELS_UNDER_TEST))
def test_export_round_trip_is_bit_identical_and_prefers_ema(tmp_path, kind):
    config = _write_config(tmp_path, MODELS_UNDER_TEST[kind]())
    ckpt = str(tmp_path / 'iter_7.pth')
    live = _ema_checkpoint(config, ckpt)
    reference = init_model(config, ckpt)  # state_dict: the EMA weights
    out = str(tmp_path / 'pkg')
    info = export_pretrained(config, ckpt, out)
    assert sorted(os.listdir(out)) == ['README.md', 'config.json', 'model.safetensors']
    assert info['weights'] == 'ema' and info['source_config'] == 'tiny_vae.py'
    assert info['checkpoint']['iter'] == 7
    assert info['parameters']['total'] == sum(p.numel() for p in reference.parameters())
    loaded = from_pretrained(out)
    assert not loaded.training
    _assert_same(loaded, reference)
    assert not torch.equal(_outputs(loaded, _image())[1], _outputs(live.eval(), _image())[1])  # EMA, not live
    # latent statistics: in config.json and in the weights
    assert info['latent_mean'] == pytest.approx(torch.linspace(-0.5, 0.5, 4).tolist())
    assert info['latent_std'] == pytest.approx(torch.linspace(0.5, 2.0, 4).tolist())
    assert torch.equal(loaded.latent_std, reference.latent_std) and float(loaded.latent_std[-1]) == 2.0
    # config.json is plain JSON with registered names; the card names the architecture and training
    on_disk = json.loads((tmp_path / 'pkg' / 'config.json').read_text())
    assert on_disk['model'] == {k: v for k, v in MODELS_UNDER_TEST[kind]().items()}
    assert on_disk['transvae_version'] and on_disk['torch_version'] == torch.__version__
    card = (tmp_path / 'pkg' / 'README.md').read_text()
    assert 'IterBasedTrainLoop' in card and 'weights: ema' in card and on_disk['model']['encoder']['type'] in card
    # --no-ema: the live weights
    out2 = str(tmp_path / 'pkg_live')
    assert export_pretrained(config, ckpt, out2, ema=False)['weights'] == 'model'
    _assert_same(from_pretrained(out2), live.eval())


def test_save_pretrained_of_init_model_and_plain_checkpoint(tmp_path):
    config = _write_config(tmp_path, tiny_model_cfg())
    torch.manual_seed(1)
    model = init_model(config)
    info = save_pretrained(model, str(tmp_path / 'pkg'), report='| metric | value |\n|---|---|\n| psnr | 12.5 |')
    assert info['weights'] == 'model' and info['latent_mean'] is None  # stats never set: not recorded
    _assert_same(from_pretrained(tmp_path / 'pkg'), model)
    assert '| psnr | 12.5 |' in (tmp_path / 'pkg' / 'README.md').read_text()
    # a plain checkpoint without EMA exports its state_dict
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'plain.pth')
    assert export_pretrained(config, str(tmp_path / 'plain.pth'), str(tmp_path / 'pkg2'))['weights'] == 'model'
    _assert_same(from_pretrained(str(tmp_path / 'pkg2')), model)


def test_gan_export_drops_training_only_modules(tmp_path):
    arch = dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4, attn_levels=[],
                mid_attn=False)
    gan = dict(type='VAEGAN', arch=arch, encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
               rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None),
               discriminator=dict(type='PatchGANDiscriminator', ndf=8), gan_loss=dict(type='HingeGANLoss'),
               disc_start=0)
    config = _write_config(tmp_path, gan)
    torch.manual_seed(0)
    model = init_model(config)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'gan.pth')
    info = export_pretrained(config, str(tmp_path / 'gan.pth'), str(tmp_path / 'pkg'))
    assert info['model']['discriminator'] is None
    assert not any(k.startswith('discriminator.') for k in load_file(str(tmp_path / 'pkg' / 'model.safetensors')))
    _assert_same(from_pretrained(str(tmp_path / 'pkg')), model.eval())


# ---------------------------------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def package(tmp_path):
    config = _write_config(tmp_path, tiny_model_cfg())
    torch.manual_seed(0)
    save_pretrained(init_model(config), str(tmp_path / 'pkg'))
    return tmp_path / 'pkg'


def _tamper_weights(pkg, change) -> None:
    sd = load_file(str(pkg / 'model.safetensors'))
    change(sd)
    (pkg / 'model.safetensors').write_bytes(save(sd))


def test_tampered_weights_are_clear_errors(package, tmp_path):
    key = next(k for k in load_file(str(package / 'model.safetensors')) if k.endswith('weight'))
    variants = {
        'shape': (lambda sd: sd.__setitem__(key, torch.zeros(3, 3)), key),
        'dtype': (lambda sd: sd.__setitem__(key, sd[key].half()), 'dtype'),
        'missing': (lambda sd: sd.pop(key), key),
    }
    for name, (change, expected) in variants.items():
        pkg = tmp_path / f'pkg_{name}'
        shutil.copytree(package, pkg)
        _tamper_weights(pkg, change)
        with pytest.raises(CheckpointMismatchError, match=expected.replace('.', r'\.')):
            from_pretrained(str(pkg))
    pkg = tmp_path / 'pkg_truncated'
    shutil.copytree(package, pkg)
    data = (pkg / 'model.safetensors').read_bytes()
    (pkg / 'model.safetensors').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointMismatchError, match='model.safetensors'):
        from_pretrained(str(pkg))


def test_bad_config_json_is_a_clear_error(package, tmp_path):
    cfg = json.loads((package / 'config.json').read_text())
    bad = copy.deepcopy(cfg)
    bad['model']['encoder']['type'] = 'TransVAEEncoderr'
    (package / 'config.json').write_text(json.dumps(bad))
    with pytest.raises(PretrainedFormatError, match='TransVAEEncoderr'):
        from_pretrained(str(package))
    (package / 'config.json').write_text('{"model": ')
    with pytest.raises(PretrainedFormatError, match='not valid JSON'):
        from_pretrained(str(package))
    (package / 'config.json').write_text(json.dumps({'model': cfg['model']}))  # no format marker
    with pytest.raises(PretrainedFormatError, match='not a transvae package'):
        from_pretrained(str(package))
    with pytest.raises(UserInputError, match='not found'):
        from_pretrained(str(tmp_path / 'nowhere'))


def test_export_refuses_output_over_an_input(tmp_path):
    config = _write_config(tmp_path, tiny_model_cfg())
    torch.manual_seed(0)
    torch.save({'state_dict': init_model(config).state_dict()}, tmp_path / 'm.pth')
    with pytest.raises(UserInputError):
        export_pretrained(config, str(tmp_path / 'm.pth'), str(tmp_path))  # would contain its inputs


# ---------------------------------------------------------------------------------------------------------------------
# outside the repository, and the command line
# ---------------------------------------------------------------------------------------------------------------------
def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = REPO  # the package itself, not configs/: the cwd is elsewhere
    return env


def test_cli_export_then_load_in_a_folder_without_configs(tmp_path):
    config = _write_config(tmp_path, cnn_model_cfg())
    ckpt = str(tmp_path / 'iter_7.pth')
    _ema_checkpoint(config, ckpt)
    (tmp_path / 'report.md').write_text('| PSNR | 9.87 |\n')
    out = tmp_path / 'exported'
    cli = os.path.join(REPO, 'tools', 'model_converters', 'export_pretrained.py')
    r = subprocess.run([sys.executable, cli, config, ckpt, str(out), '--report', str(tmp_path / 'report.md')],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'ema weights' in r.stdout and '| PSNR | 9.87 |' in (out / 'README.md').read_text()
    # a refusal is one error: line
    r = subprocess.run([sys.executable, cli, config, str(tmp_path / 'missing.pth'), str(tmp_path / 'x')],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr.strip().startswith('error:') and len(r.stderr.strip().splitlines()) == 1
    # the folder alone, elsewhere, in a fresh interpreter whose cwd has no configs/
    moved = tmp_path / 'elsewhere' / 'pkg'
    shutil.copytree(out, moved)
    os.remove(config)
    os.remove(ckpt)
    code = ('import sys, torch; torch.set_num_threads(int(sys.argv[3])); from transvae.apis import from_pretrained; '
            'm = from_pretrained(sys.argv[1]); '
            'g = torch.Generator().manual_seed(3); x = torch.rand(2, 3, 48, 80, generator=g) * 2 - 1; '
            'z = m.encode(x).mode(); torch.save({"z": z, "rec": m.decode(z)}, sys.argv[2])')
    run_dir = tmp_path / 'elsewhere'
    assert not (run_dir / 'configs').exists()
    r = subprocess.run([sys.executable, '-c', code, str(moved), str(tmp_path / 'out.pt'),
                        str(torch.get_num_threads())], cwd=run_dir, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = torch.load(tmp_path / 'out.pt', weights_only=True)
    here = from_pretrained(str(moved))
    with torch.no_grad():
        z = here.encode(_image()).mode()
        assert torch.equal(got['z'], z) and torch.equal(got['rec'], here.decode(z))


def test_safetensors_whose_header_length_starts_0x80_is_recognised(tmp_path):
    """safetensors starts with its header length (little-endian): a low byte 0x80 or the bytes 'PK' used to read as a
    legacy torch pickle / a zip in ``sniff_format``, so about one valid file in 32 was refused."""
    from transvae.engine.checkpoint_format import sniff_format
    hits = 0
    for n in range(1, 120):
        tensors = {f'layer{i}.weight': torch.zeros(1) for i in range(n)}
        blob = save(tensors)
        hits += blob[:1] == b'\x80'
        path = tmp_path / f'{n}.safetensors'
        path.write_bytes(blob)
        assert sniff_format(str(path)) == 'safetensors'
        assert load_file(str(path)).keys() == tensors.keys()
    assert hits  # the writer does produce such files
