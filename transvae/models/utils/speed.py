"""Run-time speed switches for a built VAE (no model file changes): channels-last, ``torch.compile`` of the encoder
and decoder, autocast, SDPA backend selection and gradient checkpointing.

Each switch is opt-in and measured by ``tools/analysis_tools/benchmark.py`` (``--channels-last``, ``--compile``,
``--amp``, ``--sdpa-backend``, ``--grad-checkpoint``).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

SDPA_BACKENDS = ('auto', 'math', 'flash', 'efficient', 'cudnn')
AMP_DTYPES = {'fp32': None, 'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def apply_channels_last(model: nn.Module) -> nn.Module:
    """Store every 4D parameter / buffer in ``torch.channels_last`` (in place); feed inputs through
    :func:`to_channels_last` too. TransVAE and the CNN-VAE already run their activations channels-last inside
    (``channels_last`` of ``models/backbones/base.py``), so for them this changes only the weights' layout; it is
    the switch for other models (the SD-VAE reference of the benchmark, ViT, Swin)."""
    return model.to(memory_format=torch.channels_last)


def to_channels_last(x: Tensor) -> Tensor:
    """``x.contiguous(memory_format=torch.channels_last)`` for 4D tensors, identity otherwise."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def compile_autoencoder(model: nn.Module, mode: str | None = None, dynamic: bool | None = False,
                        fullgraph: bool = False, backend: str = 'inductor') -> nn.Module:
    """``torch.compile`` the encoder and the decoder separately, in place (``nn.Module.compile``).

    Compiling the two networks rather than the wrapper keeps ``model.encode`` / ``decode`` / ``reconstruct``, the
    padding logic and tiling in eager Python, and keeps the state-dict keys unchanged (no ``_orig_mod.`` prefix).

    Args:
        model: a VAE with ``encoder`` and ``decoder``.
        mode: ``None`` (default), ``'reduce-overhead'``, ``'max-autotune'``, ``'max-autotune-no-cudagraphs'``.
        dynamic: passed to ``torch.compile``. Static (``False``) by default: the encoder and the decoder run the
            same ``forward`` (``_BackboneBase``), whose compiled code torch caches per code object, so under
            torch's automatic dynamic shapes (``None``) the decoder's first call, seeing other sizes than the
            encoder's, compiled with symbolic sizes, and inductor (torch 2.14, CPU) failed to lower it
            (``cannot determine truth value of Relational``). Static graphs recompile once per input size, and
            torch's recompile limit per code object (``torch._dynamo.config.recompile_limit``, 8) is shared by the
            encoder and the decoder: beyond it a call runs eagerly.
        fullgraph, backend: passed to ``torch.compile``.
    """
    kw = dict(dynamic=dynamic, fullgraph=fullgraph, backend=backend)
    if mode not in (None, 'default'):
        kw['mode'] = mode
    model.encoder.compile(**kw)
    model.decoder.compile(**kw)
    return model


def amp_dtype(name: str | None) -> torch.dtype | None:
    """``'bf16'`` / ``'fp16'`` -> dtype; ``None`` / ``'fp32'`` -> ``None``."""
    if name is None:
        return None
    if name not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {list(AMP_DTYPES)}, got '{name}'")
    return AMP_DTYPES[name]


def autocast(device: str | torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, dtype)`` for ``amp`` in (``'bf16'``, ``'fp16'``), a no-op otherwise.

    bf16 autocast works on CPU too (oneDNN bf16 matmuls / convs, AMX or AVX512-BF16 where available)."""
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@contextlib.contextmanager
def sdpa_backend(name: str | None) -> Iterator[None]:
    """Restrict ``F.scaled_dot_product_attention`` to one backend inside the context.

    ``'auto'`` / ``None``: PyTorch's choice (on CPU the flash kernel for fp32 / bf16 self-attention without a mask);
    ``'math'``: the reference kernel, which materialises the ``N x N`` scores; ``'flash'``, ``'efficient'``,
    ``'cudnn'``: fused kernels (``efficient`` / ``cudnn`` are CUDA only).
    """
    if name in (None, 'auto'):
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel
    table = {'math': SDPBackend.MATH, 'flash': SDPBackend.FLASH_ATTENTION,
             'efficient': SDPBackend.EFFICIENT_ATTENTION, 'cudnn': SDPBackend.CUDNN_ATTENTION}
    if name not in table:
        raise ValueError(f"sdpa backend must be one of {SDPA_BACKENDS}, got '{name}'")
    with sdpa_kernel(table[name]):
        yield


def set_grad_checkpointing(model: nn.Module, enabled: bool = True) -> int:
    """Switch activation checkpointing of every stage that has a ``with_cp`` flag (``ConvStage``,
    ``TransformerStage``); returns the number of stages switched. Only affects training (inputs requiring grad)."""
    n = 0
    for mod in model.modules():
        if hasattr(mod, 'with_cp') and isinstance(getattr(mod, 'with_cp'), bool):
            mod.with_cp = enabled
            n += 1
    return n


__all__ = ['apply_channels_last', 'to_channels_last', 'compile_autoencoder', 'amp_dtype', 'autocast', 'sdpa_backend',
           'set_grad_checkpointing', 'SDPA_BACKENDS', 'AMP_DTYPES']
