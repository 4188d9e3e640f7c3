"""mmengine's ``EMAHook`` with :class:`~transvae.models.averaged_model.TrainableEMA` (works under
``MMSeparateDistributedDataParallel``)."""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import EMAHook

from transvae.registry import HOOKS, MODELS, resolve_type

__all__ = ['TransVAEEMAHook', 'is_wrapper_safe_ema']


def is_wrapper_safe_ema(ema_type: object) -> bool:
    """Whether an ``EMAHook`` ``ema_type`` keeps the plain model's keys when submodules are DDP-wrapped."""
    from transvae.models.averaged_model import TrainableEMA
    cls = resolve_type(ema_type, MODELS, missing_ok=True)
    return cls is not None and issubclass(cls, TrainableEMA)


@HOOKS.register_module()
class TransVAEEMAHook(EMAHook):
    """``EMAHook`` whose default average is ``TrainableEMA`` (trainable generator weights; discriminator, frozen
    encoder and hidden networks shared, not copied).

    Everything else is mmengine's: the EMA weights are swapped in for validation and testing, the checkpoint holds
    ``ema_state_dict`` (and, in ``state_dict``, the EMA weights, so a weights-only load deploys the average), and
    ``--resume`` restores the average exactly. ``TransVAERunner`` requires it (a plain ``EMAHook`` is refused).
    Before ``begin_iter`` / ``begin_epoch`` the average follows the model by name (mmengine's copy pairs
    state-dict keys, which DDP wrappers change).

    Args:
        ema_type: registered averaged-model class. Defaults to ``'TrainableEMA'``.
        **kwargs: ``EMAHook`` arguments (``momentum``, ``interval``, ``begin_iter``, ``strict_load``,
            ``update_buffers``, ``exclude`` ...).
    """

    def __init__(self, ema_type: str = 'TrainableEMA', **kwargs) -> None:
        super().__init__(ema_type=ema_type, **kwargs)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._ema_started(runner) and callable(getattr(self.ema_model, 'copy_from', None)):
            self.ema_model.copy_from(self.src_model)
            return
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
