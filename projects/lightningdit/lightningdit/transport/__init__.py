from .guidance import ClassifierFreeGuidance
from .loss import VelocityLoss
from .ode_samplers import EulerODESampler, HeunODESampler, time_grid
from .path import LinearPath, expand_t
from .timesteps import LogitNormalTimesteps, UniformTimesteps

__all__ = ['ClassifierFreeGuidance', 'EulerODESampler', 'HeunODESampler', 'LinearPath', 'LogitNormalTimesteps',
           'UniformTimesteps', 'VelocityLoss', 'expand_t', 'time_grid']
