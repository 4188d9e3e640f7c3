"""Measure each LDM / AutoencoderKL conversion against the external code, at the published full-size architectures.

``python tools/model_converters/conversion_fidelity.py [--size 64] [--lightningdit-repo DIR] [--seed 0]``

Every row builds the external model with random weights (norm affines and biases perturbed, so a swapped parameter
shows), converts it as the converters do (the library functions behind ``tools/model_converters/*_to_*.py``) and
prints, for the same input (``--size``², float32 or ``--float64``, CPU), the largest ``|ours - theirs|`` of the posterior mean, the
posterior log-variance and the decoding, with the largest ``|theirs|`` for scale:

* ``sd`` / ``sdxl`` / ``sd35`` / ``flux``: diffusers' ``AutoencoderKL`` from the published ``vae/config.json``
  (:data:`~transvae.models.adapters.DIFFUSERS_VAE_CONFIGS`) -> ours (``vae_from_diffusers``);
* ``ldm``: an SD checkpoint's ``first_stage_model.*`` (LDM keys, 1x1-conv attention, ``loss.*`` keys) -> ours
  (``vae_from_ldm``), against diffusers' single-file conversion (``convert_ldm_vae_checkpoint``) loaded in diffusers;
* ``vavae``: the official VA-VAE ``tokenizer/autoencoder.py`` of hustvl/LightningDiT (``--lightningdit-repo`` or
  ``$LIGHTNINGDIT_OFFICIAL_REPO``: a checkout; the row is skipped without one) -> its state dict -> ours;
* ``out``: our CNN-VAE-T f16d32 -> ``vae_to_diffusers`` -> a folder loaded by diffusers' ``from_pretrained``.

Needs ``diffusers`` (``requirements/optional.txt``).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import os.path as osp
import sys
import tempfile
import time

import torch
from torch import nn

from transvae.apis.setup_env import register_all_modules
from transvae.models.adapters import (DIFFUSERS_VAE_CONFIGS, to_ldm_state_dict, vae_from_diffusers, vae_from_ldm,
                                      vae_to_diffusers)
from transvae.registry import MODELS


def perturb(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or name.endswith('bias'):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def measure(ours: nn.Module, encode, decode, latent_channels: int, factor: int, size: int, seed: int) -> dict:
    """Max |diff| of posterior mean / logvar / decoding; ``encode(x) -> (mean, logvar)``, ``decode(z) -> x``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    z = torch.randn(1, latent_channels, size // factor, size // factor, generator=g)
    dtype = next(ours.parameters()).dtype
    x, z = x.to(dtype), z.to(dtype)
    with torch.no_grad():
        post = ours.encode(x)
        mean, logvar = encode(x)
        out, out_ref = ours.decode(z), decode(z)
    return dict(mean=(post.mean - mean).abs().max().item(), logvar=(post.logvar - logvar).abs().max().item(),
                decode=(out - out_ref).abs().max().item(), scale=max(mean.abs().max().item(),
                                                                     out_ref.abs().max().item()))


def diffusers_encode_decode(ref: nn.Module):
    def enc(x):
        d = ref.encode(x).latent_dist
        return d.mean, d.logvar
    return enc, (lambda z: ref.decode(z).sample)


def row_diffusers(name: str, size: int, seed: int) -> dict:
    import diffusers
    cfg = DIFFUSERS_VAE_CONFIGS[name]
    torch.manual_seed(seed)
    ref = perturb(diffusers.AutoencoderKL(**{k: v for k, v in cfg.items() if not k.startswith('_')}), seed)
    ours, _ = vae_from_diffusers(cfg, ref.state_dict(), name=name)
    return measure(ours, *diffusers_encode_decode(ref), cfg['latent_channels'], 8, size, seed)


def row_ldm(size: int, seed: int) -> dict:
    import diffusers
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    from transvae.models.adapters import native_config_from_diffusers
    torch.manual_seed(seed)
    src = perturb(MODELS.build(native_config_from_diffusers(DIFFUSERS_VAE_CONFIGS['sd'])), seed)
    ckpt = {f'first_stage_model.{k}': v for k, v in to_ldm_state_dict(src).items()}
    ckpt['first_stage_model.loss.logvar'] = torch.zeros(())
    ours, _, dropped = vae_from_ldm(ckpt, scaling_factor=0.18215)
    assert dropped == {'first_stage_model.loss.': 1}, dropped
    cfg = {k: v for k, v in DIFFUSERS_VAE_CONFIGS['sd'].items() if not k.startswith('_')}
    ref = diffusers.AutoencoderKL(**cfg).eval()
    ref.load_state_dict(convert_ldm_vae_checkpoint(ckpt, cfg), strict=True)
    return measure(ours, *diffusers_encode_decode(ref), 4, 8, size, seed)


def row_vavae(repo: str, size: int, seed: int) -> dict:
    path = osp.join(repo, 'tokenizer', 'autoencoder.py')
    spec = importlib.util.spec_from_file_location('lightningdit_official_autoencoder', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(seed)
    ref = perturb(mod.AutoencoderKL(embed_dim=32, ch_mult=(1, 1, 2, 2, 4)), seed)  # VA-VAE f16d32, as vavae.py
    ours, model_cfg, _ = vae_from_ldm(ref.state_dict())

    def enc(x):
        p = ref.encode(x)
        return p.mean, p.logvar
    assert model_cfg['arch']['attn_levels'] == [4]
    return measure(ours, enc, ref.decode, 32, 16, size, seed)


def row_out(size: int, seed: int) -> dict:
    import diffusers
    from transvae.apis.entry import load_config
    cfg = load_config('configs/_base_/models/cnn-vae-t_f16d32.py')
    model_cfg = dict(type='VAE', arch=cfg.model.arch, encoder=cfg.model.encoder, decoder=cfg.model.decoder)
    torch.manual_seed(seed)
    ours = perturb(MODELS.build(model_cfg), seed)
    ours.set_latent_stats(torch.full((32,), 0.1), torch.full((32,), 2.0))
    config, state = vae_to_diffusers(ours)
    with tempfile.TemporaryDirectory() as tmp:
        import json

        from safetensors.torch import save_file
        save_file(state, osp.join(tmp, 'diffusion_pytorch_model.safetensors'))
        with open(osp.join(tmp, 'config.json'), 'w') as f:
            json.dump(config, f)
        ref = diffusers.AutoencoderKL.from_pretrained(tmp).eval()
    assert (ref.config.scaling_factor, ref.config.shift_factor) == (0.5, 0.1)
    return measure(ours, *diffusers_encode_decode(ref), 32, 16, size, seed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description='max |diff| of each LDM / AutoencoderKL conversion vs the external code')
    p.add_argument('--size', type=int, default=64, help='input image size (a multiple of 16; default 64)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--lightningdit-repo', default=os.environ.get('LIGHTNINGDIT_OFFICIAL_REPO'),
                   help='a hustvl/LightningDiT checkout (for the VA-VAE row; default $LIGHTNINGDIT_OFFICIAL_REPO)')
    p.add_argument('--rows', nargs='+', default=['sd', 'sdxl', 'sd35', 'flux', 'ldm', 'vavae', 'out'])
    p.add_argument('--float64', action='store_true',
                   help='build every model in float64 (the differences left are then float64 rounding)')
    args = p.parse_args(argv)
    if args.size % 16:
        p.error('--size must be a multiple of 16')
    register_all_modules()
    if args.float64:
        torch.set_default_dtype(torch.float64)
    print(f'# conversion fidelity: {torch.get_default_dtype()}, CPU ({torch.get_num_threads()} threads), {args.size}x{args.size} input, '
          f'seed {args.seed}, torch {torch.__version__}', flush=True)
    print('| format | reference | max abs diff: posterior mean / logvar / decoding | max abs value | s |')
    print('| --- | --- | --- | --- | --- |')
    refs = {'sd': "diffusers AutoencoderKL (published SD 1.x config)", 'sdxl': 'diffusers AutoencoderKL (SDXL config)',
            'sd35': 'diffusers AutoencoderKL (SD3.5 config)', 'flux': 'diffusers AutoencoderKL (FLUX.1 config)',
            'ldm': 'diffusers convert_ldm_vae_checkpoint (SD first_stage_model)',
            'vavae': 'official LightningDiT tokenizer/autoencoder.py (VA-VAE f16d32)',
            'out': 'diffusers AutoencoderKL.from_pretrained of our export (CNN-VAE-T f16d32)'}
    for row in args.rows:
        t = time.time()
        if row == 'vavae' and not args.lightningdit_repo:
            print(f'| vavae | {refs[row]} | skipped: no --lightningdit-repo / $LIGHTNINGDIT_OFFICIAL_REPO | | |')
            continue
        r = (row_diffusers(row, args.size, args.seed) if row in DIFFUSERS_VAE_CONFIGS else
             row_ldm(args.size, args.seed) if row == 'ldm' else
             row_vavae(args.lightningdit_repo, args.size, args.seed) if row == 'vavae' else
             row_out(args.size, args.seed))
        print(f"| {row} | {refs[row]} | {r['mean']:.2e} / {r['logvar']:.2e} / {r['decode']:.2e} | {r['scale']:.2f} | "
              f'{time.time() - t:.0f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
