"""Deliberate faults for the fault drill (:mod:`.drills`): SIGKILL, a killed or failing checkpoint write, NaN.

:class:`FaultInjectionHook` is never in a real config: the drill adds it (``custom_imports`` of this module) to prove
that the runner, the checkpoints and the non-finite guard survive each fault. Iterations are 1-based (the iteration
that has just run, as ``iter_N.pth`` names it); ``rank`` limits a fault to one DDP rank (``None``: every rank).
"""
from __future__ import annotations

import errno
import glob
import os
import signal
import threading
import time
from typing import Optional

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from transvae.registry import HOOKS


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _sigkill_inside_write(directory: str, delay_s: float, timeout_s: float = 60.0) -> None:
    """SIGKILL this process ``delay_s`` after the temp file of an atomic write appears in ``directory`` (the runner
    first serialises the checkpoint in memory, then writes it: a timer started before would often fire too early)."""
    def watch() -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not glob.glob(os.path.join(directory, '.*.tmp')):
            time.sleep(0.0005)
        time.sleep(delay_s)
        _sigkill_self()

    threading.Thread(target=watch, daemon=True).start()


@HOOKS.register_module()
class FaultInjectionHook(Hook):
    """Inject one kind of fault at chosen iterations.

    Args:
        kill_at_iter: SIGKILL this process after training iteration N (before its checkpoint is saved).
        kill_in_save_at_iter: SIGKILL this process *while* the checkpoint of iteration N is being written: the
            checkpoint is padded with ``pad_mb`` MiB so the write takes a while, and the kill fires
            ``kill_delay_s`` seconds after the write's temp file appears.
        enospc_in_save_at_iter: the checkpoint write of iteration N fails with ``OSError(ENOSPC)`` after writing
            part of the file (a full disk, simulated where no size-limited file system can be mounted).
        nan_loss_at_iters / nan_grad_at_iters / nan_batch_at_iters: make the loss, one gradient, or the
            preprocessed input batch NaN / Inf at these iterations.
        rank: the rank that suffers the fault (``None``: all).
        pad_mb: padding of ``kill_in_save_at_iter`` checkpoints.
        kill_delay_s: delay of the SIGKILL after the write's temp file appears.
    """

    priority = 'VERY_LOW'  # after the checkpoint hook has run for the iteration

    def __init__(self, kill_at_iter: Optional[int] = None, kill_in_save_at_iter: Optional[int] = None,
                 enospc_in_save_at_iter: Optional[int] = None, nan_loss_at_iters: tuple = (),
                 nan_grad_at_iters: tuple = (), nan_batch_at_iters: tuple = (), rank: Optional[int] = None,
                 pad_mb: float = 64.0, kill_delay_s: float = 0.05) -> None:
        self.kill_at_iter = kill_at_iter
        self.kill_in_save_at_iter = kill_in_save_at_iter
        self.enospc_in_save_at_iter = enospc_in_save_at_iter
        self.nan_loss_at_iters = set(nan_loss_at_iters)
        self.nan_grad_at_iters = set(nan_grad_at_iters)
        self.nan_batch_at_iters = set(nan_batch_at_iters)
        self.rank = rank
        self.pad_mb = float(pad_mb)
        self.kill_delay_s = float(kill_delay_s)
        self._handles: list = []

    def _mine(self) -> bool:
        return self.rank is None or get_rank() == self.rank

    # -- SIGKILL between iterations ---------------------------------------------------------------------------------
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self.kill_at_iter is not None and runner.iter == self.kill_at_iter and self._mine():
            _sigkill_self()

    # -- faults inside the checkpoint write ---------------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        it = int(checkpoint.get('meta', {}).get('iter', runner.iter))
        if it == self.kill_in_save_at_iter and self._mine():
            checkpoint['drill_padding'] = torch.zeros(int(self.pad_mb * 2**18))  # float32: pad_mb MiB
            last = runner.message_hub.get_info('last_ckpt')  # the file being written (AtomicCheckpointHook)
            _sigkill_inside_write(os.path.dirname(last) if last else runner.work_dir, self.kill_delay_s)
        if it == self.enospc_in_save_at_iter and self._mine():
            _fail_next_torch_save_with_enospc()

    # -- NaN / Inf injection ------------------------------------------------------------------------------------------
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        it = runner.iter + 1  # the iteration about to run
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        if it in self.nan_batch_at_iters:
            def poison_batch(module, args, out):
                out = dict(out)
                out['inputs'] = out['inputs'].float() * float('nan')
                return out
            self._handles.append(model.data_preprocessor.register_forward_hook(poison_batch))
        if it in self.nan_loss_at_iters:
            def poison_loss(module, args, kwargs, out):
                if isinstance(out, dict) and kwargs.get('mode') == 'loss':
                    return {k: (v * float('inf') if k.startswith('loss') and torch.is_tensor(v) else v)
                            for k, v in out.items()}
                return out
            self._handles.append(model.register_forward_hook(poison_loss, with_kwargs=True))
        if it in self.nan_grad_at_iters:
            param = next(p for p in model.parameters() if p.requires_grad)
            self._handles.append(param.register_hook(lambda g: g * float('nan')))


def _fail_next_torch_save_with_enospc() -> None:
    """The next ``torch.save`` writes a few bytes, then raises ``OSError(ENOSPC)`` (as a full disk does)."""
    real = torch.save

    def failing_save(obj, f, *args, **kwargs):
        torch.save = real
        if hasattr(f, 'write'):
            f.write(b'PK\x03\x04' + b'\0' * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    torch.save = failing_save
    time.sleep(0)
