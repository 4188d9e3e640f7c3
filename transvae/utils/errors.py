"""``UserInputError``: the one marker of errors in what a user handed in.

A file, an option, a config key or a folder that is wrong in a way the user can fix raises an exception that derives
from its natural base (``ValueError``, ``RuntimeError``, ...) *and* from :class:`UserInputError`. The tools
(``tools/train.py``, ``tools/test.py``, ``tools/extract_latents.py``, the converters) end such an error with one line,
``error: <message>``, and exit status 1 instead of a traceback (``transvae.engine.config_validation.config_errors``);
library callers catch the natural base as before. A bug of ours never derives from it, so it still shows its traceback.
"""
from __future__ import annotations


class UserInputError(Exception):
    """Mixin base of every error whose message tells the user what to change (file, option, key or folder)."""


class InputNotFoundError(UserInputError, FileNotFoundError):
    """A file or folder the user named (a reference, a checkpoint, a config, a data folder) does not exist."""
