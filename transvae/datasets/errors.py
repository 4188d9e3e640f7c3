"""Errors of the dataset layer that name a user's folder and what to do about it.

The tools (``tools/train.py``, ``tools/test.py``, ``tools/extract_latents.py``) print a :class:`DataRootError` as one
``error: <message>`` line and exit non-zero (``transvae.engine.config_validation.config_errors``).
"""
from __future__ import annotations

from transvae.utils.errors import UserInputError


class DataRootError(UserInputError, ValueError):
    """A dataset's ``data_root`` that cannot be used as given; the message names the folder and what to do."""


class DataRootNotFoundError(DataRootError, FileNotFoundError):
    """A dataset's ``data_root`` that does not exist (or is not a folder)."""
