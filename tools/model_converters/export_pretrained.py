"""Export a trained model as a self-describing package folder (``config.json``, ``model.safetensors``, ``README.md``).

``python tools/model_converters/export_pretrained.py CONFIG CKPT OUT [--report report.md] [--trust-checkpoint]
[--no-ema] [--latent-dir DIR]``

The package loads with ``transvae.apis.from_pretrained(OUT)``: no ``configs/`` tree, no pickle, no config code. EMA
weights are exported where the checkpoint has them (``--no-ema``: the live weights); ``--report`` copies a
``tools/test.py`` Markdown report into the model card; ``--latent-dir`` (the folder ``tools/extract_latents.py`` wrote
with this config and checkpoint, checked against its provenance) stores its latent statistics in the package, the
same values the DiT normalises with. The library side is :mod:`transvae.apis.pretrained`; a refusal
ends in one ``error:`` line (exit status 1).
"""
from __future__ import annotations

import argparse
import sys

from transvae.apis.pretrained import export_pretrained
from transvae.engine.config_validation import config_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Export config + checkpoint as a model package folder')
    p.add_argument('config', help='config file the checkpoint was trained with')
    p.add_argument('checkpoint', help='.pth or .safetensors checkpoint')
    p.add_argument('out', help='output package folder')
    p.add_argument('--report', help='tools/test.py report (Markdown) for the model card')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    p.add_argument('--no-ema', action='store_true', help='export the live weights even where EMA weights exist')
    p.add_argument('--latent-dir', help='latent folder of this VAE (tools/extract_latents.py --out): its '
                   'statistics become the package\'s latent_mean / latent_std')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the package; 0 on success (a refusal exits with one ``error:`` line)."""
    args = parse_args(argv)
    with config_errors(exit_on_error=True):
        info = export_pretrained(args.config, args.checkpoint, args.out, report=args.report,
                                 trusted=args.trust_checkpoint, ema=not args.no_ema, latent_dir=args.latent_dir)
    print(f"{info['model_type']} ({info['parameters']['total']:,} parameters, {info['weights']} weights) -> "
          f'{args.out}', flush=True)
    if info.get('latent_stats'):
        print(f"latent statistics of {info['latent_stats']['latent_dir']} "
              f"({info['latent_stats'].get('convention', 'unrecorded')} convention)", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
