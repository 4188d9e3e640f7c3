"""Training hooks: reconstruction grids, time budget, atomic checkpoints, corrupt-image reporting."""
from transvae.engine.runner import AtomicCheckpointHook
from transvae.registry import HOOKS

from .reconstruction_grid_hook import ReconstructionGridHook
from .save_reconstructions_hook import SaveReconstructionsHook
from .time_budget_hook import TimeBudgetHook

HOOKS.register_module(module=AtomicCheckpointHook)

__all__ = ['AtomicCheckpointHook', 'ReconstructionGridHook', 'SaveReconstructionsHook', 'TimeBudgetHook']

try:  # written separately; tolerated only while the file itself is missing
    from .skipped_images_hook import SkippedImagesHook  # noqa: F401
    __all__.append('SkippedImagesHook')
except ModuleNotFoundError as e:  # pragma: no cover
    if e.name != f'{__name__}.skipped_images_hook':
        raise
