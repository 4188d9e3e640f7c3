"""Runner, hooks, optimizer wrappers and the FSDP strategy (everything registered in the ``transvae`` scope)."""
from .fsdp import TransVAEFSDPStrategy, transvae_block_wrap_policy
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .loops import SkipEmptyTestLoop, SkipEmptyValLoop
from .optimizers import (NonFiniteGuardMixin, SafeAmpOptimWrapper, SafeOptimWrapper, ShardedGradClipMixin,
                         VAEGANOptimWrapperConstructor)
from .flexible_runner import TransVAEFlexibleRunner
from .runner import TransVAERunner

__all__ = list(_hooks_all) + ['NonFiniteGuardMixin', 'SafeOptimWrapper', 'SafeAmpOptimWrapper',
                              'ShardedGradClipMixin', 'VAEGANOptimWrapperConstructor', 'TransVAERunner',
                              'TransVAEFlexibleRunner', 'TransVAEFSDPStrategy', 'transvae_block_wrap_policy',
                              'SkipEmptyValLoop', 'SkipEmptyTestLoop']
