"""Count the images the datasets had to skip (corrupt, truncated, empty, non-image files) and report them."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from mmengine.hooks import Hook

from transvae.registry import HOOKS


def extract_skipped(data_batch: Any) -> list[str]:
    """The skipped paths carried by a batch.

    Understands ``skip_none_collate`` batches (``data_samples``: list of dicts, each with a ``skipped`` list, and
    the top-level ``skipped`` of an empty batch), ``pseudo_collate`` batches (``data_samples['skipped']``, a list of
    per-sample lists), data elements with a ``skipped`` attribute, and un-collated lists of samples (``None``
    entries ignored).
    """
    if data_batch is None:
        return []
    if isinstance(data_batch, (list, tuple)):
        out: list[str] = []
        for item in data_batch:
            out.extend(extract_skipped(item))
        return out
    if not isinstance(data_batch, dict):
        return []
    out = _flatten(data_batch.get('skipped'))
    ds = data_batch.get('data_samples')
    if isinstance(ds, dict):
        out.extend(_flatten(ds.get('skipped')))
    elif isinstance(ds, (list, tuple)):
        for s in ds:
            if isinstance(s, dict):
                out.extend(_flatten(s.get('skipped')))
            elif hasattr(s, 'skipped'):
                out.extend(_flatten(getattr(s, 'skipped')))
    return out


def _flatten(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    if isinstance(value, Sequence):
        for v in value:
            out.extend(_flatten(v))
    return out


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Accumulate the ``skipped`` paths carried by the batches (see ``transvae.datasets.collate``) and log it.

    Per mode (``train`` / ``val`` / ``test``) it keeps the number of skip events and the set of distinct files.
    The counts go to the message hub as ``runtime_info`` ``skipped_images/<mode>`` (checkpointed with the message
    hub, so a resumed run continues the train count) and as the scalar ``<mode>/skipped_images`` (not a ``loss``
    key; LogProcessor shows its current value): the running train count in every train log line, the count of the
    current val / test run (reset at each run) in its epoch line. A warning summary with the distinct paths is
    logged at the end of each train epoch, of each val / test run and of the run, with the counts summed over the
    DDP ranks (also stored as ``skipped_images/<mode>_all_ranks``); the per-iteration counts are per rank (each rank
    loads its own shard). ``configs/_base_/default_runtime.py`` registers it in ``default_hooks`` (``skipped_images``).

    Args:
        log_every_skip: also log an info line for every iteration that carried skips.
        max_paths_in_summary: how many distinct paths to list in a summary.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL), so the count logged at iteration i includes it

    def __init__(self, log_every_skip: bool = False, max_paths_in_summary: int = 20) -> None:
        self.log_every_skip = log_every_skip
        self.max_paths_in_summary = max_paths_in_summary
        self.events: dict[str, int] = dict(train=0, val=0, test=0)
        self.files: dict[str, set[str]] = dict(train=set(), val=set(), test=set())
        self._epoch_start_events = 0

    # ------------------------------------------------------------------ helpers
    def _add(self, runner, mode: str, data_batch: Any) -> None:
        paths = extract_skipped(data_batch)
        if paths:
            self.events[mode] += len(paths)
            self.files[mode].update(paths)
            if self.log_every_skip:
                runner.logger.info(f'{mode}: {len(paths)} image(s) skipped in this iteration: {paths}')
        runner.message_hub.update_info(f'skipped_images/{mode}', self.events[mode])
        runner.message_hub.update_scalar(f'{mode}/skipped_images', self.events[mode])

    def _over_ranks(self, mode: str, since: int) -> tuple[int, int, list[str]]:
        """(events since ``since``, all events, distinct files), summed over the ranks (a collective call)."""
        from mmengine.dist import all_gather_object, get_world_size
        mine = (self.events[mode] - since, self.events[mode], sorted(self.files[mode]))
        if get_world_size() == 1:
            return mine
        gathered = all_gather_object(mine)
        return (sum(g[0] for g in gathered), sum(g[1] for g in gathered),
                sorted({f for g in gathered for f in g[2]}))

    def _summary(self, runner, mode: str, what: str, since: int = 0) -> None:
        n, total, files = self._over_ranks(mode, since)  # every rank calls it (collective), before any return
        runner.message_hub.update_info(f'skipped_images/{mode}_all_ranks', total)
        if n == 0 and not files:
            return
        shown = files[:self.max_paths_in_summary]
        more = f' (+{len(files) - len(shown)} more)' if len(files) > len(shown) else ''
        runner.logger.warning(f'{what}: {n} skipped image load(s); {total} in total over '
                              f'{len(files)} distinct file(s) (all ranks): {shown}{more}')

    # ------------------------------------------------------------------ train
    def before_train(self, runner) -> None:
        self.events['train'] = int(runner.message_hub.get_info('skipped_images/train', 0) or 0)

    def before_train_epoch(self, runner) -> None:
        self._epoch_start_events = self.events['train']

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        self._add(runner, 'train', data_batch)

    def after_train_epoch(self, runner) -> None:
        self._summary(runner, 'train', f'train epoch {runner.epoch}', self._epoch_start_events)

    # ------------------------------------------------------------------ val / test
    def before_val_epoch(self, runner) -> None:
        self.events['val'] = 0
        self.files['val'] = set()

    def after_val_iter(self, runner, batch_idx: int, data_batch: Any = None,
                       outputs: Optional[Sequence] = None) -> None:
        self._add(runner, 'val', data_batch)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._summary(runner, 'val', 'validation')

    def before_test_epoch(self, runner) -> None:
        self.events['test'] = 0
        self.files['test'] = set()

    def after_test_iter(self, runner, batch_idx: int, data_batch: Any = None,
                        outputs: Optional[Sequence] = None) -> None:
        self._add(runner, 'test', data_batch)

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._summary(runner, 'test', 'test')

    def after_run(self, runner) -> None:
        if self.events['train']:
            self._summary(runner, 'train', 'run')
