"""Override the learning rate of a resumed run (the advice of the non-finite guard's abort message).

A resumed optimizer and its parameter schedulers restore the learning rate of the checkpoint, so lowering
``optimizer.lr`` in the config does nothing on ``--resume``. :class:`ResumeLRHook` (``tools/train.py --resume-lr LR``)
rescales, after the resume and before the first resumed step, every param group's ``lr`` and ``initial_lr`` and every
scheduler's ``base_values`` / last values by one factor ``LR / base lr`` (the first param group's ``initial_lr`` of
the first optimizer), so the schedule continues from where it stopped at the new scale and the ratios between
param groups and between the generator and discriminator optimizers are kept.
"""
from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook

from transvae.registry import HOOKS


def _wrappers(optim_wrapper: Any) -> list:
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        return list(optim_wrapper.optim_wrappers.values())
    return [optim_wrapper]


def _schedulers(param_schedulers: Any) -> list:
    if param_schedulers is None:
        return []
    if isinstance(param_schedulers, dict):
        return [s for v in param_schedulers.values() for s in (v if isinstance(v, list) else [v])]
    return list(param_schedulers) if isinstance(param_schedulers, (list, tuple)) else [param_schedulers]


def rescale_learning_rate(optim_wrapper: Any, param_schedulers: Any, lr: float) -> float:
    """Scale every learning rate so that the first param group's base lr becomes ``lr``; returns the factor."""
    if not lr > 0:
        raise ValueError(f'--resume-lr must be positive, got {lr}')
    first = _wrappers(optim_wrapper)[0].optimizer.param_groups[0]
    base = float(first.get('initial_lr', first['lr']))
    if base <= 0:
        raise ValueError(f'cannot rescale a base learning rate of {base}')
    factor = float(lr) / base
    for w in _wrappers(optim_wrapper):
        for group in w.optimizer.param_groups:
            group['lr'] = group['lr'] * factor
            if 'initial_lr' in group:
                group['initial_lr'] = group['initial_lr'] * factor
    for s in _schedulers(param_schedulers):
        if getattr(s, 'param_name', 'lr') != 'lr':
            continue
        for attr in ('base_values', '_last_value'):
            values = getattr(s, attr, None)
            if isinstance(values, list):
                setattr(s, attr, [v * factor for v in values])
    return factor


@HOOKS.register_module()
class ResumeLRHook(Hook):
    """Rescale the learning rates of a resumed run so the base lr becomes ``lr`` (see the module docstring).

    Args:
        lr: the new base learning rate of the first param group (the others follow by the same factor).
    """

    priority = 'VERY_HIGH'

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def before_train(self, runner) -> None:
        if not getattr(runner, '_resume', False):
            raise ValueError('ResumeLRHook (--resume-lr) only applies to a resumed run: add --resume')
        factor = rescale_learning_rate(runner.optim_wrapper, runner.param_schedulers, self.lr)
        runner.logger.info(f'--resume-lr {self.lr:g}: every learning rate scaled by {factor:g} '
                           f'(from iteration {runner.iter})')
