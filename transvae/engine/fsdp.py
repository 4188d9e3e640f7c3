"""Fully sharded data parallel (FSDP) training through MMEngine's ``FlexibleRunner``, on CUDA and on CPU (gloo).

A config opts in with ``configs/_base_/strategies/fsdp.py`` (``runner_type='FlexibleRunner'`` and
``strategy=dict(type='TransVAEFSDPStrategy', ...)``). What this adds to mmengine's ``FSDPStrategy`` (0.10.7):

* :func:`transvae_block_wrap_policy` (registered in ``FUNCTIONS``): every block (a module whose class declares
  ``fsdp_unit = True``: ``TransVAEBlock``, ``ViTBlock``, ``SwinBlock``, ``ResBlock``, ``AttnBlock`` and any other
  subclass of ``transvae.models.blocks.Block``; or the registered classes named in ``block_types``) becomes its own
  FSDP unit, so only one block's full parameters are materialised at a time; the stems, samplers and heads stay in
  the root unit.
* CPU: mmengine passes ``device_id=LOCAL_RANK`` (a CUDA device); without CUDA the model is wrapped with
  ``device_id=torch.device('cpu')`` and trains over gloo. The CUDA path is unchanged.
* Frozen networks are not sharded: the top-most submodules whose parameters are all frozen go to FSDP's
  ``ignored_modules`` (a module with any trainable parameter is never ignored: its gradients would not be
  synchronised). The LPIPS and VF foundation networks are hidden from ``parameters()`` altogether (see
  :class:`~transvae.models.losses.LPIPS`), so FSDP never sees them; this catches any other frozen part (a frozen
  encoder, a frozen ``ReconstructionNLL.logvar``, a frozen VF projection). FSDP's device move skips both the
  ignored modules and the hidden networks; :func:`move_unmanaged_states` moves them (CUDA).
* Gradient clipping: the built :class:`~transvae.engine.optimizers.SafeOptimWrapper` /
  ``SafeAmpOptimWrapper`` are marked ``sharded_grads=True`` so ``clip_grad=dict(max_norm=...)`` uses the global
  norm (mmengine's clipping would use each rank's shard). A plain mmengine ``OptimWrapper`` with norm clipping is
  refused.
* A model whose ``train_step`` FSDP would bypass is refused: ``MMFullyShardedDataParallel.train_step`` runs one
  forward(``mode='loss'``) / backward / step. That is exactly ``VAE`` and stage-1 ``VAEGAN`` (no discriminator: one
  optimizer, the G step only), but not the GAN stage (a discriminator, two optimizers): train that with
  ``MMSeparateDistributedDataParallel``.
* Checkpoints (``state_dict_cfg='full'``): rank 0 writes one ordinary file (``state_dict`` with the plain model's
  keys, the full optimizer state) atomically (temp file + ``os.replace``), after checking that the weights are
  finite, so a ``VAE`` built from the same config, ``tools/test.py`` and ``transvae.apis`` load it as they load any
  other checkpoint.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Callable, Optional, Union

import torch
from mmengine._strategy import FSDPStrategy
from mmengine.config import Config
from mmengine.dist import get_rank, is_main_process
from mmengine.hooks import EMAHook
from mmengine.model import is_model_wrapper
from mmengine.optim import BaseOptimWrapper, OptimWrapperDict
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel

from transvae.registry import FUNCTIONS, HOOKS, OPTIM_WRAPPERS, STRATEGIES, resolve_type

from .fsdp_model import (check_fsdp_model, frozen_submodules, is_fsdp_unit, move_unmanaged_states, resolve_block_types,
                         transvae_block_wrap_policy)
from .hooks.reconstruction_grid_hook import ReconstructionGridHook
from .optimizers.safe_optim_wrapper import SafeAmpOptimWrapper, _any_rank
from .optimizers.sharded_clip import ShardedGradClipMixin

__all__ = ['is_fsdp_unit', 'resolve_block_types', 'transvae_block_wrap_policy', 'frozen_submodules',
           'move_unmanaged_states', 'check_fsdp_model', 'TransVAEFSDPStrategy', 'is_fsdp_config',
           'check_fsdp_config', 'fsdp_config_for_eval', 'check_no_aliased_states']

# ---------------------------------------------------------------------------------------------------------------------
# strategy
# ---------------------------------------------------------------------------------------------------------------------
@STRATEGIES.register_module()
class TransVAEFSDPStrategy(FSDPStrategy):
    """mmengine's :class:`~mmengine._strategy.FSDPStrategy` for transvae models, on CUDA (NCCL) and CPU (gloo).

    See the module docstring for what differs. Keyword args are ``FSDPStrategy``'s (``model_wrapper``,
    ``state_dict_cfg``, ``activation_checkpointing``, ``skip_init_weights``, ...) plus:

    Args:
        ignore_frozen_modules: pass the top-most all-frozen submodules (:func:`frozen_submodules`) to FSDP as
            ``ignored_modules`` (added to any the ``model_wrapper`` config names). Defaults to True.
    """

    def __init__(self, *, ignore_frozen_modules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_frozen_modules = bool(ignore_frozen_modules)

    # -- model -------------------------------------------------------------------------------------------------------
    def build_model(self, model: Union[nn.Module, dict]) -> nn.Module:
        model = super().build_model(model)
        check_fsdp_model(model)
        return model

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        """Wrap ``model`` in ``MMFullyShardedDataParallel`` (CPU-capable, frozen modules ignored)."""
        if is_model_wrapper(model):
            return model
        base_cfg = self.model_wrapper
        cfg = copy.deepcopy(dict(base_cfg)) if base_cfg is not None else dict(type='MMFullyShardedDataParallel')
        if not torch.cuda.is_available():
            # mmengine's default device_id=LOCAL_RANK names a CUDA device; FSDP on CPU needs the CPU device
            cfg['device_id'] = torch.device('cpu')
        ignored = cfg.get('ignored_modules', None) or []
        if isinstance(ignored, (str, nn.Module)):
            ignored = [ignored]
        named = dict(model.named_modules())
        ignored = [named[m] if isinstance(m, str) else m for m in ignored]
        if self.ignore_frozen_modules:
            frozen = frozen_submodules(model)
            ignored += [m for _, m in frozen if all(m is not other for other in ignored)]
            if frozen:
                self.logger.info('FSDP: not sharding the frozen submodules ' + ', '.join(n for n, _ in frozen))
        if ignored:
            cfg['ignored_modules'] = ignored
        device = cfg.get('device_id', None)
        if device is None:
            device = torch.device('cuda', int(os.environ['LOCAL_RANK']))  # mmengine's default device_id
        elif isinstance(device, int):
            device = torch.device('cuda', device)
        move_unmanaged_states(model, ignored, torch.device(device))
        base_osd_cfg = self.optim_state_dict_config
        if torch.device(device).type == 'cpu' and getattr(base_osd_cfg, 'offload_to_cpu', False):
            # On CPU the offload is a no-op, and with it FSDP's full optimizer state dict returns every state of a
            # parameter as a view of ONE reused gather buffer (torch 2.14, gloo, use_orig_params): exp_avg came
            # back equal to exp_avg_sq, so every resumed FSDP run continued from wrong AdamW moments
            # (fault_drill.py --only sigkill_resume_fsdp). Without the offload each state is its own tensor.
            self.optim_state_dict_config = dataclasses.replace(base_osd_cfg, offload_to_cpu=False)
        # mmengine looks registered names up in its root FUNCTIONS registry, which finds a transvae function only
        # by its scoped name ('transvae.xxx'): resolve names here (transvae first, then mmengine's)
        policy = cfg.get('auto_wrap_policy', None)
        if isinstance(policy, dict) and isinstance(policy.get('type'), str):
            policy['type'] = FUNCTIONS.get(policy['type'])
        elif isinstance(policy, str):
            cfg['auto_wrap_policy'] = FUNCTIONS.get(policy)
        base_ac = self.activation_checkpointing
        if isinstance(base_ac, dict):
            ac = copy.deepcopy(dict(base_ac))
            check_fn = ac.get('check_fn')
            if isinstance(check_fn, str):
                ac['check_fn'] = FUNCTIONS.get(check_fn)
            elif isinstance(check_fn, dict) and isinstance(check_fn.get('type'), str):
                ac['check_fn'] = dict(check_fn, type=FUNCTIONS.get(check_fn['type']))
            self.activation_checkpointing = ac
        self.model_wrapper = cfg
        try:
            wrapped = super()._wrap_model(model)
        finally:
            self.model_wrapper = base_cfg
            self.activation_checkpointing = base_ac
            self.optim_state_dict_config = base_osd_cfg
        units = sum(1 for m in wrapped.modules() if isinstance(m, FullyShardedDataParallel)) - 1
        self.logger.info(f'FSDP: {units} sharded units below the root ({type(model).__name__}); sharding '
                         f'strategy {getattr(wrapped, "sharding_strategy", None)}, device '
                         f'{cfg.get("device_id", "LOCAL_RANK")}')
        return wrapped

    # -- optimizer -----------------------------------------------------------------------------------------------------
    def build_optim_wrapper(self, optim_wrapper: Union[torch.optim.Optimizer, BaseOptimWrapper, dict],
                            model: Optional[nn.Module] = None) -> BaseOptimWrapper:
        """mmengine's build (the optimizer over the sharded parameters), then mark the wrappers for global-norm
        clipping; ``SafeAmpOptimWrapper`` gets mmengine's ``ShardedGradScaler`` (``use_fsdp=True``) as
        ``AmpOptimWrapper`` does."""
        cls = resolve_type(optim_wrapper, OPTIM_WRAPPERS, missing_ok=True) if isinstance(optim_wrapper, dict) else None
        if cls is not None and issubclass(cls, SafeAmpOptimWrapper):
            optim_wrapper = copy.copy(optim_wrapper)
            optim_wrapper.setdefault('use_fsdp', True)
        built = super().build_optim_wrapper(optim_wrapper, model)
        model = model if model is not None else getattr(self, 'model', None)
        self.mark_sharded_grads(built, model)
        return built

    @staticmethod
    def mark_sharded_grads(optim_wrapper: BaseOptimWrapper, model: Optional[nn.Module]) -> None:
        """Set ``sharded_grads`` / ``grad_process_group`` on every wrapper of ``optim_wrapper`` from the FSDP
        sharding of ``model``; ``ValueError`` for a wrapper that would clip by a local norm."""
        sharded, group = _sharding_of(model)
        wrappers = list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        for w in wrappers:
            if isinstance(w, ShardedGradClipMixin):
                w.sharded_grads = sharded
                w.grad_process_group = group
            elif sharded and getattr(w, 'clip_grad_kwargs', None) and getattr(w, 'grad_name', '') == 'grad_norm':
                raise ValueError(
                    f'{type(w).__name__} with clip_grad={w.clip_grad_kwargs} would clip each rank\'s FSDP shard by '
                    'its own norm. Use SafeOptimWrapper / SafeAmpOptimWrapper, which clip by the global norm under '
                    'TransVAEFSDPStrategy.')

    # -- checkpoints ---------------------------------------------------------------------------------------------------
    def optim_state_dict(self) -> dict:
        """The optimizer state in the configured FSDP form (``full``: keyed by parameter name, gathered on rank 0),
        plus the wrapper's loss-scaler state where it has one. Collective."""
        wrapper = self.optim_wrapper
        state = FullyShardedDataParallel.optim_state_dict(self.model, wrapper.optimizer)
        if self._is_full_state_dict():  # (local state dicts hold ShardedTensors, one per state)
            check_no_aliased_states(state)
        scaler = getattr(wrapper, 'loss_scaler', None)
        if scaler is not None:
            state['loss_scaler'] = scaler.state_dict()
        return state

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load what :meth:`optim_state_dict` saved, re-sharded for this rank. Collective.

        (mmengine 0.10.7 passes the arguments of ``FSDP.optim_state_dict_to_load`` in the order of torch < 2.1,
        which fails with this torch; keywords here.)
        """
        state_dict = dict(state_dict)
        scaler = state_dict.pop('loss_scaler', None)
        state = FullyShardedDataParallel.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        if scaler is not None:
            state['loss_scaler'] = scaler
        self.optim_wrapper.load_state_dict(state)

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True, save_param_scheduler: bool = True,
                        extra_ckpt: Optional[dict] = None, callback: Optional[Callable] = None) -> None:
        """As ``FSDPStrategy.save_checkpoint``, but every file is encoded for ``weights_only`` loading
        (:mod:`~transvae.engine.checkpoint_io`), refused when a weight is non-finite (every rank raises) and written
        atomically. ``state_dict_cfg='full'``: rank 0 writes ``filename``; ``'local'``: every rank writes its shard
        to ``filename/rank{r}.pth``. Collective: every rank must call it."""
        import time

        import mmengine
        from mmengine.utils import get_git_hash

        from .atomic_io import atomic_write, nonfinite_tensors
        from .checkpoint_io import encode_checkpoint

        full = self._is_full_state_dict()
        checkpoint: dict = {'state_dict': self.model_state_dict()}  # full: gathered on rank 0 (all ranks take part)
        bad = nonfinite_tensors(_local_tensors(checkpoint['state_dict'])) if is_main_process() or not full else []
        if _any_rank(bool(bad)):
            raise RuntimeError(
                f'Refusing to save checkpoint {filename}: the model has non-finite weights'
                + (f' in {len(bad)} tensors (first: {", ".join(bad[:5])})' if bad else '')
                + '. The previous checkpoint is left intact; resume from it with `--resume` (lower lr, clip_grad, '
                'or fp32).')
        if save_optimizer and hasattr(self, 'optim_wrapper'):
            checkpoint['optimizer'] = self.optim_state_dict()
        if save_param_scheduler and hasattr(self, 'param_schedulers'):
            checkpoint['param_schedulers'] = self.scheduler_state_dict()
        extra_ckpt = dict(extra_ckpt or {})
        meta = dict(extra_ckpt.get('meta', None) or {})
        meta.update(seed=self.seed, time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
                    mmengine=mmengine.__version__ + get_git_hash())
        extra_ckpt['meta'] = meta
        checkpoint.update(extra_ckpt)
        if callback is not None:
            callback(checkpoint)
        if full and get_rank() != 0:
            return
        if not full:
            os.makedirs(filename, exist_ok=True)
            filename = os.path.join(filename, f'rank{get_rank()}.pth')
        checkpoint = encode_checkpoint(checkpoint)  # loadable with weights_only=True (checkpoint_io)
        if '://' in str(filename):
            from mmengine.runner.checkpoint import save_checkpoint as mm_save_checkpoint
            mm_save_checkpoint(checkpoint, filename)
        else:
            atomic_write(filename, lambda f: torch.save(checkpoint, f))


def _local_tensors(state_dict: dict) -> dict:
    """``state_dict`` with every ``ShardedTensor`` replaced by its local shards (what this rank can check)."""
    from .checkpoint_io import is_sharded_tensor
    out = {}
    for name, value in state_dict.items():
        if is_sharded_tensor(value):
            for i, shard in enumerate(value.local_shards()):
                out[f'{name}[shard {i}]'] = shard.tensor
        else:
            out[name] = value
    return out


def check_no_aliased_states(optim_state: dict) -> None:
    """``RuntimeError`` if two states of one parameter (e.g. AdamW's ``exp_avg`` and ``exp_avg_sq``) share memory.

    A gathered optimizer state whose tensors alias one buffer holds one value under several names: saving it would
    silently write wrong moments (what FSDP's CPU offload of the full optimizer state did; see ``_wrap_model``).
    """
    for name, states in (optim_state.get('state') or {}).items():
        seen: dict = {}
        for key, value in (states.items() if isinstance(states, dict) else ()):
            if not torch.is_tensor(value) or value.dim() == 0 or value.numel() == 0:
                continue  # step counters are scalars; empty shards have no memory to share
            ptr = (value.untyped_storage().data_ptr(), value.storage_offset())
            if ptr in seen:
                raise RuntimeError(
                    f'FSDP returned the optimizer states {seen[ptr]!r} and {key!r} of {name!r} as one shared buffer; '
                    'saving them would write wrong values. Set optim_state_dict_config offload_to_cpu=False.')
            seen[ptr] = key


def _sharding_of(model: Optional[nn.Module]) -> tuple[bool, Optional[Any]]:
    """``(gradients are sharded, the process group they are sharded over)`` for an FSDP-wrapped ``model``."""
    from torch.distributed.fsdp import ShardingStrategy
    if not isinstance(model, FullyShardedDataParallel):
        return False, None
    strategy = getattr(model, 'sharding_strategy', None)
    if strategy is None or strategy == ShardingStrategy.NO_SHARD:
        return False, None  # every rank holds the full, all-reduced gradient: the local norm is the global one
    # FULL_SHARD / SHARD_GRAD_OP shard over the whole group; the hybrid strategies shard within `process_group`
    # and replicate across it, so the norm is reduced within the shard group only.
    return True, getattr(model, 'process_group', None)


# ---------------------------------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------------------------------
def is_fsdp_config(cfg: Config) -> bool:
    """Whether ``cfg`` trains with an FSDP strategy (``strategy.type`` names an ``FSDPStrategy`` subclass)."""
    strategy = cfg.get('strategy', None)
    if not isinstance(strategy, dict):
        return False
    cls = resolve_type(strategy, STRATEGIES, missing_ok=True)
    return cls is not None and issubclass(cls, FSDPStrategy)


def check_fsdp_config(cfg: Config) -> None:
    """``ValueError`` for what an FSDP training config cannot do (hooks that need the full, unsharded weights).

    ``EMAHook`` deep-copies the model: under FSDP it would average each rank's flat shards and save rank 0's only.
    ``ReconstructionGridHook`` calls ``model.reconstruct`` on rank 0 outside the FSDP forward, where the parameters
    are shards (it fails with "weight should have at least three dimensions" at its first grid).
    """
    if not is_fsdp_config(cfg):
        return
    unsupported = {
        EMAHook: 'the average would be taken of the per-rank parameter shards; train with EMA under DDP',
        ReconstructionGridHook: 'it calls the model outside the FSDP forward, on sharded parameters; run '
                                '`tools/test.py --show-dir` on a checkpoint instead'}
    for hook in cfg.get('custom_hooks', None) or []:
        cls = resolve_type(hook, HOOKS, missing_ok=True)  # an unregistered name fails where the hook is built
        for base, why in unsupported.items():
            if cls is not None and issubclass(cls, base):
                raise ValueError(f'{cls.__name__} is not supported with FSDP (TransVAEFSDPStrategy): {why}, or remove '
                                 'the hook.')


def fsdp_config_for_eval(cfg: Config, runner_type: str = 'TransVAERunner') -> bool:
    """Evaluation needs no sharding: turn an FSDP training config into one the default runner evaluates.

    Drops ``strategy`` and sets ``runner_type`` (the checkpoints of ``state_dict_cfg='full'`` are ordinary full
    state dicts, so the plain model loads them). Returns True when ``cfg`` was changed. ``cfg`` is changed in place.
    """
    if not is_fsdp_config(cfg):
        return False
    cfg.pop('strategy')
    cfg.runner_type = runner_type
    return True

