"""Export the model weights of a checkpoint to ``.safetensors`` (no pickle; loadable anywhere without running code).

``python tools/model_converters/to_safetensors.py CKPT [OUT] [--trust-checkpoint] [--force]``

* ``CKPT``: a transvae / mmengine ``.pth`` (its ``state_dict``) or a plain state dict, a local path or a URL
  (downloaded and verified as every remote checkpoint, ``transvae.engine.remote_checkpoint``). A file that needs
  arbitrary unpickling (e.g. written before transvae saved checkpoints safely) is refused unless
  ``--trust-checkpoint``: use it only for files you wrote or trust, since unpickling can run code.
* ``OUT`` (default ``CKPT`` with ``.safetensors``): the weights, plus metadata ``transvae_meta`` (JSON: config file,
  experiment name, iteration, config text) that ``transvae.apis.init_model`` and the tools use to name the config
  a checkpoint was trained with. Written atomically; an existing file is kept unless ``--force``.

Load it with ``init_model(config, 'model.safetensors')`` or ``tools/test.py CONFIG model.safetensors``.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Export checkpoint weights to .safetensors')
    p.add_argument('checkpoint', help='.pth checkpoint')
    p.add_argument('out', nargs='?', help='output .safetensors (default: beside the checkpoint)')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a checkpoint that needs arbitrary unpickling (it can run code)')
    p.add_argument('--force', action='store_true', help='overwrite an existing output file')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from transvae.engine.checkpoint_io import UntrustedCheckpointError, export_safetensors, load_checkpoint_file
    if '://' in args.checkpoint and not args.out:
        raise SystemExit('error: give OUT (a local .safetensors path) when CKPT is a URL')
    out = args.out or osp.splitext(args.checkpoint)[0] + '.safetensors'
    if not out.endswith('.safetensors'):
        raise SystemExit(f'error: the output must end in .safetensors, got {out!r}')
    if osp.exists(out) and not args.force:
        raise SystemExit(f'error: {out} exists (use --force to overwrite)')
    from transvae.utils.output_paths import OutputPathError, check_outputs
    try:  # never over the input (even with --force, through a symlink or a hard link), and writable
        check_outputs({'OUT': out}, {'checkpoint': args.checkpoint})
    except OutputPathError as e:
        raise SystemExit(f'error: {e}') from None
    from transvae.engine.checkpoint_compat import CheckpointFileError
    try:
        ckpt = load_checkpoint_file(args.checkpoint, trusted=args.trust_checkpoint)
    except (UntrustedCheckpointError, CheckpointFileError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}') from None
    try:
        n = export_safetensors(ckpt, out)
    except TypeError as e:  # a state-dict entry that is not a tensor
        raise SystemExit(f'error: {args.checkpoint}: {e}; only tensors can be exported') from None
    print(f'{n} tensors -> {out}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
