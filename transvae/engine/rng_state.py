"""RNG-exact resume: the torch / numpy / python RNG states travel in the checkpoint (``rng_state``) and are restored
where the uninterrupted run stood, after the loop has skipped the already-seen batches; validation does not move the
training random stream. Shared by :class:`~transvae.engine.runner.TransVAERunner` and
:class:`~transvae.engine.flexible_runner.TransVAEFlexibleRunner` (FSDP).
"""
from __future__ import annotations

import random
from typing import Optional

import numpy as np
import torch
from mmengine.runner import IterBasedTrainLoop


def get_rng_state() -> dict:
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'].cpu() if torch.is_tensor(state['torch']) else state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
        except Exception:  # noqa: BLE001 - different GPU count
            pass


class RestoreRNGAfter:
    """Iterator proxy: after ``n`` items, set the RNG state (then behaves exactly like the wrapped iterator)."""

    def __init__(self, inner, n: int, state: dict) -> None:
        self._inner, self._n, self._state = inner, n, state

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._inner)
        if self._state is not None:
            self._n -= 1
            if self._n <= 0:
                set_rng_state(self._state)
                self._state = None
        return item

    def __getattr__(self, name):
        return getattr(self._inner, name)


class RNGExactResumeMixin:
    """Runner mixin: keep validation off the training RNG stream and restore a resumed checkpoint's ``rng_state``.

    The runner stores the loaded checkpoint's ``rng_state`` in ``_loaded_rng_state`` (from ``load_checkpoint`` or an
    ``after_load_checkpoint`` hook call); :meth:`resume` turns it into a pending restore that the next
    ``before_train_epoch`` arms.

    It is also where a resume is checked (:func:`~transvae.engine.resume_checks.check_resume`): the
    ``after_load_checkpoint`` call of a resume (both runners make it before any weight is restored) refuses a
    weights-only file, a changed model config and a finished schedule.
    """

    _pending_rng_state: Optional[dict] = None
    _loaded_rng_state: Optional[dict] = None
    _resuming_from: Optional[str] = None

    def call_hook(self, fn_name: str, **kwargs) -> None:
        if fn_name == 'after_load_checkpoint' and self._resuming_from is not None:
            from .resume_checks import check_resume
            filename, self._resuming_from = self._resuming_from, None  # once per resume
            loop = self._train_loop if not isinstance(self._train_loop, dict) else None
            check_resume(kwargs.get('checkpoint'), filename, self.cfg, loop, self.logger)
        if fn_name == 'before_val':
            # validation must not move the training random stream (DataLoader iterators draw a seed from it)
            self._rng_before_val = get_rng_state()
        if fn_name == 'before_train_epoch' and self._pending_rng_state is not None:
            self._arm_rng_restore()
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'after_val' and getattr(self, '_rng_before_val', None) is not None:
            set_rng_state(self._rng_before_val)
            self._rng_before_val = None

    def _arm_rng_restore(self) -> None:
        """Restore the saved RNG state where the uninterrupted run was when it saved the checkpoint.

        ``IterBasedTrainLoop`` skips the already-trained batches right after ``before_train_epoch``; the state is
        restored after the last skipped batch (so the skip's data loading does not consume it). Other loops:
        restored now, before the epoch's DataLoader iterator is created.
        """
        state, self._pending_rng_state = self._pending_rng_state, None
        loop = self.train_loop
        skip = int(getattr(loop, '_iter', 0)) if isinstance(loop, IterBasedTrainLoop) else 0
        if skip > 0 and hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = RestoreRNGAfter(loop.dataloader_iterator, skip, state)
        else:
            set_rng_state(state)

    def resume(self, filename: str, *args, **kwargs) -> None:
        self._loaded_rng_state = None
        self._resuming_from = str(filename)
        try:
            super().resume(filename, *args, **kwargs)
        finally:
            self._resuming_from = None
        if self._loaded_rng_state is not None:
            if self.world_size > 1 and self._randomness_cfg.get('diff_rank_seed', False):
                self.logger.warning('diff_rank_seed=True: the saved RNG state is rank 0\'s; not restored.')
            else:
                self._pending_rng_state = self._loaded_rng_state
        self._loaded_rng_state = None
