"""``zoo install NAME``: install a framework that a pip extra cannot (plugins provide the recipe)."""

from __future__ import annotations

import typer


def install(
    name: str = typer.Argument(..., help="The framework to install, e.g. detectron2."),
) -> None:
    """Make a framework importable in this environment, with this interpreter's pip (nothing when it already is)."""
    from rich.console import Console

    from zoo.registry import get_registry

    console = Console(stderr=True)
    summary = get_registry().installer(name).load()(say=console.print)
    console.print(summary)
