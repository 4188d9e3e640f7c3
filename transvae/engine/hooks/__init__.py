"""Training hooks: reconstruction grids, time budget, atomic checkpoints, corrupt-image reporting, EMA."""
from transvae.engine.runner import AtomicCheckpointHook
from transvae.registry import HOOKS

from .ema_hook import TransVAEEMAHook
from .reconstruction_grid_hook import ReconstructionGridHook
from .save_reconstructions_hook import SaveReconstructionsHook
from .skipped_images_hook import SkippedImagesHook
from .time_budget_hook import TimeBudgetHook

HOOKS.register_module(module=AtomicCheckpointHook)

__all__ = ['AtomicCheckpointHook', 'ReconstructionGridHook', 'SaveReconstructionsHook', 'SkippedImagesHook',
           'TimeBudgetHook', 'TransVAEEMAHook']
