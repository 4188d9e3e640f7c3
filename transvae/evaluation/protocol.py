"""The reconstruction evaluation protocol: which test configs are run, and how their results become a report.

``tools/test.py`` (:mod:`transvae.apis.test_cli`) is the command line around it; it builds the runners and runs
their test loops, everything that decides *what* is evaluated and *how it is described* is here (config-level, no
Runner):

* single model: the config's own test set (:func:`single_model_config`);
* several models x datasets x resolutions: :func:`expand_settings` lists the settings (dataset-major), and
  :func:`setting_config` turns (model config, setting) into a test config: resize the short side to R (bicubic,
  antialiased) + centre crop RxR, PSNR / SSIM / LPIPS / rFID, no padded duplicates, unreadable files skipped;
* :func:`single_report` / :func:`multi_report` assemble the report of :mod:`transvae.evaluation.report`.

The transforms a pipeline description knows are looked up through the registry and matched by class (subclasses
included); the resolution of a pipeline is changed through the transforms' ``resolution_keys`` capability; the
training-only submodules dropped for evaluation are those the model class declares (``train_only_modules``).
"""
from __future__ import annotations

import copy
import inspect
import os.path as osp
import re
import uuid
from dataclasses import dataclass
from typing import Any, Optional

from transvae.datasets.transforms.resolution import set_pipeline_resolution, transform_class
from transvae.registry import MODELS, resolve_type
from transvae.utils.errors import UserInputError

from . import report as rp
from .layouts import PHOTOS_ROOT, DatasetSpec, eval_dataset_cfg, set_max_images

__all__ = ['EvalSetting', 'none_ckpt', 'parse_model_spec', 'model_labels',
           'own_weights', 'weights_info', 'check_weights', 'eval_pipeline',
           'evaluator_cfg', 'describe_pipeline', 'strip_training_modules', 'single_model_config', 'expand_settings',
           'setting_config', 'single_report', 'multi_report']

@dataclass
class EvalSetting:
    """One dataset x resolution of a multi-model evaluation.

    Attributes:
        name: dataset label in the report.
        layout: dataset layout (:mod:`~transvae.evaluation.layouts`) or the config's dataset type.
        path: data root.
        resolution: crop size, or ``None`` for the config's own pipeline.
        dataset: a ready dataset config (the first model's own test set), or ``None`` to build one from the layout.
    """
    name: str
    layout: str
    path: str
    resolution: Optional[int]
    dataset: Optional[dict] = None

    @property
    def tag(self) -> str:
        """File-system-safe name of the setting (work-dir and show-dir sub-folder)."""
        return f"{self.name.replace(':', '_').replace('/', '_')}_{self.resolution or 'cfg'}"


# ---------------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------------
def none_ckpt(ckpt: Optional[str]) -> Optional[str]:
    """``None`` for an absent checkpoint (``None``, ``''``, ``'none'``), else the path."""
    return None if ckpt in (None, '', 'none', 'None') else ckpt


def parse_model_spec(spec: str) -> tuple[str, Optional[str]]:
    """``CFG[:CKPT]`` -> ``(cfg, ckpt or None)``; the config path ends in ``.py``."""
    m = re.match(r'^(.+?\.py)(?::(.*))?$', spec)
    if not m:
        raise ValueError(f'--models entry {spec!r} is not CFG.py[:CKPT]')
    return m.group(1), none_ckpt(m.group(2))


def _pretrained_init(init_cfg: Any) -> Optional[str]:
    """The checkpoint of a ``Pretrained`` ``init_cfg`` (a dict or a list of them), else ``None``."""
    for c in (init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]):
        if isinstance(c, dict) and c.get('type') == 'Pretrained' and c.get('checkpoint'):
            return str(c['checkpoint'])
    return None


