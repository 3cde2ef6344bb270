"""User-facing errors.

Every mistake a user can make (bad config key, missing data package, wrong image shape,
corrupt checkpoint, ...) raises :class:`SoftdimoError` with a one-paragraph message that says
what is wrong and what to do. The CLI prints the message and exits with status 2 instead of a
traceback; library users can catch the exception.
"""
from __future__ import annotations


class SoftdimoError(Exception):
    """An error caused by user input, with a message meant to be read by that user."""


class ConfigError(SoftdimoError, ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, missing file)."""


class DataError(SoftdimoError):
    """A dataset is missing or an input tensor has the wrong shape."""


class CheckpointError(SoftdimoError):
    """A checkpoint or pretrained folder is missing, corrupt or does not match the model."""
