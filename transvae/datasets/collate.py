"""Collation that tolerates skipped (``None``) samples and carries the skipped paths to the main process.

DataLoader workers are separate processes, so the dataset cannot count skips in a shared counter. Instead every skip
is recorded in a process-local list (:func:`push_skipped`); in train mode the dataset drains it into the next
sample's ``data_samples['skipped']``, in test mode (where a skipped sample is ``None``) :func:`skip_none_collate`
drains it into the batch. The collate runs in the same worker as the fetches of its batch, so nothing is lost.
"""
from __future__ import annotations

from typing import Any, Sequence

from mmengine.dataset import pseudo_collate

from transvae.registry import FUNCTIONS

_PENDING_SKIPS: list[str] = []


def push_skipped(path: str) -> None:
    """Record (in this process) that ``path`` was skipped; it travels with the next sample or batch."""
    _PENDING_SKIPS.append(path)


def pop_skipped() -> list[str]:
    """Return and clear the paths skipped in this process since the last call."""
    out = list(_PENDING_SKIPS)
    _PENDING_SKIPS.clear()
    return out


def empty_batch(skipped: Sequence[str] = ()) -> dict:
    """The batch returned when every sample of a batch was skipped (test mode only).

    ``dict(inputs=[], data_samples=[], skipped=[...paths])``: :func:`is_empty_batch` is the marker. Only this batch
    carries a top-level ``skipped`` key (there is no sample to carry the paths). It must not reach the model (its data
    preprocessor cannot stack nothing, and raises): the validation / test loops ``SkipEmptyValLoop`` /
    ``SkipEmptyTestLoop`` (``transvae.engine.loops``, named in the schedule configs) run the iteration hooks for it
    and nothing else, so ``SkippedImagesHook`` still counts the skips.
    """
    return dict(inputs=[], data_samples=[], skipped=list(skipped))


def is_empty_batch(data: Any) -> bool:
    """True for the :func:`empty_batch` marker (a batch whose every sample was skipped)."""
    return isinstance(data, dict) and isinstance(data.get('inputs'), (list, tuple)) and len(data['inputs']) == 0


def empty_batch_outputs() -> list:
    """What a model's ``val_step`` / ``test_step`` may return for an empty batch under mmengine's plain loops.

    ``[BaseDataElement(loss={})]``: mmengine 0.10's ``ValLoop`` / ``TestLoop`` read ``outputs[-1]`` (so ``[]``
    crashes) and strip a trailing loss-only element, so the evaluator then processes no prediction. transvae's own
    models leave this to the loops (``SkipEmptyValLoop`` / ``SkipEmptyTestLoop``) and know nothing of the marker.
    """
    from mmengine.structures import BaseDataElement
    return [BaseDataElement(loss=dict())]


@FUNCTIONS.register_module()
def skip_none_collate(data_batch: Sequence[Any]) -> Any:
    """Drop ``None`` samples, keep ``inputs`` unstacked and ``data_samples`` per sample.

    Args:
        data_batch: samples from the dataset (``dict(inputs, data_samples)`` as made by ``PackVAEInputs``, or
            ``None`` for a skipped file in test mode).

    Returns:
        ``dict(inputs: list of (3, H, W) uint8 tensors, data_samples: list of per-sample dicts)`` -- like
        ``pseudo_collate`` for ``inputs`` (the data preprocessor stacks), but ``data_samples`` is not transposed
        into a dict of lists, so ``data_samples[i]`` is sample ``i`` (``img_path``, ``ori_shape``, ``label``...).
        The paths skipped in this worker since its previous batch (test-mode ``None`` samples) are prepended to
        ``data_samples[0]['skipped']``; every sample keeps its own ``skipped`` list (train-mode re-draws).
        :func:`empty_batch` when all samples were ``None``. Samples of another structure go through
        ``pseudo_collate`` unchanged.
    """
    samples = [d for d in data_batch if d is not None]
    pending = pop_skipped()
    if not samples:
        return empty_batch(pending)
    packed = all(isinstance(s, dict) and 'inputs' in s and isinstance(s.get('data_samples'), dict) for s in samples)
    if not packed:
        _PENDING_SKIPS.extend(pending)  # nowhere to carry them: keep them for a later batch
        return pseudo_collate(samples)
    data_samples = []
    for s in samples:
        ds = dict(s['data_samples'])
        ds['skipped'] = list(ds.get('skipped') or [])
        data_samples.append(ds)
    data_samples[0]['skipped'] = pending + data_samples[0]['skipped']
    batch = dict(inputs=[s['inputs'] for s in samples], data_samples=data_samples)
    for key in samples[0]:
        if key not in batch:
            batch[key] = pseudo_collate([s[key] for s in samples])
    return batch
