"""The library's user-facing errors.

Every check of something the user supplies (a config, an override, a file, a checkpoint, a run
folder) raises a :class:`GloreError`. The ``glore`` command prints such an error as one line and
exits 2; any other exception is a bug in glore or a library below it and keeps its traceback
(exit 1). Subclasses also derive from the builtin they replaced (``ValueError``, ...) so that
existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class GloreError(Exception):
    """A mistake in what the user gave glore; the message says what and where."""


class ConfigError(GloreError, ValueError):
    """A config file or override that cannot be used."""


class RunFolderError(GloreError, FileExistsError):
    """A run folder that is in use, or holds an earlier run that would be overwritten."""


class ResumeError(GloreError, ValueError):
    """A checkpoint that cannot be resumed with the given config."""


class ArgumentError(GloreError, ValueError):
    """An argument or config value that glore's own checks refuse (out of range, not a choice)."""


class ArgumentTypeError(GloreError, TypeError):
    """An argument or config value of the wrong type."""


class MissingFileError(GloreError, FileNotFoundError):
    """A file or folder named by the user that does not exist."""
