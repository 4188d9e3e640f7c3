"""Optimizer wrappers (non-finite guard, sharded-gradient clipping) and the VAE + GAN optimizer-wrapper constructor."""
from .safe_optim_wrapper import NonFiniteGuardMixin, SafeAmpOptimWrapper, SafeOptimWrapper
from .sharded_clip import ShardedGradClipMixin, clip_grad_norm_sharded_
from .vae_gan_constructor import VAEGANOptimWrapperConstructor, split_gan_params

__all__ = ['NonFiniteGuardMixin', 'SafeOptimWrapper', 'SafeAmpOptimWrapper', 'ShardedGradClipMixin',
           'clip_grad_norm_sharded_', 'VAEGANOptimWrapperConstructor', 'split_gan_params']