def own_weights(model_cfg: Any) -> Optional[str]:
    """How the model config loads weights of its own (``"init_cfg Pretrained '...'"`` of the model, its encoder or
    decoder: applied by ``init_weights``, which :func:`transvae.apis.entry.build_model` and ``tools/test.py`` call
    when no checkpoint is given), or ``None``: without a checkpoint its weights are the random initialisation."""
    if not isinstance(model_cfg, dict):
        return None
    for where, sub in (('model', model_cfg), ('encoder', model_cfg.get('encoder')),
                       ('decoder', model_cfg.get('decoder'))):
        ckpt = _pretrained_init(sub.get('init_cfg')) if isinstance(sub, dict) else None
        if ckpt:
            return f'{where} init_cfg Pretrained {ckpt!r}'
    return None


def weights_info(model_cfg: Any, checkpoint: Optional[str]) -> dict[str, str]:
    """Which weights a model is evaluated with: ``{'source': 'checkpoint' | 'pretrained' | 'random', 'detail'}``."""
    ckpt = none_ckpt(checkpoint)
    if ckpt is not None:
        return dict(source='checkpoint', detail=str(ckpt))
    own = own_weights(model_cfg)
    if own is not None:
        return dict(source='pretrained', detail=f"no checkpoint: the model's own weights ({own})")
    return dict(source='random', detail='no checkpoint: RANDOM initial weights (an untrained model)')


class WeightsSourceError(UserInputError, ValueError):
    """A model that would run with random weights though nobody asked for them, or ``--random-weights`` with a
    checkpoint."""


def check_weights(model_cfg: Any, checkpoint: Optional[str], random_weights: bool, name: str) -> dict[str, str]:
    """:func:`weights_info`, refusing random weights unless asked for (``--random-weights``).

    Args:
        model_cfg: the model config.
        checkpoint: the checkpoint (``None`` / ``'none'``: none).
        random_weights: the user asked to evaluate without a checkpoint (``--random-weights``).
        name: the config (for the message).

    Raises:
        WeightsSourceError: no checkpoint and no weights of the model's own, without ``random_weights``; or
            ``random_weights`` with a checkpoint.
    """
    info = weights_info(model_cfg, checkpoint)
    if random_weights and info['source'] == 'checkpoint':
        raise WeightsSourceError(f'--random-weights evaluates without a checkpoint, but {checkpoint} was given: drop '
                                 'one of the two.')
    if info['source'] == 'random' and not random_weights:
        given = 'no checkpoint given' if checkpoint is None else f'checkpoint {checkpoint!r}'
        raise WeightsSourceError(f'{name}: {given} and the model loads no weights of its own (no '
                                 'Pretrained init_cfg), so it would be evaluated '
                                 'with random weights. Give a checkpoint, or --random-weights (and no checkpoint) to '
                                 'evaluate the untrained model on purpose; the report then says so.')
    return info


def model_labels(configs: list[str], labels: Optional[list[str]] = None) -> list[str]:
    """Report labels: ``labels`` when given (one per model, unique), else the config names made unique."""
    if labels:
        if len(labels) != len(configs):
            raise ValueError(f'{len(labels)} --labels for {len(configs)} models')
        if len(set(labels)) != len(labels):
            raise ValueError('--labels must be unique')
        return list(labels)
    out: list[str] = []
    for c in configs:
        base = osp.splitext(osp.basename(c))[0]
        label, i = base, 2
        while label in out:
            label, i = f'{base}#{i}', i + 1
        out.append(label)
    return out


def strip_training_modules(cfg: Any) -> list[str]:
    """Drop the optional training-only submodules of ``cfg.model`` (in place); returns the keys dropped.

    A key is dropped when it is set and the model class declares it in ``train_only_modules`` and takes it as an
    optional constructor argument (default ``None``), as ``VAEGAN`` does for its VF loss, discriminator and GAN loss
    (their checkpoint keys are then ignored).
    """
    model = cfg.get('model', None)
    cls = resolve_type(model, MODELS, missing_ok=True) if isinstance(model, dict) else None
    if cls is None:
        return []
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return []
    removed = []
    for k in getattr(cls, 'train_only_modules', ()):
        p = params.get(k)
        if p is not None and p.default is None and model.get(k) is not None:
            model[k] = None
            removed.append(k)
    return removed


