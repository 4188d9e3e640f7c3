"""``TransVAEFlexibleRunner``: mmengine's ``FlexibleRunner`` (the FSDP path) with RNG-exact resume.

mmengine's ``FlexibleRunner`` saves and resumes weights, optimizer and scheduler through its strategy but not the RNG
states, so a run resumed under FSDP drew different posterior-sampling noise from the first resumed step on (found by
``tools/analysis_tools/fault_drill.py --only sigkill_resume_fsdp``). This runner puts ``rng_state`` into every
checkpoint through the strategy's ``before_save_checkpoint`` callback and restores it on resume exactly as
:class:`~transvae.engine.runner.TransVAERunner` does (:class:`~transvae.engine.rng_state.RNGExactResumeMixin`).

It also owns its work dir as ``TransVAERunner`` does (:mod:`~transvae.engine.work_dir_lock`): the strategy sets up the
process group, the log dir and the logger in one step, so :meth:`build_strategy` starts the process group itself
(mmengine's ``init_dist``, which a DDP / FSDP strategy then skips), takes ``work_dir/run.lock`` on global rank 0 and
only then lets the strategy write (a strategy with its own start, DeepSpeed or ColossalAI, is built first).
"""
from __future__ import annotations

from typing import Optional

from mmengine.dist import all_gather_object, broadcast_object_list, get_rank
from mmengine.runner import FlexibleRunner

from transvae.registry import RUNNERS

from .rng_state import RNGExactResumeMixin, get_rng_state
from .work_dir_lock import WorkDirOwnerMixin


def _starts_with_init_dist(strategy, launcher: str) -> bool:
    """Whether the strategy config starts its process group with mmengine's ``init_dist`` (single device, DDP, FSDP
    and their subclasses), so that this runner may start it first; not a built strategy, not DeepSpeed / ColossalAI."""
    from mmengine._strategy import DDPStrategy, SingleDeviceStrategy

    from transvae.registry import STRATEGIES, resolve_type
    if strategy is None:
        return True
    if not isinstance(strategy, dict):
        return False
    cls = resolve_type(strategy, STRATEGIES, missing_ok=True)  # an unknown name fails where the strategy is built
    return cls is not None and (issubclass(cls, DDPStrategy) or (
        issubclass(cls, SingleDeviceStrategy) and launcher == 'none'))


@RUNNERS.register_module()
class TransVAEFlexibleRunner(RNGExactResumeMixin, WorkDirOwnerMixin, FlexibleRunner):
    """``FlexibleRunner`` whose checkpoints carry ``rng_state``, whose resume restores it, that owns its work dir."""

    def build_strategy(self, strategy=None, launcher: str = 'none', randomness: Optional[dict] = None,
                       env_cfg: Optional[dict] = None, experiment_name: Optional[str] = None,
                       log_level: Optional[str] = None):
        """Own ``work_dir`` (after starting the process group, before the strategy's log dir and logger), then build
        the strategy as mmengine does; a taken-over stale lock is logged with the strategy's logger."""
        from mmengine.dist import init_dist, is_distributed
        env_cfg = dict(dist_cfg=dict(backend='nccl')) if env_cfg is None else env_cfg
        early = _starts_with_init_dist(strategy, launcher)
        if early:
            if launcher != 'none' and not is_distributed():
                init_dist(launcher, **(env_cfg.get('dist_cfg', None) or {}))
            self._own_work_dir()
        built = super().build_strategy(strategy, launcher=launcher, randomness=randomness, env_cfg=env_cfg,
                                       experiment_name=experiment_name, log_level=log_level)
        if not early:  # a strategy object, or one with its own process-group start (DeepSpeed): owned after it
            self._own_work_dir()
        self._log_work_dir_takeover(built.logger)
        return built

    def call_hook(self, fn_name: str, **kwargs) -> None:
        checkpoint = kwargs.get('checkpoint')
        if fn_name == 'before_save_checkpoint' and isinstance(checkpoint, dict):
            # every rank's state (the strategy calls this on every rank; rank 0 writes the file, encoded for
            # weights_only loading): ranks need not draw the same stream (e.g. rank-dependent sampling)
            checkpoint['rng_state'] = all_gather_object(get_rng_state()) if self.world_size > 1 else [get_rng_state()]
        if fn_name == 'after_load_checkpoint' and isinstance(checkpoint, dict):
            self._loaded_rng_state = checkpoint.get('rng_state')
        super().call_hook(fn_name, **kwargs)

    def resume(self, filename: str, *args, **kwargs) -> None:
        """Resume, then give every rank its own saved RNG state (broadcast from rank 0: the strategy may load the file
        on rank 0 only); with another world size every rank gets rank 0's."""
        super().resume(filename, *args, **kwargs)
        states = [self._pending_rng_state]
        if self.world_size > 1:
            broadcast_object_list(states, src=0)
        states = states[0]
        if isinstance(states, list):  # one state per rank of the saving run
            if len(states) == self.world_size:
                self._pending_rng_state = states[get_rank()]
            else:
                self.logger.warning(f'the checkpoint holds the RNG states of {len(states)} ranks, this run has '
                                    f'{self.world_size}: rank 0\'s state is restored on every rank.')
                self._pending_rng_state = states[0]
