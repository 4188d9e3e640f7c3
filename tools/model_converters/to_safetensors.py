"""Export the model weights of a checkpoint to ``.safetensors`` (no pickle; loadable anywhere without running code).

``python tools/model_converters/to_safetensors.py CKPT [OUT] [--trust-checkpoint] [--force]``

* ``CKPT``: a transvae / mmengine ``.pth`` (its ``state_dict``) or a plain state dict, a local path or a URL
  (downloaded and verified as every remote checkpoint, ``transvae.engine.remote_checkpoint``). A file that needs
  arbitrary unpickling (e.g. written before transvae saved checkpoints safely) is refused unless
  ``--trust-checkpoint``: use it only for files you wrote or trust, since unpickling can run code.
* ``OUT`` (default ``CKPT`` with ``.safetensors``): the weights, plus metadata ``transvae_meta`` (JSON: config file,
  experiment name, iteration, config text) that ``transvae.apis.init_model`` and the tools use to name the config
  a checkpoint was trained with. Written atomically; an existing file is kept unless ``--force``.

Load it with ``init_model(config, 'model.safetensors')`` or ``tools/test.py CONFIG model.safetensors``. The converter
is :func:`transvae.apis.convert.checkpoint_to_safetensors`; a refusal ends in one ``error:`` line (exit status 1).
"""
from __future__ import annotations

import argparse
import sys

from transvae.apis.convert import checkpoint_to_safetensors
from transvae.engine.config_validation import config_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Export checkpoint weights to .safetensors')
    p.add_argument('checkpoint', help='.pth checkpoint')
    p.add_argument('out', nargs='?', help='output .safetensors (default: beside the checkpoint)')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    p.add_argument('--force', action='store_true', help='overwrite an existing output file')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Convert CKPT to OUT; 0 on success (a refusal exits with one ``error:`` line)."""
    args = parse_args(argv)
    with config_errors(exit_on_error=True):
        n, out = checkpoint_to_safetensors(args.checkpoint, args.out, trusted=args.trust_checkpoint,
                                           force=args.force)
    print(f'{n} tensors -> {out}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
