"""Convert an original LDM / VA-VAE autoencoder checkpoint into a transvae model package (our CNN-VAE).

``python tools/model_converters/ldm_to_transvae.py CKPT OUT [--config LDM_YAML] [--norm-groups 32]
[--scaling-factor F] [--shift-factor F] [--trust-checkpoint]``

``CKPT``: a ``.ckpt`` / ``.pt`` / ``.pth`` (read with ``weights_only=True``: no pickled code runs unless
``--trust-checkpoint``) or ``.safetensors`` holding LDM keys (``encoder.down.0.block.0.conv1.weight``,
``quant_conv.weight`` ...), flat or under ``state_dict``; a whole Stable Diffusion checkpoint's VAE
(``first_stage_model.*``) is taken out of it. Training-only keys (``loss.*``: LPIPS + discriminator; VA-VAE's
``foundation_model.*`` / ``linear_proj.*``) are dropped and counted; any other key that is no weight of the
architecture is an error that lists it. The architecture is read off the weights (widths, depths, attention levels,
quant convs), or from ``--config`` (an LDM / VA-VAE autoencoder yaml, or a latent-diffusion yaml with
``first_stage_config``, whose ``scale_factor`` then becomes the latent normalisation unless ``--scaling-factor``).
``OUT`` is a package for ``transvae.apis.from_pretrained``; ``OUT/model.safetensors`` is the checkpoint of
``configs/benchmarks/vavae_f16d32.py``. Library side: :func:`transvae.models.adapters.vae_from_ldm`.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from transvae.apis.pretrained import save_pretrained
from transvae.apis.setup_env import register_all_modules
from transvae.engine.checkpoint_io import load_checkpoint_file
from transvae.engine.config_validation import config_errors
from transvae.models.adapters import ConversionError, ldm_autoencoder_params, ldm_state_dict_of, vae_from_ldm
from transvae.utils.cli_types import positive_float, positive_int
from transvae.utils.errors import InputNotFoundError
from transvae.utils.output_paths import check_outputs


def read_ldm_yaml(path: str) -> tuple[dict, float | None]:
    """``(autoencoder params, scale_factor or None)`` of an LDM / VA-VAE yaml (``yaml.safe_load``)."""
    import yaml
    if not osp.isfile(path):
        raise InputNotFoundError(f'LDM config not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            cfg = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConversionError(f'{path} is not valid YAML: {e}') from None
    if not isinstance(cfg, dict):
        raise ConversionError(f'{path} is not a YAML mapping')
    return ldm_autoencoder_params(cfg, name=path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='LDM / VA-VAE autoencoder checkpoint -> transvae model package')
    p.add_argument('checkpoint', help='.ckpt / .pt / .pth / .safetensors with LDM autoencoder keys')
    p.add_argument('out', help='output package folder')
    p.add_argument('--config', help='LDM / VA-VAE yaml (model.params.ddconfig + embed_dim, or a latent-diffusion '
                                    'yaml); default: the architecture is read off the weights')
    p.add_argument('--norm-groups', type=positive_int, default=32,
                   help='GroupNorm groups (32 in LDM; not stored in the weights)')
    p.add_argument('--scaling-factor', type=positive_float,
                   help='latent scaling factor of the diffusion model using this VAE (SD: 0.18215); default: the '
                        "yaml's scale_factor, else 1 (no scaling: VA-VAE's LightningDiT computes its statistics "
                        'from the latents)')
    p.add_argument('--shift-factor', type=float, default=0.0, help='latent shift (default 0)')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the package; 0 on success (a refusal exits with one ``error:`` line)."""
    args = parse_args(argv)
    register_all_modules()
    with config_errors(exit_on_error=True):
        check_outputs({'OUT': args.out}, {'CKPT': args.checkpoint, '--config': args.config}, dirs=['OUT'],
                      exclusive=['OUT'])
        params, scale = read_ldm_yaml(args.config) if args.config else (None, None)
        scaling = args.scaling_factor if args.scaling_factor is not None else (scale if scale is not None else 1.0)
        state = ldm_state_dict_of(load_checkpoint_file(args.checkpoint, trusted=args.trust_checkpoint),
                                  name=args.checkpoint)
        model, model_cfg, dropped = vae_from_ldm(state, params, norm_groups=args.norm_groups, scaling_factor=scaling,
                                                 shift_factor=args.shift_factor, name=args.checkpoint)
        info = save_pretrained(model, args.out, config={'model': model_cfg},
                               checkpoint_meta={'config_file': f'LDM checkpoint {osp.abspath(args.checkpoint)}'})
    arch = model_cfg['arch']
    print(f"LDM autoencoder {args.checkpoint} -> CNN-VAE package {args.out} ({info['parameters']['total']:,} "
          f"parameters; ch {arch['base_channels']}, ch_mult {arch['channel_mults']}, {arch['num_res_blocks']} "
          f"ResBlocks per level, attention at levels {arch['attn_levels']}, latent {arch['latent_channels']} "
          f'channels; scaling_factor {scaling}, shift_factor {args.shift_factor})', flush=True)
    if dropped:
        print('dropped (not part of the autoencoder): ' + ', '.join(f'{k}* {n} keys' for k, n in sorted(dropped.items())),
              flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
