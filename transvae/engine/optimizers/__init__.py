"""Optimizer wrappers (non-finite guard)."""
from .safe_optim_wrapper import NonFiniteGuardMixin, SafeAmpOptimWrapper, SafeOptimWrapper

__all__ = ['NonFiniteGuardMixin', 'SafeOptimWrapper', 'SafeAmpOptimWrapper']
