"""Convert an official hustvl/LightningDiT checkpoint into this project's DiT checkpoint and model config.

``python -m projects.lightningdit.tools.convert_official_checkpoint OFFICIAL.pt OUT.pth [--ema | --model]
[--arch XL/1 | --num-heads H] [--num-classes K] [--config-out OUT_config.py] [--base-config FIG6_CONFIG] [--overwrite]``

``OFFICIAL.pt`` is a checkpoint of the reference's ``train.py`` (``{'model', 'ema', 'opt', 'config'}``) or a bare
state dict, read with ``weights_only=True``. ``OUT.pth`` holds the EMA weights (``--model``: the live ones) in
``state_dict`` under ``backbone.``, as this project's DiT runs store them, so ``tools/test.py CONFIG OUT.pth`` loads
it; the model config (written to ``--config-out``, and printed) builds the matching ``LatentFlowModel`` with the
column-first sin-cos table and the reference's sampling protocol; with ``--base-config`` it inherits data,
evaluation and runtime from that config, so ``tools/test.py OUT_config.py OUT.pth`` runs. ``--arch`` defaults to the
checkpoint config's ``model.model_type``. A checkpoint with unknown or missing keys, another shape or a position
table that is not the reference's is refused with one ``error:`` line listing them. The library side is
:mod:`projects.lightningdit.lightningdit.models.official_checkpoint`.
"""
from __future__ import annotations

import argparse
import sys

from transvae.engine.config_validation import config_errors
from transvae.utils.cli_types import positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Official LightningDiT checkpoint -> our DiT checkpoint + model config')
    p.add_argument('checkpoint',
                   help="the official checkpoint (.pt: {'model', 'ema', 'opt', 'config'} or a state dict)")
    p.add_argument('out', help='our checkpoint to write (.pth)')
    which = p.add_mutually_exclusive_group()
    which.add_argument('--ema', dest='weights', action='store_const', const='ema',
                       help='convert the EMA weights (the default where the checkpoint has them)')
    which.add_argument('--model', dest='weights', action='store_const', const='model',
                       help='convert the live (non-EMA) weights')
    size = p.add_mutually_exclusive_group()
    size.add_argument('--arch', help="B/1, B/2, L/2, XL/1, XL/2 (or 'LightningDiT-XL/1'); default: the "
                                     "checkpoint config's model.model_type")
    size.add_argument('--num-heads', type=positive_int,
                      help="attention heads of a custom size (no --arch): depth, width and patch come from the "
                           "weights (e.g. the reference's LightningDiT-1p0B/1: 24 heads)")
    p.add_argument('--num-classes', type=positive_int,
                   help="real classes (default: the checkpoint config's data.num_classes, else the label table minus "
                        'the null row)')
    p.add_argument('--config-out', help='model config to write (default: OUT without extension + _config.py)')
    p.add_argument('--base-config', help='a config (e.g. a Fig. 6 config of the same latent shape) the written one '
                                         'inherits all but the model from, so tools/test.py runs it directly')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Convert; 0 on success (a refusal exits with one ``error:`` line)."""
    args = parse_args(argv)
    with config_errors(exit_on_error=True):
        import projects.lightningdit.lightningdit  # noqa: F401  (registers the DiT)
        from projects.lightningdit.lightningdit.models.official_checkpoint import convert_official_checkpoint
        from transvae.apis import register_all_modules
        register_all_modules()
        info = convert_official_checkpoint(args.checkpoint, args.out, weights=args.weights, arch=args.arch,
                                           num_classes=args.num_classes, num_heads=args.num_heads,
                                           config_out=args.config_out,
                                           overwrite=args.overwrite, base_config=args.base_config)
    diffs = ', '.join(f'{k} {v:.2g}' for k, v in info['table_max_abs_diff'].items())
    print(f"{args.checkpoint} ({info['weights']} weights, {info['parameters']:,} parameters) -> {info['out']}; "
          f"model config -> {info['config_out']}; fixed tables equal ours to max |diff| {diffs}")
    for note in info['notes']:
        print(f'note: {note}')
    print(info['config_text'], end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
