"""Write a trained CNN-VAE as a diffusers ``AutoencoderKL`` folder that diffusers' own ``from_pretrained`` loads.

``python tools/model_converters/transvae_to_diffusers.py PACKAGE OUT`` or
``python tools/model_converters/transvae_to_diffusers.py CONFIG CKPT OUT [--trust-checkpoint] [--sample-size 256]``

The source is a transvae package (``export_pretrained.py`` / ``diffusers_to_transvae.py`` / ``ldm_to_transvae.py``
output) or a config with its checkpoint; the model must be our CNN-VAE (``VAE`` with ``CNNEncoder`` /
``CNNDecoder``, LDM's samplers and GroupNorm): other models are refused naming what is supported. ``OUT`` gets
``config.json`` and ``diffusion_pytorch_model.safetensors`` (float32, each written atomically); the VAE's
``latent_mean`` / ``latent_std`` become ``shift_factor`` / ``scaling_factor`` (per channel: ``latents_mean`` /
``latents_std`` with ``scaling_factor`` 1). Library side: :func:`transvae.models.adapters.vae_to_diffusers`.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys

from torch import nn

from transvae.apis.setup_env import register_all_modules
from transvae.engine.atomic_io import atomic_write, atomic_write_text
from transvae.engine.config_validation import config_errors
from transvae.models.adapters import vae_to_diffusers
from transvae.utils.cli_types import positive_int
from transvae.utils.errors import UserInputError
from transvae.utils.output_paths import check_outputs

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'diffusion_pytorch_model.safetensors'


class ConverterUsageError(UserInputError, ValueError):
    """The positional arguments name neither a package nor a config with its checkpoint."""


def load_source(source: str, checkpoint: str | None, trusted: bool) -> nn.Module:
    """The model of a package folder (``checkpoint`` None) or of ``source`` (a config) with ``checkpoint``."""
    if checkpoint is None:
        if not osp.isdir(source):
            raise ConverterUsageError(f'{source} is not a package folder; for a config give its checkpoint too: '
                                      'transvae_to_diffusers.py CONFIG CKPT OUT')
        from transvae.apis.pretrained import from_pretrained
        return from_pretrained(source)
    from transvae.apis.entry import build_model, load_config
    from transvae.evaluation.protocol import strip_training_modules
    cfg = load_config(source)
    strip_training_modules(cfg)
    return build_model(cfg, checkpoint, trusted=trusted, allow_partial=True,
                       tool_hint='`python tools/model_converters/transvae_to_diffusers.py {config} {ckpt} OUT`')


def write_diffusers_dir(config: dict, state: dict, out: str) -> None:
    """``OUT/config.json`` and ``OUT/diffusion_pytorch_model.safetensors``, each atomically."""
    from safetensors.torch import save
    os.makedirs(out, exist_ok=True)
    blob = save({k: v.contiguous() for k, v in state.items()}, metadata={'format': 'pt'})
    atomic_write(osp.join(out, WEIGHTS_NAME), lambda f: f.write(blob))
    atomic_write_text(osp.join(out, CONFIG_NAME), json.dumps(config, indent=2) + '\n')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='transvae CNN-VAE (package, or config + checkpoint) -> diffusers '
                                            'AutoencoderKL folder')
    p.add_argument('paths', nargs='+', metavar='PATH', help='PACKAGE OUT, or CONFIG CKPT OUT')
    p.add_argument('--sample-size', type=positive_int, default=256,
                   help="diffusers' sample_size (the image size its tiling starts at; default 256)")
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    args = p.parse_args(argv)
    if len(args.paths) not in (2, 3):
        p.error(f'expected PACKAGE OUT or CONFIG CKPT OUT, got {len(args.paths)} paths')
    return args


def main(argv: list[str] | None = None) -> int:
    """Write the diffusers folder; 0 on success (a refusal exits with one ``error:`` line)."""
    args = parse_args(argv)
    source, ckpt, out = (args.paths[0], None, args.paths[1]) if len(args.paths) == 2 else args.paths
    register_all_modules()
    with config_errors(exit_on_error=True):
        check_outputs({'OUT': out}, {'source': source, 'checkpoint': ckpt}, dirs=['OUT'], exclusive=['OUT'])
        model = load_source(source, ckpt, args.trust_checkpoint)
        config, state = vae_to_diffusers(model, sample_size=args.sample_size)
        write_diffusers_dir(config, state, out)
    print(f"CNN-VAE {source} -> diffusers AutoencoderKL {out} ({sum(v.numel() for v in state.values()):,} "
          f"parameters; block_out_channels {config['block_out_channels']}, latent {config['latent_channels']} "
          f"channels; scaling_factor {config['scaling_factor']}, shift_factor {config['shift_factor']})", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
