"""Import every registering module and make ``transvae`` the default MMEngine scope."""
from __future__ import annotations

import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import all transvae modules so their classes are registered.

    Args:
        init_default_scope: make ``transvae`` the current default scope (a new instance with a unique name when
            another scope is current, as the OpenMMLab codebases do).
    """
    import transvae.datasets  # noqa: F401
    import transvae.engine  # noqa: F401
    import transvae.evaluation  # noqa: F401
    import transvae.models  # noqa: F401
    import transvae.visualization  # noqa: F401

    if not init_default_scope:
        return
    never_created = (DefaultScope.get_current_instance() is None
                     or not DefaultScope.check_instance_created('transvae'))
    if never_created:
        DefaultScope.get_instance('transvae', scope_name='transvae')
        return
    current = DefaultScope.get_current_instance()
    if current.scope_name != 'transvae':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "transvae"; '
                      '`register_all_modules` forces it to "transvae".')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S%f')
        DefaultScope.get_instance(f'transvae-{stamp}', scope_name='transvae')
