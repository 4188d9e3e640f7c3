"""Refuse a DiT whose latent shape, class count or VAE does not match its training data, before the first step."""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Any

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from transvae.engine.config_validation import ConfigValueError
from transvae.registry import HOOKS


def _inner(dataset: Any) -> Any:
    """The dataset that carries ``latent_shape`` through mmengine / torch wrappers (``dataset`` / ``datasets``)."""
    seen = 0
    while not hasattr(dataset, 'latent_shape') and seen < 8:
        inner = getattr(dataset, 'dataset', None)
        if inner is None:
            subs = getattr(dataset, 'datasets', None)
            inner = subs[0] if subs else None
        if inner is None:
            return dataset
        dataset, seen = inner, seen + 1
    return dataset


def check_latent_data(model: Any, dataset: Any, what: str) -> None:
    """Raise a ``ConfigValueError`` naming both values when ``dataset``'s latents ``(C, H, W)`` are not the
    ``model.latent_shape`` (``backbone.in_channels``, ``latent_size``) or its labels exceed the model's classes.

    Datasets without ``latent_shape`` (and models without one) are not checked.
    """
    model = model.module if is_model_wrapper(model) else model
    ds = _inner(dataset)
    want, got = getattr(model, 'latent_shape', None), getattr(ds, 'latent_shape', None)
    if want is None or got is None:
        return
    want, got = tuple(int(x) for x in want), tuple(int(x) for x in got)
    root = getattr(ds, 'data_root', None)
    src = f' in {root}' if root else ''
    if want[0] != got[0]:
        raise ConfigValueError(
            f'the DiT takes latents with {want[0]} channels (model.backbone.in_channels={want[0]}), the {what} '
            f'latents{src} have {got[0]} (shape {got}): use the latents of the VAE the DiT is configured for, or set '
            f'model.backbone.in_channels={got[0]}')
    if want[1:] != got[1:]:
        size = got[1] if got[1] == got[2] else list(got[1:])
        raise ConfigValueError(
            f'the DiT samples {want[1]}x{want[2]} latents (model.latent_size={list(want[1:])}), the {what} latents'
            f'{src} are {got[1]}x{got[2]} (shape {got}): set model.latent_size={size} or extract the latents at the '
            'resolution the DiT is configured for')
    num_classes = getattr(getattr(model, 'backbone', None), 'num_classes', None)
    labels = getattr(ds, 'labels', None)
    if num_classes is not None and labels is not None and len(labels):
        hi = int(labels.max()) if hasattr(labels, 'max') else int(max(labels))
        if hi >= int(num_classes):
            raise ConfigValueError(
                f'the {what} latents{src} have labels up to {hi}, the DiT has model.backbone.num_classes={num_classes}')


def _configured_vaes(cfg: Any) -> list[tuple[str, dict]]:
    """``(where, {vae_config, vae_checkpoint, vae_preset})`` of every VAE the DiT config names: the test evaluator
    (``GenerationFIDMetric``) and hooks (``LatentSampleGridHook``) that decode with one."""
    found = []
    ev = cfg.get('test_evaluator') if hasattr(cfg, 'get') else None
    if isinstance(ev, dict) and ev.get('vae_config'):
        found.append(('test_evaluator', ev))
    for i, h in enumerate(cfg.get('custom_hooks') or [] if hasattr(cfg, 'get') else []):
        if isinstance(h, dict) and h.get('vae_config'):
            found.append((f'custom_hooks[{i}] ({h.get("type")})', h))
    return found


def check_latent_vae(cfg: Any, dataset: Any, what: str) -> int:
    """Refuse ``dataset``'s latents when the VAE recorded in their folder (checkpoint sha256, model config) is not
    the VAE the DiT config decodes with (:func:`_configured_vaes`; :func:`transvae.apis.latents.check_latents_vae`,
    a ``LatentProvenanceError`` naming both).

    A configured VAE whose config or checkpoint file does not exist yet is not checked (its consumer refuses it
    when built); a folder without provenance (an official LightningDiT folder) is used with a warning.

    Returns:
        How many configured VAEs were checked.
    """
    from transvae.apis.entry import load_config
    from transvae.apis.latents import check_latents_vae
    from transvae.evaluation.protocol import none_ckpt
    ds = _inner(dataset)
    root, layout = getattr(ds, 'data_root', None), getattr(ds, 'layout', None)
    if root is None or layout is None:
        return 0
    provenance = layout.provenance(root)
    checked = 0
    for where, spec in _configured_vaes(cfg):
        config, ckpt = spec['vae_config'], none_ckpt(spec.get('vae_checkpoint'))
        if not osp.isfile(config) or (ckpt is not None and '://' not in ckpt and not osp.isfile(ckpt)):
            continue
        vae_cfg = load_config(config, spec.get('vae_preset'))
        if not check_latents_vae(root, vae_cfg, ckpt, config_name=f'{config} ({where})', provenance=provenance):
            warnings.warn(f'the {what} latents in {root} record no VAE (an official LightningDiT folder?): cannot '
                          f'check that they come from the VAE of {where} ({config})')
            return checked
        checked += 1
    return checked


@HOOKS.register_module()
class LatentDataCheckHook(Hook):
    """Before training, compare the data's latent shape and labels with the DiT (:func:`check_latent_data`) and the
    VAE recorded in the latent folder with the VAE the config decodes with (:func:`check_latent_vae`).

    ``before_train`` runs after mmengine has built the train dataloader and before the first step (a mismatch would
    otherwise train without complaint: the backbone accepts any grid size). The test set's shape is checked by the
    model's ``predict`` step on the first batch. In the project's ``configs/_base_/default_runtime.py``
    ``default_hooks`` (a dict entry, so no config's ``custom_hooks`` list drops it).
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_latent_data(runner.model, runner.train_dataloader.dataset, 'training')
        check_latent_vae(runner.cfg, runner.train_dataloader.dataset, 'training')
