"""``AtomicCheckpointHook``: save first, then atomically repoint ``last_checkpoint``, then prune old files."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine.dist import get_rank
from mmengine.hooks import CheckpointHook

from transvae.registry import HOOKS

from ..atomic_io import atomic_write_text, is_local, remove_stale_tmp_files


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that saves first, then atomically repoints ``last_checkpoint``, then prunes old files.

    (mmengine prunes the oldest checkpoint *before* saving the new one and writes the pointer with a truncating
    ``open('w')``; a crash in between could leave no loadable checkpoint or an empty pointer.)

    With a non-finite guard (``SafeOptimWrapper`` / ``SafeAmpOptimWrapper``) a new checkpoint is only *pending* until
    the next optimizer step is applied: that step's loss was computed with exactly the saved weights, so a finite step
    proves them. Weights that already give NaN (finite but huge, e.g. lr 1e3) never become ``last_checkpoint``: the
    run aborts with the pointer still naming the last proven file, and nothing is pruned meanwhile. At the end of a
    run the pending checkpoint is committed unless the run is in a skipped streak. Stale ``.*.tmp`` files of killed
    writes are removed before training and after every save, never in a directory that another live run owns
    (``run.lock``, :mod:`~transvae.engine.work_dir_lock`; the runner owns its ``work_dir`` before this hook runs).
    Registered in ``transvae.engine.hooks``; ``TransVAERunner`` requires it (a plain ``CheckpointHook`` is refused).
    """

    _pending: Optional[list] = None

    @staticmethod
    def _guards(runner) -> list:
        from transvae.engine.optimizers.safe_optim_wrapper import NonFiniteGuardMixin
        ow = getattr(runner, 'optim_wrapper', None)
        wrappers = list(ow.values()) if hasattr(ow, 'values') and callable(ow.values) else [ow]
        return [w for w in wrappers if isinstance(w, NonFiniteGuardMixin)]

    def _applied(self, runner) -> Optional[int]:
        guards = self._guards(runner)
        return sum(int(getattr(g, 'applied_steps', 0)) for g in guards) if guards else None

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._pending = []
        if get_rank() == 0:
            remove_stale_tmp_files(self.out_dir if is_local(self.out_dir) else None, runner.work_dir)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._maybe_commit(runner)
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train(self, runner) -> None:
        super().after_train(runner)
        if self._pending and not any(g.consecutive_nonfinite for g in self._guards(runner)):
            self._commit(runner)

    def _maybe_commit(self, runner) -> None:
        if self._pending and (self._applied(runner) or 0) > self._pending[-1]['applied']:
            self._commit(runner)

    def _save_checkpoint_with_step(self, runner, step, meta):
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        to_remove = []
        if self.max_keep_ckpts > 0:
            if not (len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    to_remove.append(self.keep_ckpt_ids.popleft())
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if self._pending is None:
            self._pending = []
        self._pending.append(dict(path=str(self.last_ckpt), to_remove=to_remove, applied=self._applied(runner)))
        if self._pending[-1]['applied'] is None:  # no guard: nothing to prove
            self._commit(runner)
        if get_rank() == 0:
            remove_stale_tmp_files(self.out_dir if is_local(self.out_dir) else None, runner.work_dir)

    def _commit(self, runner) -> None:
        """Point ``last_checkpoint`` at the newest pending checkpoint, then prune what the pending saves retired."""
        pending, self._pending = self._pending or [], []
        if not pending or get_rank() != 0:
            return
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), pending[-1]['path'])
        for old in (o for p in pending for o in p['to_remove']):
            ckpt_path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(ckpt_path):
                self.file_backend.remove(ckpt_path)
            elif self.file_backend.isdir(ckpt_path):
                self.file_backend.rmtree(ckpt_path)
