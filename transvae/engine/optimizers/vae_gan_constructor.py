"""The two optimizers of VAE + GAN training (:class:`~transvae.models.autoencoders.VAEGAN`): generator, discriminator.

mmengine 0.10.7 ships no multi-optimizer constructor (mmagic's ``MultiOptimWrapperConstructor`` is not part of
mmengine), so :class:`VAEGANOptimWrapperConstructor` builds the :class:`~mmengine.optim.OptimWrapperDict`:

* ``generator``: every trainable parameter of the model except the discriminator's (encoder, decoder, the NLL's
  log-variance, the VF projection);
* ``discriminator``: the discriminator's trainable parameters.

Parameters with ``requires_grad=False`` (the frozen stage-2 encoder, the VF projection in stage 2) are in neither
optimizer. The LPIPS and foundation networks are hidden from ``parameters()`` altogether.

Model wrapper: use mmengine's ``MMSeparateDistributedDataParallel`` (each trainable top-level submodule is wrapped
in its own DDP; frozen ones are only moved to the device), e.g.
``model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
find_unused_parameters=False)``.
"""
from __future__ import annotations

import copy

from mmengine.optim import OptimWrapperDict
from torch import nn

from transvae.models.utils.unwrap import unwrap_model
from transvae.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

__all__ = ['VAEGANOptimWrapperConstructor', 'split_gan_params']


def split_gan_params(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters of ``model``: ``{'generator': [...], 'discriminator': [...]}`` (no frozen ones)."""
    model = unwrap_model(model)
    disc = getattr(model, 'discriminator', None)
    disc_params = list(unwrap_model(disc).parameters()) if disc is not None else []
    disc_ids = {id(p) for p in disc_params}
    return dict(
        generator=[p for p in model.parameters() if id(p) not in disc_ids and p.requires_grad],
        discriminator=[p for p in disc_params if p.requires_grad])


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class VAEGANOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with ``generator`` and ``discriminator`` optim wrappers.

    Config::

        optim_wrapper = dict(
            constructor='VAEGANOptimWrapperConstructor',
            generator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9),
                                                               weight_decay=0.0)),
            discriminator=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.5, 0.9),
                                                                   weight_decay=0.0)))

    Each entry is an ordinary optim-wrapper config (``type``, ``optimizer``, ``clip_grad``, ``accumulative_counts``,
    AMP options ...). Other top-level keys are shared by both entries: wrapper keys are defaults (an entry's own keys
    win); a top-level ``optimizer`` without ``type`` is a partial override that wins over the entries' optimizer keys
    (so a schedule preset or ``--cfg-options optim_wrapper.optimizer.lr=2e-4`` applies to both optimizers), one with
    ``type`` is a default the entries refine.
    ``paramwise_cfg`` is not supported (one parameter group per optimizer). A model without a discriminator gets
    only the ``generator`` entry.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if paramwise_cfg:
            raise ValueError('VAEGANOptimWrapperConstructor does not support paramwise_cfg')
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        if 'generator' not in cfg:
            raise ValueError(f'optim_wrapper needs a `generator` (and optionally a `discriminator`) entry; got '
                             f'{sorted(cfg)}')
        shared = {k: cfg.pop(k) for k in list(cfg) if k not in ('generator', 'discriminator')}
        self.optim_wrapper_cfg = {}
        for name, entry in cfg.items():
            merged = {**copy.deepcopy(shared), **dict(entry)}
            shared_opt, own_opt = shared.get('optimizer'), entry.get('optimizer')
            if isinstance(shared_opt, dict) and isinstance(own_opt, dict):
                if 'type' in shared_opt:  # a complete shared optimizer: a default the entry refines
                    merged['optimizer'] = {**dict(shared_opt), **dict(own_opt)}
                else:  # a partial override (a preset / --cfg-options optim_wrapper.optimizer.lr=...): it wins
                    merged['optimizer'] = {**dict(own_opt), **dict(shared_opt)}
            self.optim_wrapper_cfg[name] = merged

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        params = split_gan_params(model)
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            if not params[name]:
                if name == 'discriminator':
                    continue  # no discriminator in this model (stage 1)
                raise ValueError('the model has no trainable generator parameters')
            cfg = copy.deepcopy(dict(cfg))
            optimizer = OPTIMIZERS.build(dict(cfg.pop('optimizer'), params=params[name]))
            cfg.setdefault('type', 'OptimWrapper')
            wrappers[name] = OPTIM_WRAPPERS.build(dict(cfg, optimizer=optimizer))
        return OptimWrapperDict(**wrappers)
