"""``zoo list``: every backend x task, and whether its framework is installed."""

from __future__ import annotations


def list_backends() -> None:
    """List every backend, the tasks it does, and whether its framework is installed."""
    from rich.console import Console
    from rich.table import Table

    from zoo.registry import get_registry
    from zoo.tasks import TASKS

    registry = get_registry()
    table = Table(title="zoo backends", title_justify="left")
    table.add_column("backend", style="bold")
    for name in TASKS:
        table.add_column(name, justify="center")
    table.add_column("installed")
    table.add_column("description")
    for spec in registry.backends.values():
        missing = spec.missing()
        status = "[green]yes[/]" if not missing else f"[red]no[/] (pip install 'zoo[{spec.extra}]')" if spec.extra else "[red]no[/]"
        marks = ["✓" if t in spec.tasks else "" for t in TASKS]
        table.add_row(spec.name, *marks, status, spec.description)
    Console().print(table)
