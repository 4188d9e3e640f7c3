"""Training and test hooks: reconstruction grids, time budget, atomic checkpoints, corrupt-image reporting, EMA,
evaluation counts."""
from transvae.engine.runner import AtomicCheckpointHook
from transvae.registry import HOOKS

from .ema_hook import TransVAEEMAHook
from .eval_count_hook import EvalCountHook
from .reconstruction_grid_hook import ReconstructionGridHook
from .save_reconstructions_hook import SaveReconstructionsHook
from .skipped_images_hook import SkippedImagesHook
from .time_budget_hook import TimeBudgetHook

HOOKS.register_module(module=AtomicCheckpointHook)

__all__ = ['AtomicCheckpointHook', 'EvalCountHook', 'ReconstructionGridHook', 'SaveReconstructionsHook',
           'SkippedImagesHook', 'TimeBudgetHook', 'TransVAEEMAHook']
