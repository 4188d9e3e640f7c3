"""``TransVAEFlexibleRunner``: mmengine's ``FlexibleRunner`` (the FSDP path) with RNG-exact resume.

mmengine's ``FlexibleRunner`` saves and resumes weights, optimizer and scheduler through its strategy but not the RNG
states, so a run resumed under FSDP drew different posterior-sampling noise from the first resumed step on (found by
``tools/analysis_tools/fault_drill.py --only sigkill_resume_fsdp``). This runner puts ``rng_state`` into every
checkpoint through the strategy's ``before_save_checkpoint`` callback and restores it on resume exactly as
:class:`~transvae.engine.runner.TransVAERunner` does (:class:`~transvae.engine.rng_state.RNGExactResumeMixin`).
"""
from __future__ import annotations

from mmengine.dist import all_gather_object, broadcast_object_list, get_rank
from mmengine.runner import FlexibleRunner

from transvae.registry import RUNNERS

from .rng_state import RNGExactResumeMixin, get_rng_state


@RUNNERS.register_module()
class TransVAEFlexibleRunner(RNGExactResumeMixin, FlexibleRunner):
    """``FlexibleRunner`` whose checkpoints carry ``rng_state`` and whose resume restores it."""

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
