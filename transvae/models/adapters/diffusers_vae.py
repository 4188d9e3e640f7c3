"""A transvae :class:`VAE` as the ``vae`` of a diffusers pipeline (the outward direction; diffusers is not imported).

:class:`DiffusersVAEWrapper` gives any transvae VAE (TransVAE, CNN-VAE, ViT-VAE, Swin-VAE, a VAEGAN, an adapter) the
part of diffusers' ``AutoencoderKL`` interface that pipelines, ``VaeImageProcessor`` and training scripts use::

    vae = DiffusersVAEWrapper(init_model(config, checkpoint))
    pipe = DiTPipeline(transformer=dit, vae=vae, scheduler=scheduler)

* ``encode(x, return_dict=True)`` -> ``.latent_dist`` (``sample(generator)``, ``mode()``, ``mean`` / ``std`` /
  ``var`` / ``logvar``), or ``(latent_dist,)`` with ``return_dict=False``;
* ``decode(z, return_dict=True, generator=None)`` -> ``.sample``, or ``(sample,)``;
* ``forward(sample, sample_posterior=False, return_dict=True, generator=None)`` (encode then decode);
* ``config`` (read-only, attribute and key access): ``scaling_factor``, ``shift_factor``, ``latents_mean`` /
  ``latents_std`` (``None``), ``block_out_channels``, ``latent_channels``, ``in_channels`` / ``out_channels``,
  ``sample_size``, ``force_upcast`` (and, for the reader, ``downsample_factor``, ``latent_norm``,
  ``transvae_class``);
* ``enable_tiling(**kw)`` / ``disable_tiling()`` (our tiling, exact by default), ``enable_slicing()`` /
  ``disable_slicing()``, ``use_tiling`` / ``use_slicing``; ``dtype`` / ``device``; ``to()`` and the rest of
  ``nn.Module``.

Images. Our ``VAE.encode`` takes and ``VAE.decode`` returns ``(B, 3, H, W)`` in ``[-1, 1]`` (decode unclamped),
exactly diffusers' convention, so images pass through unchanged: no conversion. Sizes that are not a multiple of
the compression factor ``f`` are reflect-padded by our ``encode`` (latent ``ceil(H / f)``; diffusers' strided
convolutions floor instead); ``decode`` returns ``f * h``.

Compression factor. Pipelines compute ``vae_scale_factor = 2 ** (len(config.block_out_channels) - 1)``; only the
length is read. ``block_out_channels`` is the encoder's stage widths where it has one per factor-2 level (TransVAE,
Swin-VAE with ``patch_size=1``), otherwise ``latent_channels`` repeated ``log2(f) + 1`` times (a placeholder: a
CNN-VAE keeps no width list, a ViT-VAE has one width at any ``f``). ``f`` must be a power of two.

Latent normalisation. diffusers pipelines normalise latents with two scalars: ``(z - shift_factor) *
scaling_factor`` after ``encode`` and ``z / scaling_factor + shift_factor`` before ``decode`` (DiT, SD and SDXL
read only ``scaling_factor``; SD3 / FLUX also ``shift_factor``). Our statistics (``VAE.set_latent_stats``:
``latent_mean`` / ``latent_std``, identity until set) are per channel: ``(z - mean_c) / std_c``, which two scalars
cannot express. ``latent_norm`` says what the wrapper does:

* ``'inside'`` (default): ``scaling_factor = 1.0``, ``shift_factor = 0.0``; ``encode`` returns the normalised
  posterior (``VAE.normalize_latent`` of its mean and samples, ``std / std_c``) and ``decode`` applies
  ``VAE.denormalize_latent`` first. Exact per-channel statistics in every pipeline, whichever of the two scalars it
  reads; the latents a pipeline sees are the ones our DiT is trained on. The statistics are read live from the
  model's buffers at every call. With identity statistics, ``encode`` / ``decode`` are our model's, bit for bit.
* ``'scalar'``: the statistics must be the same for every channel (as diffusers' own VAEs'); they become
  ``shift_factor = mean``, ``scaling_factor = 1 / std`` (read when wrapped: set them before wrapping) and
  ``encode`` / ``decode`` are the raw model's, as in ``AutoencoderKL``. Per-channel statistics are refused
  (``ValueError``). A non-zero shift is lost by the pipelines that ignore ``shift_factor`` (DiT, SD, SDXL),
  exactly as with diffusers' FLUX VAE.
* ``'none'``: the statistics are ignored: raw model, ``1.0`` / ``0.0``.

``latents_mean`` / ``latents_std`` (which the SDXL pipelines apply when set) stay ``None`` in every mode, so no
pipeline normalises twice.

The model is put in eval mode (as diffusers' ``from_pretrained`` leaves its models; our tiling runs only in eval
mode) and is the wrapper's submodule ``model``: ``to()`` and ``requires_grad_()`` reach it through the wrapper, and
``encode`` / ``decode`` first run an accelerate offload hook attached to the wrapper (``_hf_hook.pre_forward``, as
diffusers' ``apply_forward_hook`` does for ``AutoencoderKL``), so ``enable_model_cpu_offload`` can move it. ``DiffusionPipeline.save_pretrained`` cannot serialise the wrapper (it is no diffusers ``ModelMixin``):
save the transvae model itself.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..autoencoders.exact_plans import exact_cut
from ..autoencoders.vae import VAE
from ..distributions import DiagonalGaussian

__all__ = ['DiffusersVAEWrapper', 'WrappedLatentDist', 'EncoderOutput', 'DecoderOutput', 'LATENT_NORM_MODES']

#: what :class:`DiffusersVAEWrapper` does with the model's latent statistics (module docstring)
LATENT_NORM_MODES = ('inside', 'scalar', 'none')


class _FrozenConfig(dict):
    """A read-only dict with attribute access (diffusers' ``FrozenDict``): ``config.scaling_factor``,
    ``config['scaling_factor']``, ``hasattr(config, 'latents_mean')``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"'config' has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f'the wrapper config is read-only (cannot set {name!r})')

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError('the wrapper config is read-only')

    def __reduce__(self) -> tuple:  # copy / deepcopy / pickle rebuild it whole (item assignment is refused)
        return type(self), (dict(self),)

    __setitem__ = __delitem__ = update = pop = popitem = setdefault = clear = _readonly  # type: ignore[assignment]


class _Output:
    """A diffusers ``BaseOutput``-like record: fields by attribute, by key and by position; ``to_tuple()``."""

    _fields: tuple[str, ...] = ()

    def __init__(self, *values: Any) -> None:
        for name, value in zip(self._fields, values):
            object.__setattr__(self, name, value)

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def keys(self) -> tuple[str, ...]:
        return self._fields

    def __getitem__(self, key: int | str | slice) -> Any:
        return getattr(self, key) if isinstance(key, str) else self.to_tuple()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({", ".join(self._fields)})'


class EncoderOutput(_Output):
    """What ``encode`` returns (diffusers' ``AutoencoderKLOutput``): ``latent_dist``."""

    _fields = ('latent_dist',)
    latent_dist: WrappedLatentDist


class DecoderOutput(_Output):
    """What ``decode`` returns (diffusers' ``DecoderOutput``): ``sample`` ``(B, 3, H, W)`` in ``[-1, 1]``."""

    _fields = ('sample',)
    sample: Tensor


def _offload_hook(method: Callable) -> Callable:
    """Run an accelerate offload hook attached to the module before ``method`` (diffusers' ``apply_forward_hook``:
    model CPU offload moves a VAE to the GPU when ``encode`` / ``decode`` are called, not only ``forward``)."""

    @functools.wraps(method)
    def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        hook = getattr(self, '_hf_hook', None)
        if hook is not None and hasattr(hook, 'pre_forward'):
            hook.pre_forward(self)
        return method(self, *args, **kwargs)

    return wrapper


def _randn(shape: Sequence[int], generator: torch.Generator | list[torch.Generator] | None,
           device: torch.device, dtype: torch.dtype) -> Tensor:
    """Standard normal noise drawn as diffusers' ``randn_tensor`` draws it: one generator for the batch or one per
    item; a CPU generator for a tensor elsewhere draws on the CPU and moves the result."""
    if isinstance(generator, (list, tuple)):
        if len(generator) == 1:
            generator = generator[0]
        else:
            if len(generator) != shape[0]:
                raise ValueError(f'{len(generator)} generators for a batch of {shape[0]}')
            return torch.cat([_randn((1, *shape[1:]), g, device, dtype) for g in generator])
    draw_device = device
    if generator is not None and generator.device.type != device.type:
        if generator.device.type != 'cpu':
            raise ValueError(f'cannot draw {device.type} noise with a {generator.device.type} generator')
        draw_device = torch.device('cpu')
    return torch.randn(tuple(shape), generator=generator, device=draw_device, dtype=dtype).to(device)


class WrappedLatentDist:
    """``encode(x).latent_dist``: our posterior, normalised per channel in ``'inside'`` mode.

    Args:
        posterior: the model's :class:`DiagonalGaussian`.
        normalizer: the VAE whose ``normalize_latent`` / ``latent_std`` apply (``'inside'`` mode), or ``None``
            (raw posterior).
    """

    def __init__(self, posterior: DiagonalGaussian, normalizer: VAE | None = None) -> None:
        self.posterior = posterior
        self.normalizer = normalizer
        self.deterministic = posterior.deterministic

    def _normalize(self, z: Tensor) -> Tensor:
        return z if self.normalizer is None else self.normalizer.normalize_latent(z)

    def _scale(self) -> Tensor:
        return self.normalizer.latent_std.view(1, -1, 1, 1)

    @property
    def mean(self) -> Tensor:
        """Mean ``(B, d, h, w)`` (normalised in ``'inside'`` mode)."""
        return self._normalize(self.posterior.mean)

    @property
    def std(self) -> Tensor:
        return self.posterior.std if self.normalizer is None else self.posterior.std / self._scale()

    @property
    def var(self) -> Tensor:
        return self.posterior.var if self.normalizer is None else self.std.pow(2)

    @property
    def logvar(self) -> Tensor:
        if self.normalizer is None:
            return self.posterior.logvar
        return self.posterior.logvar - 2 * torch.log(self._scale())

    def sample(self, generator: torch.Generator | list[torch.Generator] | None = None) -> Tensor:
        """``mean + std * eps`` of our posterior (``eps`` drawn as diffusers draws it), then normalised."""
        post = self.posterior
        if post.deterministic:
            return self._normalize(post.mean)
        eps = _randn(post.mean.shape, generator, post.mean.device, post.mean.dtype)
        return self._normalize(post.mean + post.std * eps)

    def mode(self) -> Tensor:
        """The posterior mean (normalised in ``'inside'`` mode)."""
        return self._normalize(self.posterior.mode())


class DiffusersVAEWrapper(nn.Module):
    """A transvae :class:`VAE` behind diffusers' ``AutoencoderKL`` interface (module docstring: the mapping).

    Args:
        model: the VAE (any :class:`VAE`: TransVAE, CNN-VAE, ViT-VAE, Swin-VAE, VAEGAN, an adapter); put in eval
            mode.
        latent_norm: ``'inside'`` (default), ``'scalar'`` or ``'none'``: how the model's per-channel latent
            statistics reach the pipeline (module docstring).
        sample_size: ``config.sample_size``, the image size the model was trained at (256 in the paper's recipes;
            no pipeline's output size depends on it).
        force_upcast: ``config.force_upcast`` (pipelines that read it run a float16 VAE in float32).
        block_out_channels: override ``config.block_out_channels`` (length ``log2(f) + 1``).
    """

    def __init__(self, model: VAE, latent_norm: str = 'inside', sample_size: int = 256, force_upcast: bool = False,
                 block_out_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(model, VAE):
            raise TypeError(f'DiffusersVAEWrapper wraps a transvae VAE, got {type(model).__name__}')
        if latent_norm not in LATENT_NORM_MODES:
            raise ValueError(f'latent_norm must be one of {LATENT_NORM_MODES}, got {latent_norm!r}')
        self.model = model.eval()
        self.latent_norm = latent_norm
        self.use_slicing = False
        f, d = model.downsample_factor, model.latent_channels
        levels = int(round(math.log2(f))) if f >= 1 else -1
        if levels < 0 or 2 ** levels != f:
            raise ValueError(f'diffusers expresses the compression factor as 2 ** (len(block_out_channels) - 1); '
                             f'this model has f={f}, not a power of two')
        if block_out_channels is None:
            widths = getattr(model.encoder, 'widths', None)
            block_out_channels = (tuple(widths) if widths is not None and len(widths) == levels + 1
                                  else (d,) * (levels + 1))
        elif len(block_out_channels) != levels + 1:
            raise ValueError(f'block_out_channels must have log2(f) + 1 = {levels + 1} entries (f={f}), '
                             f'got {len(block_out_channels)}')
        scaling, shift = self._scalars(model, latent_norm)
        self.config = _FrozenConfig(
            in_channels=int(getattr(model.encoder, 'in_channels', 3)), out_channels=3,
            block_out_channels=tuple(int(c) for c in block_out_channels), latent_channels=d,
            sample_size=int(sample_size), scaling_factor=scaling, shift_factor=shift, latents_mean=None,
            latents_std=None, force_upcast=bool(force_upcast), downsample_factor=f, latent_norm=latent_norm,
            transvae_class=type(model).__name__)

    @staticmethod
    def _scalars(model: VAE, latent_norm: str) -> tuple[float, float]:
        """``(scaling_factor, shift_factor)`` for ``latent_norm``; ``'scalar'`` refuses per-channel statistics."""
        if latent_norm != 'scalar':
            return 1.0, 0.0
        mean, std = model.latent_mean.detach().float().cpu(), model.latent_std.detach().float().cpu()
        if not (torch.all(mean == mean[0]) and torch.all(std == std[0])):
            raise ValueError(
                "latent_norm='scalar' needs one latent mean / std for every channel (diffusers' scaling_factor and "
                f'shift_factor are scalars); this model has per-channel statistics (mean {mean.tolist()}, std '
                f"{std.tolist()}): use latent_norm='inside', which applies them inside encode / decode")
        if not float(std[0]) > 0:
            raise ValueError(f'latent std must be positive, got {float(std[0])}')
        return 1.0 / float(std[0]), float(mean[0])

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def use_tiling(self) -> bool:
        return self.model.tiling is not None

    def _normalizes(self) -> bool:
        """Whether encode / decode apply the model's statistics: ``'inside'`` mode and non-identity statistics
        (read now, from the model's buffers)."""
        if self.latent_norm != 'inside':
            return False
        return not (bool(torch.all(self.model.latent_mean == 0)) and bool(torch.all(self.model.latent_std == 1)))

    # ------------------------------------------------------------------ diffusers API
    @_offload_hook
    def encode(self, x: Tensor, return_dict: bool = True) -> EncoderOutput | tuple[WrappedLatentDist]:
        """Posterior of images ``x`` ``(B, 3, H, W)`` in ``[-1, 1]`` over ``(B, d, ceil(H/f), ceil(W/f))``."""
        if self.use_slicing and x.shape[0] > 1:
            parts = [self.model.encode(xi) for xi in x.split(1)]
            posterior = DiagonalGaussian(torch.cat([torch.cat([p.mean, p.logvar], dim=1) for p in parts]))
        else:
            posterior = self.model.encode(x)
        dist = WrappedLatentDist(posterior, self.model if self._normalizes() else None)
        return EncoderOutput(dist) if return_dict else (dist,)

    @_offload_hook
    def decode(self, z: Tensor, return_dict: bool = True,
               generator: torch.Generator | None = None) -> DecoderOutput | tuple[Tensor]:
        """Images ``(B, 3, f*h, f*w)`` in ``[-1, 1]`` (unclamped) of latents ``z`` ``(B, d, h, w)``; ``generator`` is
        accepted for diffusers' signature and unused (the decoder is deterministic)."""
        if self._normalizes():
            z = self.model.denormalize_latent(z)
        if self.use_slicing and z.shape[0] > 1:
            x = torch.cat([self.model.decode(zi) for zi in z.split(1)])
        else:
            x = self.model.decode(z)
        return DecoderOutput(x) if return_dict else (x,)

    def forward(self, sample: Tensor, sample_posterior: bool = False, return_dict: bool = True,
                generator: torch.Generator | None = None) -> DecoderOutput | tuple[Tensor]:
        """Reconstruct ``sample`` (posterior mean, or a sample with ``sample_posterior``), as ``AutoencoderKL``."""
        dist = self.encode(sample).latent_dist
        z = dist.sample(generator) if sample_posterior else dist.mode()
        return self.decode(z, return_dict=return_dict)

    def enable_tiling(self, tile: int | str = 'auto', overlap: int | None = None,
                      memory_budget_mb: float | None = None, mode: str = 'exact', ramp: str = 'linear') -> None:
        """Our tiling (``VAE.enable_tiling``; exact by default: equal to the whole image up to float rounding)
        for every later ``encode`` / ``decode``; diffusers' no-argument call gets ``tile='auto'``.

        Raises:
            ExactTilingUnsupported: now, not after a pipeline's last denoising step, for ``mode='exact'`` on a
                model whose image side is not local (ViT-VAE, Swin-VAE): pass ``mode='blend'`` (approximate).
        """
        if mode == 'exact':
            for backbone in (self.model.encoder, self.model.decoder):
                exact_cut(backbone)  # raises ExactTilingUnsupported where exact tiling cannot run
        self.model.enable_tiling(tile=tile, overlap=overlap, memory_budget_mb=memory_budget_mb, mode=mode, ramp=ramp)

    def disable_tiling(self) -> None:
        self.model.disable_tiling()

    def enable_slicing(self) -> None:
        """Encode / decode a batch one image at a time (lower peak memory)."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False
