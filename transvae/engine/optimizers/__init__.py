"""Optimizer wrappers (non-finite guard, sharded-gradient clipping)."""
from .resume_lr import ResumeLRHook, rescale_learning_rate
from .safe_optim_wrapper import NonFiniteGuardMixin, SafeAmpOptimWrapper, SafeOptimWrapper
from .sharded_clip import ShardedGradClipMixin, clip_grad_norm_sharded_

__all__ = ['ResumeLRHook', 'rescale_learning_rate', 'NonFiniteGuardMixin', 'SafeOptimWrapper', 'SafeAmpOptimWrapper', 'ShardedGradClipMixin',
           'clip_grad_norm_sharded_']
