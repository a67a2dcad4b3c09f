"""How the pipeline tells people what it is doing, without painting the screen itself.

The pipeline (run, compare, predict, eval, convert) takes a :class:`Reporter` and calls it;
only ``zoo/cli`` implements one that draws (rich, on stderr). Everything else -- a test, a
notebook, a Ray worker -- gets :class:`LogReporter`, which writes to the ``zoo`` logger.

Backends call :func:`track` around their long loops (epochs, batches, images); it draws a
rich bar when stderr is a terminal and stays silent otherwise (logs, CI, tests).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")

_log = logging.getLogger("zoo")


class Reporter(Protocol):
    """What the pipeline may say while it works. Results are returned, never reported."""

    def say(self, message: str) -> None:
        """A line of progress for people ("training yolov8 ...")."""

    def warn(self, message: str) -> None:
        """Something the user should act on; the run goes on."""

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """``items``, with a progress bar where one can be drawn."""


class LogReporter:
    """The reporter of everything that is not the CLI: the ``zoo`` logger, no drawing."""

    def say(self, message: str) -> None:
        _log.info("%s", message)

    def warn(self, message: str) -> None:
        _log.warning("%s", message)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        return iter(items)


def enabled() -> bool:
    return sys.stderr.isatty()


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if not enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(
        items, description=description, total=total, console=Console(stderr=True), transient=True
    )
