"""RNG-exact resume in one process, in well under a second (issue 23, part 3).

The property -- a resumed run draws the same random numbers as the uninterrupted one, and validation does not move
the training stream -- is otherwise guarded only by the long multi-process fault drill (SIGKILL + resume) and the
two-run ``tools/train.py --resume`` test. Here each link of the chain is checked by value, in one process:

1. ``TransVAERunner``'s ``before_save_checkpoint`` puts ``rng_state`` into the checkpoint dict mmengine writes, and
   its ``load_checkpoint`` hands it to the resume; ``get_rng_state`` -> checkpoint dict -> ``encode_checkpoint`` -> ``torch.save`` -> ``load_checkpoint_file``
   (``weights_only``) -> ``set_rng_state``: the next torch / numpy / python draws (including the cached Gaussians of
   numpy's and python's Box-Muller) equal the uninterrupted ones.
2. ``RNGExactResumeMixin`` on a stub runner: ``resume`` turns the loaded state into a pending restore,
   ``before_train_epoch`` arms it on an ``IterBasedTrainLoop`` that then skips the already-trained batches the way
   mmengine's loop does (``next`` x ``_iter``), and the batches and training draws after the skip equal the
   uninterrupted run's -- while restoring one batch early or late, or before the skip, does not.
3. ``before_val`` / ``after_val``: whatever validation draws, the training stream continues as without validation.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from mmengine.runner import IterBasedTrainLoop

from transvae.engine.checkpoint_io import encode_checkpoint, load_checkpoint_file
from transvae.engine.rng_state import RestoreRNGAfter, RNGExactResumeMixin, get_rng_state, set_rng_state

SEED = 1234
TOTAL, RESUME_AT = 7, 3  # iterations; the checkpoint is written after iteration RESUME_AT - 1


def seed_all(seed: int = SEED) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def draws() -> tuple:
    """One of everything a training step / data pipeline draws, including odd Gaussian counts (so a lost Box-Muller
    cache -- numpy's ``has_gauss`` / ``cached_gaussian``, python's ``gauss_next`` -- changes the next value)."""
    return (tuple(torch.rand(3).tolist()), torch.randint(0, 10**6, (1, )).item(), tuple(np.random.randn(3).tolist()),
            int(np.random.randint(10**6)), random.random(), random.gauss(0.0, 1.0))


def loader():
    """A data-loader stand-in whose batches consume all three streams (random crops, flips, a shuffling sampler)."""
    while True:
        yield draws()


def roundtrip(state: dict, tmp_path) -> dict:
    """The state as the runner stores it (``checkpoint['rng_state']``, safely encoded) and loads it back."""
    path = tmp_path / 'ckpt.pth'
    torch.save(encode_checkpoint(dict(meta=dict(iter=RESUME_AT), state_dict={}, rng_state=state)), path)
    ckpt = load_checkpoint_file(str(path))
    return ckpt['rng_state']


def uninterrupted() -> tuple[list, dict]:
    """TOTAL iterations (a batch, then a training step's draws); the state saved after iteration RESUME_AT - 1."""
    seed_all()
    it, out, saved = loader(), [], None
    for i in range(TOTAL):
        if i == RESUME_AT:
            saved = get_rng_state()
        out.append((next(it), draws()))
    return out, saved


def test_state_roundtrip_through_a_checkpoint_file(tmp_path):
    seed_all()
    draws()
    random.gauss(0, 1)  # leave python's gauss_next cached ...
    np.random.randn()  # ... and numpy's cached Gaussian (an odd count of legacy normals)
    saved = get_rng_state()
    want = [draws() for _ in range(3)]
    restored = roundtrip(saved, tmp_path)
    assert set(restored) >= {'torch', 'numpy', 'python'}
    seed_all(99)  # another process: different stream
    assert draws() != want[0]
    set_rng_state(restored)
    assert [draws() for _ in range(3)] == want


def test_the_runner_saves_and_loads_the_state_with_every_checkpoint(tmp_path):
    """``TransVAERunner.call_hook('before_save_checkpoint')`` (on a runner without ``__init__``: only the members the
    hook reads) adds the encoded ``rng_state`` to the checkpoint; ``TransVAERunner.load_checkpoint`` of that file
    keeps it for the resume; setting it continues the saved stream."""
    from mmengine.logging import MMLogger
    from torch import nn

    from transvae.engine.runner import TransVAERunner
    runner = TransVAERunner.__new__(TransVAERunner)
    runner.model, runner.cfg, runner._hooks = nn.Linear(2, 3), None, []
    runner.logger = MMLogger.get_instance('h9-rng-state-fast')
    seed_all()
    draws()
    np.random.randn()  # numpy's Gaussian cache is part of the state
    checkpoint = dict(meta=dict(iter=RESUME_AT), state_dict=runner.model.state_dict())
    TransVAERunner.call_hook(runner, 'before_save_checkpoint', checkpoint=checkpoint)
    want = [draws() for _ in range(2)]
    path = tmp_path / 'iter_3.pth'
    torch.save(checkpoint, path)
    seed_all(7)
    TransVAERunner.load_checkpoint(runner, str(path))
    assert runner._loaded_rng_state is not None
    set_rng_state(runner._loaded_rng_state)
    assert [draws() for _ in range(2)] == want


class _Base:
    """The few ``Runner`` members the mixin uses; ``resume`` loads the file as ``TransVAERunner.load_checkpoint``."""

    world_size = 1
    _randomness_cfg: dict = {}

    def __init__(self) -> None:
        self.hooks: list[str] = []

    def call_hook(self, fn_name: str, **kwargs) -> None:
        self.hooks.append(fn_name)

    def resume(self, filename: str, *args, **kwargs) -> None:
        self._loaded_rng_state = load_checkpoint_file(filename).get('rng_state')


class StubRunner(RNGExactResumeMixin, _Base):
    pass


def iter_loop(n_done: int, iterator) -> IterBasedTrainLoop:
    """An ``IterBasedTrainLoop`` at iteration ``n_done`` (no runner / dataloader needed for what the mixin reads)."""
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    loop._iter = n_done
    loop.dataloader_iterator = iterator
    return loop


def resumed(tmp_path, saved: dict) -> list:
    """A new process with the same seed resumes at RESUME_AT: mixin resume, arm at ``before_train_epoch``, mmengine's
    skip of the trained batches, then the remaining iterations."""
    path = tmp_path / f'iter_{RESUME_AT}.pth'
    torch.save(encode_checkpoint(dict(meta=dict(iter=RESUME_AT), state_dict={}, rng_state=saved)), path)
    seed_all()
    runner = StubRunner()
    runner.resume(str(path))
    assert runner._pending_rng_state is not None
    runner.train_loop = loop = iter_loop(RESUME_AT, loader())
    runner.call_hook('before_train_epoch')
    assert runner._pending_rng_state is None and runner.hooks == ['before_train_epoch']
    for _ in range(loop._iter):  # IterBasedTrainLoop.run's skip
        next(loop.dataloader_iterator)
    return [(next(loop.dataloader_iterator), draws()) for _ in range(RESUME_AT, TOTAL)]


def test_resume_continues_the_uninterrupted_stream(tmp_path):
    want, saved = uninterrupted()
    assert resumed(tmp_path, saved) == want[RESUME_AT:]


@pytest.mark.parametrize('restore_after', [RESUME_AT - 1, RESUME_AT + 1, 0])
def test_restoring_at_the_wrong_batch_differs(restore_after):
    """The check above is sharp: restoring one batch early, one late, or before the skip gives other numbers."""
    want, saved = uninterrupted()
    seed_all()
    it = loader()
    if restore_after == 0:
        set_rng_state(saved)
    else:
        it = RestoreRNGAfter(it, restore_after, saved)
    for _ in range(RESUME_AT):
        next(it)
    assert [(next(it), draws()) for _ in range(RESUME_AT, TOTAL)] != want[RESUME_AT:]


def test_restore_after_passes_items_and_attributes_through():
    inner = iter(range(5))
    wrapped = RestoreRNGAfter(inner, 2, get_rng_state())
    assert [next(wrapped) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert wrapped._state is None and wrapped.__length_hint__() == 0  # attribute of the wrapped iterator


def test_non_iter_loop_restores_at_once():
    """An epoch-based (or any other) loop: the state is set at ``before_train_epoch``, before its iterator exists."""
    seed_all()
    saved = get_rng_state()
    want = draws()
    runner = StubRunner()
    runner._pending_rng_state = saved
    runner.train_loop = object()
    seed_all(5)
    runner.call_hook('before_train_epoch')
    assert draws() == want


@pytest.mark.parametrize('val_draws', [0, 1, 17])
def test_validation_does_not_move_the_training_stream(val_draws):
    seed_all()
    draws()
    want = [draws() for _ in range(2)]
    seed_all()
    draws()
    runner = StubRunner()
    runner.call_hook('before_val')
    for _ in range(val_draws):  # validation's data loader / sampling draws
        draws()
        torch.randn(50)
    runner.call_hook('after_val')
    assert runner.hooks == ['before_val', 'after_val']
    assert [draws() for _ in range(2)] == want
    assert runner._rng_before_val is None