# ---------------------------------------------------------------------------------------------------------------------
# pipelines and metrics
# ---------------------------------------------------------------------------------------------------------------------
def eval_pipeline(resolution: int) -> list[dict]:
    """Resize the short side to ``resolution`` (bicubic, antialiased), centre crop ``resolution``², pack."""
    return [
        dict(type='LoadImageRGB'),
        dict(type='ResizeShortSide', size=int(resolution), interpolation='bicubic'),
        dict(type='CenterCrop', size=int(resolution)),
        dict(type='PackVAEInputs'),
    ]


def evaluator_cfg(lpips_net: str = 'alex') -> list[dict]:
    """PSNR, SSIM, LPIPS (``lpips_net`` backbone) and rFID."""
    return [dict(type='PSNRMetric'), dict(type='SSIMMetric'), dict(type='LPIPSMetric', net=lpips_net),
            dict(type='FIDMetric')]


def describe_pipeline(pipeline: Any) -> tuple[Optional[int], str]:
    """``(crop size, description)`` of a test pipeline; the size is that of a square centre crop, else ``None``.

    Loading and packing transforms leave the pixels as they are and are not described; a transform this function
    does not know is named by its type.
    """
    from transvae.datasets.transforms import CenterCrop, LoadImageRGB, PackVAEInputs, ResizeShortSide
    size, parts = None, []
    for t in pipeline or []:
        if not isinstance(t, dict):
            continue
        cls = transform_class(t)
        if cls is not None and issubclass(cls, ResizeShortSide):
            interp = t.get('interpolation', 'bicubic')
            parts.append(f"resize the short side to {t.get('size')} px ({interp}, antialiased)")
        elif cls is not None and issubclass(cls, CenterCrop):
            size = t.get('size')
            parts.append(f'centre crop {size}x{size}' if isinstance(size, int) else f'centre crop {size}')
        elif t.get('type') is not None and not (cls is not None and issubclass(cls, (LoadImageRGB, PackVAEInputs))):
            typ = t.get('type')
            parts.append(typ.__name__ if isinstance(typ, type) else str(typ))
    return (size if isinstance(size, int) else None), (', then '.join(parts) or 'as loaded (no resize / crop)')


# ---------------------------------------------------------------------------------------------------------------------
# test configs
# ---------------------------------------------------------------------------------------------------------------------
def single_model_config(cfg: Any, checkpoint: Optional[str], *, show_dir: Optional[str] = None,
                        max_images: Optional[int] = None, batch_size: Optional[int] = None,
                        num_workers: Optional[int] = None) -> Any:
    """Single-model mode (in place): ``load_from``, reconstruction PNGs, subset and loader overrides."""
    cfg.load_from = none_ckpt(checkpoint)
    cfg.resume = False
    if show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(type='SaveReconstructionsHook', out_dir=show_dir)]
    if max_images:
        set_max_images(cfg.test_dataloader.dataset, max_images)
    if batch_size:
        cfg.test_dataloader.batch_size = batch_size
    if num_workers is not None:
        cfg.test_dataloader.num_workers = num_workers
        if num_workers == 0:
            cfg.test_dataloader.persistent_workers = False
    return cfg


def expand_settings(base_test_dataset: Any, datasets: Optional[list[DatasetSpec]], resolutions: list[int],
                    max_images: Optional[int] = None, preset: Optional[str] = None) -> list[EvalSetting]:
    """The dataset x resolution settings of a multi-model evaluation, dataset-major.

    Args:
        base_test_dataset: the first model's test dataset config (used when ``datasets`` is ``None``).
        datasets: evaluation sets; ``None`` with ``preset='cpu'``: the bundled photos.
        resolutions: crop sizes; empty: 128 (``preset='cpu'``) or 256 for evaluation sets, the config's own
            pipeline otherwise.
        max_images: subset size.
        preset: the preset the configs were loaded with.
    """
    if datasets is None and preset == 'cpu':
        datasets = [DatasetSpec('photos', 'photos', PHOTOS_ROOT)]
    res: list[Optional[int]] = list(resolutions or [])
    if not res:
        res = [128 if preset == 'cpu' else 256] if datasets is not None else [None]
    settings = []
    for r in res:
        if datasets is None:  # the first model's own test set, for every model
            ds = copy.deepcopy(base_test_dataset)
            ds = ds.to_dict() if hasattr(ds, 'to_dict') else dict(ds)
            if r is not None:
                set_pipeline_resolution(ds.get('pipeline', []), r)
            if max_images:
                set_max_images(ds, max_images)
            name = f"config:{osp.basename(str(ds.get('data_root', '')).rstrip('/')) or ds.get('type')}"
            settings.append(EvalSetting(name, str(ds.get('type')), str(ds.get('data_root', '')), r, ds))
        else:
            settings.extend(EvalSetting(d.name, d.layout, d.path, r) for d in datasets)
    order = {s.name: i for i, s in enumerate(settings)}  # all resolutions of a dataset together
    settings.sort(key=lambda s: (order[s.name], s.resolution or 0))
    return settings


