"""User-facing errors.

Anything the user can fix (a bad file, a wrong flag, a missing framework) is raised as a
:class:`ZooError`. The CLI prints it as one line on stderr and exits with status 2; every
other exception is a bug in zoo and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """An error the user can act on. ``str(err)`` is the whole message."""

    exit_code = 2


class DataError(ZooError):
    """A problem in the user's annotation data, pointing at the file (and shape)."""

    def __init__(self, file: object, reason: str, shape: int | None = None):
        self.file = str(file)
        self.shape = shape
        self.reason = reason
        where = self.file if shape is None else f"{self.file} (shape {shape})"
        super().__init__(f"{where}: {reason}")


class ConfigError(ZooError):
    """A bad configuration key or value."""


class MissingDependency(ZooError):
    """A backend's framework is not installed."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, word: str, choices: Iterable[str]) -> ZooError:
    """The error for an unknown name: says the near miss, else lists what exists."""
    choices = sorted(choices)
    hint = did_you_mean(word, choices)
    if not hint:
        hint = f"; known: {', '.join(choices)}" if choices else f"; no {kind} is known"
    return ZooError(f"unknown {kind} '{word}'{hint}")
