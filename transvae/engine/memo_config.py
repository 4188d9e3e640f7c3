"""A run's config text, formatted once: mmengine's ``Config.pretty_text`` runs yapf over the whole config on every
call (about 1 s of CPU for a recipe config on this project's 2-core test machine), and one training run asks for it
five times (the logged config, the dumped config file, the visualizer's copy, the runtime info, each checkpoint's
``meta``). :class:`MemoConfig` returns exactly mmengine's text and formats only when the unformatted text changed.
"""
from __future__ import annotations

import copy

from mmengine.config import Config


class MemoConfig(Config):
    """A :class:`~mmengine.config.Config` whose ``pretty_text`` is memoised on its unformatted text.

    The formatted text is a function of the unformatted one (the same yapf call on it), so the memo is keyed by that
    text: a changed config (any value, nested or not) formats again, and the result is always mmengine's own string.
    """

    @classmethod
    def of(cls, cfg: Config) -> 'MemoConfig':
        """``cfg`` as a :class:`MemoConfig` sharing its state (not a copy); ``cfg`` itself when it is one."""
        if isinstance(cfg, cls):
            return cfg
        memo = cls.__new__(cls)
        memo.__dict__.update(cfg.__dict__)  # Config.__setattr__ writes into the content: set the state directly
        return memo

    @property
    def pretty_text(self) -> str:
        """mmengine's formatted config text (yapf runs only when the unformatted text differs from the last one)."""
        if not self._format_python_code:
            return Config.pretty_text.fget(self)
        plain = copy.copy(self)  # shallow: the same content, unformatted
        super(Config, plain).__setattr__('_format_python_code', False)
        raw = Config.pretty_text.fget(plain)
        memo = self.__dict__.get('_pretty_text_memo')
        if memo is None or memo[0] != raw:
            memo = (raw, Config.pretty_text.fget(self))
            super(Config, self).__setattr__('_pretty_text_memo', memo)
        return memo[1]
