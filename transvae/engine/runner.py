"""``TransVAERunner``: mmengine's Runner with crash-safe checkpoints and exact resume.

Differences from :class:`mmengine.runner.Runner` (0.10.7), everything else unchanged:

* ``save_checkpoint`` is mmengine's, except its last step for a local file: instead of serialising the whole
  checkpoint into memory and handing the bytes to a file backend (2-3x the checkpoint's size in host memory, tens of
  GB for the largest models), ``torch.save`` streams into :func:`~transvae.engine.atomic_io.atomic_write`: a temporary
  file in the target directory, flushed and fsynced, then ``os.replace``-d over the final name (and the directory
  fsynced), so an interrupted save never leaves a truncated ``iter_N.pth`` (remote ``out_dir`` / ``backend_args``:
  mmengine's backends, whose object stores replace whole objects anyway). The checkpoint hook must be :class:`AtomicCheckpointHook` (a plain ``CheckpointHook`` is
  refused with an error that says so), which writes the ``last_checkpoint`` pointer the same way and only after the
  checkpoint it names is complete; ``--resume auto`` reads that pointer, so it only ever names complete files.
* ``save_checkpoint`` refuses (``RuntimeError``, on every rank) to save a model with non-finite weights.
* The torch / numpy / python RNG states are saved in the checkpoint (``rng_state``) and restored on resume where the
  uninterrupted run stood (after the loop has skipped the already-seen batches); validation runs with the RNG state
  saved and restored around it. A resumed run (same seed, ``num_workers=0`` or deterministic workers) therefore ends
  with the same weights as an uninterrupted one.
* Checkpoints are encoded to load with ``torch.load(weights_only=True)`` (:mod:`~transvae.engine.checkpoint_io`).
* The saved ``state_dict`` has the plain model's keys also when submodules are wrapped
  (``MMSeparateDistributedDataParallel`` wraps each trainable child in DDP, whose ``state_dict`` would read
  ``decoder.module.conv_in.weight``; such keys neither resume nor load into an unwrapped model), as mmengine's
  ``get_state_dict`` gives them.
* An EMA hook must be :class:`~transvae.engine.hooks.TransVAEEMAHook` (``TrainableEMA``: the trainable generator
  weights only, correct under ``MMSeparateDistributedDataParallel``; a plain ``EMAHook`` is refused with an error
  that says so); an EMA type that copies the wrappers is refused for a model with wrapped submodules.
* The work dir is owned by one run (:mod:`~transvae.engine.work_dir_lock`): global rank 0 takes ``work_dir/run.lock``
  in ``setup_env``, before the log dir, the log file or the config dump exist; a second run on the same directory
  raises ``WorkDirBusyError`` naming the owner on every rank, a lock left by a killed run is taken over (logged).
  Released when ``train()`` / ``val()`` / ``test()`` returns.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

import mmengine.runner.runner as mm_runner_module
import torch
from mmengine.hooks import CheckpointHook, EMAHook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu
from torch import nn

from transvae.registry import RUNNERS

from .atomic_io import atomic_write, is_local, nonfinite_tensors
from .checkpoint_compat import check_checkpoint_fits, config_name_of
from .checkpoint_io import encode_checkpoint, load_checkpoint_file
from .compile import compile_model
from .hooks.checkpoint_hook import AtomicCheckpointHook
from .rng_state import RNGExactResumeMixin, get_rng_state
from .work_dir_lock import WorkDirOwnerMixin


@contextlib.contextmanager
def _streamed_atomic_writes() -> Iterator[None]:
    """While mmengine's ``Runner.save_checkpoint`` runs, its final write (the module-level ``save_checkpoint`` it
    calls, which would ``torch.save`` into a ``BytesIO`` and ``put`` the bytes) streams a local file through
    :func:`atomic_write` instead; remote targets and explicit backends keep mmengine's path. Swapped for the one call
    and restored after it, so the rest of mmengine is untouched."""
    original = mm_runner_module.save_checkpoint

    def write(checkpoint: dict, filename: str, file_client_args: Optional[dict] = None,
              backend_args: Optional[dict] = None) -> None:
        if file_client_args is None and backend_args is None and is_local(filename):
            atomic_write(filename, lambda f: torch.save(checkpoint, f))
        else:
            original(checkpoint, filename, file_client_args=file_client_args, backend_args=backend_args)

    mm_runner_module.save_checkpoint = write
    try:
        yield
    finally:
        mm_runner_module.save_checkpoint = original


# ---------------------------------------------------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------------------------------------------------
@RUNNERS.register_module()
class TransVAERunner(RNGExactResumeMixin, WorkDirOwnerMixin, Runner):
    """mmengine ``Runner``: atomic checkpoints, a non-finite-weights guard, RNG-exact resume, one run per work dir."""

    # -- work dir ----------------------------------------------------------------------------------------------------
    def setup_env(self, env_cfg: dict) -> None:
        """mmengine's ``setup_env`` (process group, timestamp), then own ``work_dir`` (``work_dir_lock``) before the
        runner writes anything there (log dir, log file, config dump, checkpoints, stale-``.tmp`` clean-up): a second
        run on the same directory raises :class:`~transvae.engine.work_dir_lock.WorkDirBusyError` on every rank."""
        super().setup_env(env_cfg)
        self._own_work_dir()

    # -- hooks -------------------------------------------------------------------------------------------------------
    def build_logger(self, *args, **kwargs):
        """Give this runner a process-unique experiment name before its logger, message hub and visualizer exist.

        MMEngine names them ``<config>_<timestamp>`` at one-second resolution and *reuses* an existing instance of
        that name: a second runner built within the same second (a resumed run, a test, a tool training several
        variants) would inherit the first one's runtime info (iteration, time budget, non-finite-step count) and
        write its scalars into the first one's work dir. A suffix ``_1``, ``_2``, ... keeps them apart (every DDP
        rank builds the same sequence of runners, so ranks agree on the name).
        """
        from mmengine.logging import MessageHub, MMLogger
        from mmengine.visualization import Visualizer
        base, name, k = self._experiment_name, self._experiment_name, 0
        while any(cls.check_instance_created(name) for cls in (MMLogger, MessageHub, Visualizer)):
            k += 1
            name = f'{base}_{k}'
        self._experiment_name = name
        logger = super().build_logger(*args, **kwargs)
        self._log_work_dir_takeover(logger)
        return logger

    def register_hook(self, hook, priority=None) -> None:
        """Register ``hook`` as mmengine does, then validate the hooks (see :meth:`_check_hooks`)."""
        super().register_hook(hook, priority)
        self._check_hooks()

    def _check_hooks(self) -> None:
        """Refuse hooks that would silently defeat this runner's guarantees; each error names the class to use.

        * a ``CheckpointHook`` must be an :class:`AtomicCheckpointHook` (mmengine's prunes before it saves and
          truncates ``last_checkpoint`` before rewriting it);
        * an ``EMAHook`` must be a :class:`~transvae.engine.hooks.TransVAEEMAHook` (mmengine's deep-copies the model,
          DDP wrappers of submodules included), and its average must keep the plain model's keys when submodules
          are DDP-wrapped.
        """
        from transvae.engine.hooks.ema_hook import TransVAEEMAHook, is_wrapper_safe_ema
        wrapped = is_model_wrapper(self.model) and any(is_model_wrapper(m) for m in self.model.module.children())
        for hook in self._hooks:
            name = type(hook).__name__
            if isinstance(hook, CheckpointHook) and not isinstance(hook, AtomicCheckpointHook):
                raise ValueError(
                    f"{name} under {type(self).__name__}: use type='AtomicCheckpointHook' for the checkpoint hook "
                    "(default_hooks.checkpoint, as configs/_base_/default_runtime.py does) or subclass it. mmengine's "
                    'CheckpointHook deletes the oldest checkpoint before saving the new one and rewrites '
                    '`last_checkpoint` non-atomically, so a crash can leave nothing to resume from.')
            if isinstance(hook, EMAHook) and not isinstance(hook, TransVAEEMAHook):
                raise ValueError(
                    f"{name} under {type(self).__name__}: use type='TransVAEEMAHook' in custom_hooks (same arguments; "
                    'it averages the trainable generator weights with TrainableEMA and works under '
                    "MMSeparateDistributedDataParallel) or subclass it. mmengine's EMAHook deep-copies the whole "
                    'model, wrappers included.')
            ema_type = hook.ema_cfg.get('type') if isinstance(hook, EMAHook) else None
            if wrapped and ema_type is not None and not is_wrapper_safe_ema(ema_type):
                raise ValueError(
                    f'{name}(ema_type={ema_type!r}) with a model whose submodules are DDP-wrapped '
                    f'({type(self.model).__name__}): the average would copy the wrappers, so its keys '
                    '(module.decoder.module.*) would not match the checkpoint and a resumed EMA would not load. '
                    "Use ema_type='TrainableEMA' (the default of TransVAEEMAHook).")

    # -- resume ------------------------------------------------------------------------------------------------------
    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False, revise_keys=None):
        # mmengine's Runner.load_checkpoint, plus the safe loader and the architecture check before any weight moves
        from mmengine.runner.checkpoint import _load_checkpoint_to_model
        checkpoint = load_checkpoint_file(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self._unwrapped_model()
        check_checkpoint_fits(model, checkpoint, str(filename), config_name_of(self.cfg), allow_partial=not strict,
                              tool_hint='`python tools/test.py {config} {ckpt}`')
        _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys or [(r'^module\.', '')])
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        self._loaded_rng_state = checkpoint.get('rng_state') if isinstance(checkpoint, dict) else None
        return checkpoint

    # -- save --------------------------------------------------------------------------------------------------------
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True, meta: Optional[dict] = None,
                        by_epoch: bool = True, backend_args: Optional[dict] = None) -> None:
        """mmengine's ``save_checkpoint`` (same arguments) after the non-finite-weights check, streamed atomically into
        a local file (:func:`_streamed_atomic_writes`); the content is completed in :meth:`call_hook` (see the module
        docstring)."""
        # every rank checks (the weights are identical under DDP), so every rank raises together
        bad = nonfinite_tensors(get_state_dict(self._unwrapped_model()))
        if bad:
            raise RuntimeError(
                f'Refusing to save checkpoint {filename}: the model has non-finite weights in {len(bad)} tensors '
                f'(first: {", ".join(bad[:5])}). The previous checkpoint in {out_dir} is left intact; resume from it '
                f'with `--resume` (lower lr, clip_grad, or fp32).')
        with _streamed_atomic_writes():
            super().save_checkpoint(out_dir, filename, file_client_args=file_client_args,
                                    save_optimizer=save_optimizer, save_param_scheduler=save_param_scheduler,
                                    meta=meta, by_epoch=by_epoch, backend_args=backend_args)

    def call_hook(self, fn_name: str, **kwargs) -> None:
        """mmengine's ``call_hook``; around ``before_save_checkpoint`` (called by mmengine's ``save_checkpoint`` on
        rank 0 with the assembled checkpoint, which it then writes) the checkpoint gets, before the hooks see it, the
        plain model's keys in ``state_dict`` (also through wrapped submodules), ``meta['config_file']`` and
        ``rng_state``, and after them the encoding that lets it load with ``torch.load(weights_only=True)``
        (:func:`~transvae.engine.checkpoint_io.encode_checkpoint`: HistoryBuffers, numpy arrays)."""
        checkpoint = kwargs.get('checkpoint')
        saving = fn_name == 'before_save_checkpoint' and isinstance(checkpoint, dict)
        if saving:
            state_dict = get_state_dict(self._unwrapped_model())
            if list(state_dict) != list(checkpoint.get('state_dict', {})):  # submodules wrapped: `*.module.*` keys
                checkpoint['state_dict'] = weights_to_cpu(state_dict)
            if isinstance(checkpoint.get('meta'), dict):
                checkpoint['meta']['config_file'] = config_name_of(self.cfg) or ''
            checkpoint['rng_state'] = get_rng_state()
        super().call_hook(fn_name, **kwargs)
        if saving:
            encoded = encode_checkpoint(checkpoint)
            checkpoint.clear()
            checkpoint.update(encoded)

    def _maybe_compile(self, target: str) -> None:
        """mmengine's ``compile`` option, narrowed to the model computation (:mod:`transvae.engine.compile`): the
        loss method and ``reconstruct`` are compiled, not mmengine's whole ``target`` (``train_step``)."""
        names = compile_model(self._unwrapped_model(), self.cfg.get('compile', None))
        if names:
            self.logger.info(f'torch.compile: {type(self._unwrapped_model()).__name__}.{", .".join(names)} (the '
                             'first iterations compile; the optimizer step stays eager)')

    def _unwrapped_model(self) -> nn.Module:
        """The model inside the runner's own wrapper (DDP); its submodules may still be wrapped."""
        return self.model.module if is_model_wrapper(self.model) else self.model
