"""Progress bars on stderr, one style for the whole tool.

Backends call :func:`track` around their long loops (epochs, batches, images); it draws a
rich bar when stderr is a terminal and stays silent otherwise (logs, CI, tests).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


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
