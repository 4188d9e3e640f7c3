"""Training and test hooks: reconstruction grids, time budget, atomic checkpoints, corrupt-image reporting, EMA,
evaluation counts, the learning-rate override of a resumed run."""
from .checkpoint_hook import AtomicCheckpointHook
from .ema_hook import TransVAEEMAHook
from .eval_count_hook import EvalCountHook
from .reconstruction_grid_hook import ReconstructionGridHook
from .resume_lr_hook import ResumeLRHook
from .save_reconstructions_hook import SaveReconstructionsHook
from .skipped_images_hook import SkippedImagesHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['AtomicCheckpointHook', 'EvalCountHook', 'ReconstructionGridHook', 'ResumeLRHook', 'SaveReconstructionsHook',
           'SkippedImagesHook', 'TimeBudgetHook', 'TransVAEEMAHook']