def setting_config(base_cfg: Any, label: str, setting: EvalSetting, checkpoint: Optional[str], *, work_dir: str,
                   lpips_net: str = 'alex', max_images: Optional[int] = None, batch_size: Optional[int] = None,
                   num_workers: Optional[int] = None, show_dir: Optional[str] = None) -> tuple[Any, list[str]]:
    """The test config of one model on one setting (a deep copy of ``base_cfg``) and the submodules dropped.

    Args:
        base_cfg: the model's loaded config.
        label: the model's report label.
        setting: the dataset x resolution.
        checkpoint: ``load_from`` (``None``: the model loads its own weights).
        work_dir: root work dir; the run's is ``<work_dir>/<label>/<setting.tag>``.
        lpips_net: LPIPS backbone.
        max_images: subset size.
        batch_size: test batch size (default: the config's, else 8).
        num_workers: loader workers (default: the config's, else 2).
        show_dir: reconstruction PNGs go to ``<show_dir>/<label>/<setting.tag>``.
    """
    cfg = copy.deepcopy(base_cfg)
    removed = strip_training_modules(cfg)
    tag = setting.tag
    cfg.work_dir = osp.join(work_dir, label, tag)
    cfg.experiment_name = f'{label}_{tag}'
    if isinstance(cfg.get('visualizer', None), dict):  # a fixed name would reuse (and mix) one instance
        cfg.visualizer['name'] = f'visualizer_{label}_{tag}_{uuid.uuid4().hex[:8]}'
    if setting.dataset is not None:
        ds = copy.deepcopy(setting.dataset)
    else:
        spec = DatasetSpec(setting.name, setting.layout, setting.path)
        ds = eval_dataset_cfg(spec, eval_pipeline(setting.resolution), max_images, work_dir)
    old = cfg.get('test_dataloader', None) or {}
    cfg.test_dataloader = dict(
        batch_size=batch_size or old.get('batch_size', 8),
        num_workers=old.get('num_workers', 2) if num_workers is None else num_workers,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),  # no padded duplicates
        collate_fn=dict(type='transvae.skip_none_collate'),
        dataset=ds)
    cfg.test_evaluator = evaluator_cfg(lpips_net)
    cfg.test_cfg = dict(type='SkipEmptyTestLoop')  # passes over all-unreadable batches
    cfg.load_from = checkpoint
    cfg.resume = False
    if show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(type='SaveReconstructionsHook', out_dir=osp.join(show_dir, label, tag))]
    return cfg, removed


# ---------------------------------------------------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------------------------------------------------
def _lpips_net_of(evaluator: Any) -> str:
    from transvae.evaluation.metrics import LPIPSMetric
    from transvae.registry import METRICS
    for e in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
        if not isinstance(e, dict):
            continue
        cls = resolve_type(e, METRICS, missing_ok=True)
        if cls is not None and issubclass(cls, LPIPSMetric):
            return e.get('net', 'alex')
    return 'alex'


