"""Count what a test run evaluated: the predictions made and the unreadable files skipped (all ranks summed)."""
from __future__ import annotations

from typing import Any, Optional

from mmengine.dist import all_gather_object, get_world_size
from mmengine.hooks import Hook

from transvae.registry import HOOKS

from .skipped_images_hook import extract_skipped

__all__ = ['EvalCountHook']


@HOOKS.register_module()
class EvalCountHook(Hook):
    """Counts the predictions of a test run (N evaluated) and the skipped unreadable files.

    ``tools/test.py`` registers one per test run and reads :meth:`totals` after ``runner.test()`` for the report's
    "N evaluated / skipped" columns. A prediction is an output dict with a ``pred_img``.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self.num_images = 0
        self.skipped: list[str] = []

    def before_test_epoch(self, runner) -> None:
        self.num_images, self.skipped = 0, []

    def after_test_iter(self, runner, batch_idx: int, data_batch: Any = None,
                        outputs: Optional[list] = None) -> None:
        self.num_images += sum(1 for o in (outputs or []) if isinstance(o, dict) and 'pred_img' in o)
        self.skipped.extend(extract_skipped(data_batch))

    def totals(self) -> tuple[int, list[str]]:
        """``(images evaluated, sorted unique skipped files)`` over all ranks (collective under DDP)."""
        if get_world_size() == 1:
            return self.num_images, sorted(set(self.skipped))
        gathered = all_gather_object((self.num_images, self.skipped))
        return sum(g[0] for g in gathered), sorted({p for g in gathered for p in g[1]})
