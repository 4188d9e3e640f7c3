"""Convert a diffusers ``AutoencoderKL`` folder (SD / SDXL / SD3.5 / FLUX VAE) into a transvae model package.

``python tools/model_converters/diffusers_to_transvae.py DIFFUSERS_DIR OUT``

``DIFFUSERS_DIR``: the VAE folder (``config.json`` + ``diffusion_pytorch_model.safetensors``, or ``.bin`` read
without unpickling code), or a whole pipeline folder with a ``vae/`` sub-folder. ``OUT`` is a package
(``transvae.apis.from_pretrained(OUT)``; ``OUT/model.safetensors`` is also the checkpoint of
``configs/benchmarks/{sd,sdxl,sd35,flux}-vae_*.py`` for ``tools/test.py`` and ``tools/extract_latents.py``): our
CNN-VAE, the only implementation of the architecture, with the VAE's weights and its ``scaling_factor`` /
``shift_factor`` as the per-channel ``latent_mean`` / ``latent_std``. Library side:
:func:`transvae.models.adapters.vae_from_diffusers`; a refusal ends in one ``error:`` line (exit status 1).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from transvae.apis.pretrained import save_pretrained
from transvae.apis.setup_env import register_all_modules
from transvae.engine.checkpoint_compat import state_dict_of
from transvae.engine.checkpoint_io import load_checkpoint_file
from transvae.engine.config_validation import config_errors
from transvae.models.adapters import ConversionError, vae_from_diffusers
from transvae.utils.errors import InputNotFoundError
from transvae.utils.files import read_json_object
from transvae.utils.output_paths import check_outputs

WEIGHT_FILES = ('diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.bin')


def read_diffusers_dir(path: str) -> tuple[str, dict, dict]:
    """``(vae folder, config dict, state dict)`` of a diffusers VAE folder (or a pipeline folder's ``vae/``)."""
    if not osp.isdir(path):
        raise InputNotFoundError(f'diffusers VAE folder not found: {path}')
    if not osp.isfile(osp.join(path, 'config.json')) and osp.isfile(osp.join(path, 'vae', 'config.json')):
        path = osp.join(path, 'vae')
    cfg_file = osp.join(path, 'config.json')
    if not osp.isfile(cfg_file):
        raise InputNotFoundError(f'{path} is not a diffusers VAE folder: it has no config.json (nor vae/config.json)')
    config = read_json_object(cfg_file, ConversionError)
    if config.get('format') == 'transvae-pretrained':
        raise ConversionError(f'{path} is a transvae package already: load it with transvae.apis.from_pretrained, or '
                              'write it out with tools/model_converters/transvae_to_diffusers.py')
    weights = next((osp.join(path, w) for w in WEIGHT_FILES if osp.isfile(osp.join(path, w))), None)
    if weights is None:
        raise InputNotFoundError(f'{path} has no weights: expected {" or ".join(WEIGHT_FILES)}')
    return path, config, state_dict_of(load_checkpoint_file(weights))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='diffusers AutoencoderKL folder -> transvae model package (CNN-VAE)')
    p.add_argument('diffusers_dir', help='diffusers VAE folder (config.json + diffusion_pytorch_model.safetensors), '
                                         'or a pipeline folder with vae/')
    p.add_argument('out', help='output package folder')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the package; 0 on success (a refusal exits with one ``error:`` line)."""
    args = parse_args(argv)
    register_all_modules()
    with config_errors(exit_on_error=True):
        check_outputs({'OUT': args.out}, {'DIFFUSERS_DIR': args.diffusers_dir}, dirs=['OUT'], exclusive=['OUT'])
        src, config, state = read_diffusers_dir(args.diffusers_dir)
        model, model_cfg = vae_from_diffusers(config, state, name=src)
        info = save_pretrained(model, args.out, config={'model': model_cfg},
                               checkpoint_meta={'config_file': f'diffusers AutoencoderKL {osp.abspath(src)}'})
    print(f"diffusers AutoencoderKL {src} -> CNN-VAE package {args.out} ({info['parameters']['total']:,} parameters, "
          f"latent {info['latent_channels']} channels, f{info['downsample_factor']}; scaling_factor "
          f"{config.get('scaling_factor', 0.18215)}, shift_factor {config.get('shift_factor')})", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
