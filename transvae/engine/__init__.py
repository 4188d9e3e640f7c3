"""Runner, hooks and optimizer wrappers (everything registered in the ``transvae`` scope)."""
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .optimizers import NonFiniteGuardMixin, SafeAmpOptimWrapper, SafeOptimWrapper
from .runner import AtomicCheckpointHook, TransVAERunner

__all__ = list(_hooks_all) + ['NonFiniteGuardMixin', 'SafeOptimWrapper', 'SafeAmpOptimWrapper', 'TransVAERunner']