def single_report(cfg: Any, config: str, checkpoint: Optional[str], metrics: dict, num_images: int,
                  skipped: list[str], tiling: str, command: str, max_images: Optional[int] = None,
                  show_dir: Optional[str] = None, weights: Optional[dict] = None) -> dict:
    """The report of a single-model evaluation on the config's own test set.

    A config with ``test_report = dict(type=NAME, ...)`` gets the report of the layout ``NAME`` registered in
    ``FUNCTIONS`` (called with these arguments as keywords, e.g. the generation FID of ``projects/lightningdit``).
    ``weights`` (:func:`weights_info`; default: from ``cfg.model`` and ``checkpoint``) goes into the report: random
    weights are stated in its title, JSON and warnings.
    """
    if cfg.get('test_report', None):
        from transvae.registry import FUNCTIONS
        return FUNCTIONS.build(cfg.test_report, default_args=dict(
            cfg=cfg, config=config, checkpoint=checkpoint, metrics=metrics, num_images=num_images, skipped=skipped,
            tiling=tiling, command=command, max_images=max_images, show_dir=show_dir))
    ds = cfg.test_dataloader.dataset
    size, crop = describe_pipeline(ds.get('pipeline'))
    label = model_labels([config])[0]
    setting = rp.make_setting(str(ds.get('type', 'dataset')), size, {label: metrics}, num_images=num_images,
                              num_skipped=len(skipped), skipped_files=skipped, data_root=str(ds.get('data_root', '')),
                              max_images=max_images)
    extra = {'reconstruction grids (input | reconstruction)': show_dir} if show_dir else {}
    weights = weights or weights_info(cfg.get('model', None), checkpoint)
    return rp.build_report([dict(label=label, config=config, checkpoint=checkpoint)], [setting],
                           rp.default_protocol(_lpips_net_of(cfg.get('test_evaluator')), tiling, crop),
                           command=command, title='Evaluation report', extra=extra, weights={label: weights})


def multi_report(models: list[dict], settings: list[EvalSetting], results: dict[tuple, dict],
                 counts: dict[tuple, tuple[int, list[str]]], *, lpips_net: str, tiling: str, command: str,
                 max_images: Optional[int] = None, removed: Optional[dict[str, list[str]]] = None,
                 preset: Optional[str] = None, show_dir: Optional[str] = None,
                 weights: Optional[dict[str, dict]] = None) -> dict:
    """The report of a models x settings evaluation.

    Args:
        models: ``[{label, config, checkpoint}]`` in column order.
        settings: as evaluated.
        results: ``{(label, setting name, resolution): metrics}``.
        counts: ``{(setting name, resolution): (N evaluated, skipped files)}``.
        lpips_net: LPIPS backbone.
        tiling: the tiling protocol line(s).
        command: the command line.
        max_images: subset size.
        removed: ``{label: training-only submodules not built}``.
        preset: the preset the configs were loaded with.
        show_dir: where reconstructions were written.
        weights: ``{label: weights_info(...)}`` (random weights are stated in the title, JSON and warnings).
    """
    labels = [m['label'] for m in models]
    report_settings = []
    for s in settings:
        n, skipped = counts[(s.name, s.resolution)]
        report_settings.append(rp.make_setting(
            s.name, s.resolution, {label: results[(label, s.name, s.resolution)] for label in labels},
            num_images=n, num_skipped=len(skipped), skipped_files=skipped, layout=s.layout, data_root=s.path,
            max_images=max_images))
    crop = None
    if all(s.dataset is not None for s in settings) and [s.resolution for s in settings] == [None]:
        crop = describe_pipeline(settings[0].dataset.get('pipeline'))[1]
    protocol = rp.default_protocol(lpips_net, tiling, crop)
    if max_images:
        protocol['subset'] = (f'--max-images {max_images}: imagenet/coco layouts take N files evenly spaced '
                              'over the sorted file list, the bundled photos the first N')
    if removed:
        protocol['model'] = ('training-only VAEGAN submodules not built for evaluation (their checkpoint keys are '
                             'ignored): ' + '; '.join(f'{k}: {", ".join(v)}' for k, v in removed.items()))
    if preset:
        protocol['preset'] = preset
    return rp.build_report(models, report_settings, protocol, command=command,
                           extra={'reconstructions': show_dir} if show_dir else None, weights=weights)
