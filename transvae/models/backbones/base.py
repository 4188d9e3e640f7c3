"""What every encoder and decoder exposes to the VAE: its forward as a list of segments, and its initialisation.

A backbone's forward is an explicit sequence of :class:`Segment` s (stem, then each sampler and stage, then head), in
the spirit of timm's ``forward_intermediates``: ``forward`` runs them in order, and exact tiling
(``models/autoencoders/exact_plans.py``) cuts the list into a convolutional part run in tiles and a part run on the
whole map, so a new backbone made of segments is tiled exactly without code of its own.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

InitCfg = dict | list | None


class Segment(NamedTuple):
    """One step of a backbone's forward: a view over modules the backbone owns (state-dict keys are unchanged).

    Attributes:
        name: the module path when the segment is one module (``'stages.2'``, ``'downs.0'``), else its role
            (``'stem'``, ``'head'``).
        fn: ``(B, C, H, W) -> (B, C', H', W')``, the previous segment's output to the next one's input. It runs
            ``modules`` and, between them, only parameter-free point-wise or channel operations (the DC shortcuts),
            so the segment is spatially local whenever its modules are.
        modules: the modules ``fn`` runs (a container whose forward only chains its children may be listed by its
            children).
        resamples: ``fn`` changes the spatial size (a sampler, a strided patch embedding, an up-sampling head).
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    modules: tuple[nn.Module, ...]
    resamples: bool = False

    @classmethod
    def of(cls, name: str, *modules: nn.Module, resamples: bool = False) -> Segment:
        """The segment that runs ``modules`` one after the other (exactly the module when there is one)."""
        if len(modules) == 1:
            return cls(name, modules[0], modules, resamples)

        def chain(x: Tensor) -> Tensor:
            for m in modules:
                x = m(x)
            return x
        return cls(name, chain, modules, resamples)


def run_segments(segments: Sequence[Segment], x: Tensor, channels_last: bool = False) -> Tensor:
    """Run ``segments`` in order (the identity for none); with ``channels_last`` (ignored under ``torch.compile``)
    on channels-last memory, handing back a contiguous NCHW tensor. A backbone's forward and each part of an exact
    tiling plan run through here, so the parts compute what the forward computes, bit for bit."""
    cl = channels_last and not torch.compiler.is_compiling()
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    for seg in segments:
        x = seg.fn(x)
    return x.contiguous() if cl else x


class _BackboneBase(BaseModule):
    """mmengine ``BaseModule`` whose forward is :meth:`segments` run in order, with the explicit initialisation rule.

    Weights are initialised when the module is built, by each layer's own documented rule: PyTorch's defaults for
    ``Conv2d`` / ``Linear`` (Kaiming-uniform, a = sqrt(5)), ones / zeros for norms, ``LearnableAPE`` truncated normal
    (std 0.02). Every paper model trains from this, and :meth:`init_weights` without ``init_cfg`` leaves it untouched
    (the Runner calls it at the start of training; re-drawing here would change every seeded result).
    ``init_cfg`` applies mmengine initialisers on top, e.g. ``dict(type='TruncNormal', layer='Linear', std=0.02)`` or
    ``dict(type='Pretrained', checkpoint='enc.pth')``.

    With ``channels_last`` the forward runs on channels-last (NHWC) memory: the input is copied to it once, every
    layer keeps it (convolutions, norms and point-wise ops preserve the layout; a ``TransformerStage`` reads and
    writes NHWC maps as token views with no copy), and the output is returned as a contiguous NCHW tensor. The
    result equals the NCHW forward up to float rounding (different convolution kernels; ~6e-6 absolute on TransVAE-T
    at 256²); parameters and state-dict keys are unchanged. :meth:`segments` run one by one (exact tiling) keep
    whatever layout they are given. Under ``torch.compile`` the forward stays NCHW and the compiler plans the layout:
    AOTAutograd traces this layout change with NCHW strides, and eager kernels (``aot_eager``) then fail on a view of
    the DC shortcut's gradient.

    Args:
        init_cfg: mmengine weight-initialisation config(s), or ``None`` for the construction-time weights.
        channels_last: run the forward on channels-last memory (see above).
    """

    def __init__(self, init_cfg: InitCfg = None, channels_last: bool = False) -> None:
        super().__init__(init_cfg=init_cfg)
        self.channels_last = channels_last

    def segments(self) -> list[Segment]:
        """The forward as segments, in the order they run: stem, each sampler and stage, head."""
        raise NotImplementedError(f'{type(self).__name__} does not list its forward as segments')

    def forward(self, x: Tensor) -> Tensor:
        """Run :meth:`segments` in order (shapes: :class:`EncoderBase`, :class:`DecoderBase`); the output is a
        contiguous NCHW tensor whatever ``channels_last`` is."""
        return run_segments(self.segments(), x, self.channels_last)

    @property
    def is_staged(self) -> bool:
        """Whether ``forward`` is exactly :meth:`segments` run in order (what exact tiling cuts): a class that
        overrides ``forward`` (e.g. a wrapped third-party model) or lists no segments is not."""
        cls = type(self)
        return cls.forward is _BackboneBase.forward and cls.segments is not _BackboneBase.segments


class EncoderBase(_BackboneBase):
    """An image encoder ``(B, C_img, H, W) -> (B, 2d, H/f, W/f)`` (mean and log-variance stacked on channels).

    Subclasses set ``in_channels`` (``C_img``, 3), ``downsample_factor`` (f) and ``latent_channels`` (d), list their
    forward in :meth:`segments` and return their last conv from ``get_last_layer()`` (the weight the VF loss's
    adaptive weight differentiates against).
    """

    in_channels: int
    downsample_factor: int
    latent_channels: int

    def get_last_layer(self) -> nn.Parameter:
        raise NotImplementedError


class DecoderBase(_BackboneBase):
    """A latent decoder ``(B, d, h, w) -> (B, 3, f*h, f*w)`` in ``[-1, 1]`` (linear output).

    Subclasses list their forward in :meth:`segments`; ``get_last_layer()`` returns the final conv weight (for the
    GAN's adaptive weight).
    """

    upsample_factor: int
    latent_channels: int

    def get_last_layer(self) -> nn.Parameter:
        raise NotImplementedError
