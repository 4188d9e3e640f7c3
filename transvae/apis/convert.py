"""Export the model weights of a checkpoint to ``.safetensors`` (no pickle; loadable anywhere without running code).

:func:`checkpoint_to_safetensors` is the converter behind ``tools/model_converters/to_safetensors.py``: it checks the
output path, reads the checkpoint through transvae's safe loader and writes the weights with
:func:`transvae.engine.checkpoint_io.export_safetensors` (atomically, with the ``transvae_meta`` metadata that
``init_model`` and the tools use to name the config a checkpoint was trained with).
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from transvae.engine.checkpoint_io import export_safetensors, load_checkpoint_file
from transvae.utils.errors import UserInputError
from transvae.utils.output_paths import check_outputs

__all__ = ['ConversionError', 'checkpoint_to_safetensors']


class ConversionError(UserInputError, ValueError):
    """The output path or the checkpoint's content cannot be exported (the message says what to change)."""


def checkpoint_to_safetensors(checkpoint: str, out: Optional[str] = None, trusted: bool = False,
                              force: bool = False) -> tuple[int, str]:
    """Write the weights of ``checkpoint`` to ``out``.

    Args:
        checkpoint: a transvae / mmengine ``.pth`` (its ``state_dict``) or a plain state dict, a local path or a URL
            (downloaded and verified as every remote checkpoint, ``transvae.engine.remote_checkpoint``).
        out: the ``.safetensors`` file (default: ``checkpoint`` with that suffix; required for a URL).
        trusted: allow a checkpoint that needs arbitrary unpickling (it can run code).
        force: overwrite an existing ``out`` (never the checkpoint itself, not through a link either).

    Returns:
        ``(number of tensors written, out)``.

    Raises:
        UserInputError: every refusal (output path, existing output, untrusted or malformed checkpoint, a state-dict
            entry that is not a tensor), with a message naming the file.
    """
    if '://' in checkpoint and not out:
        raise ConversionError('give OUT (a local .safetensors path) when CKPT is a URL')
    out = out or osp.splitext(checkpoint)[0] + '.safetensors'
    if not out.endswith('.safetensors'):
        raise ConversionError(f'the output must end in .safetensors, got {out!r}')
    if osp.exists(out) and not force:
        raise ConversionError(f'{out} exists (use --force to overwrite)')
    check_outputs({'OUT': out}, {'checkpoint': checkpoint})  # never over the input, and writable
    ckpt = load_checkpoint_file(checkpoint, trusted=trusted)  # a missing file: InputNotFoundError
    try:
        n = export_safetensors(ckpt, out)
    except TypeError as e:  # a state-dict entry that is not a tensor
        raise ConversionError(f'{checkpoint}: {e}; only tensors can be exported') from None
    return n, out
