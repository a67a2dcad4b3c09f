"""``zoo list``: every backend x task, and whether its framework is installed."""

from __future__ import annotations

# Three-letter headers (explained under the table) so the matrix fits 80 columns.
_SHORT = {"classify": "cls", "detect": "det", "semantic-seg": "sem",
          "instance-seg": "ins", "keypoint": "kpt"}


def list_backends() -> None:
    """List every backend, the tasks it does, and whether its framework is installed."""
    from rich.console import Console
    from rich.table import Table

    from zoo.registry import get_registry
    from zoo.tasks import TASKS

    console = Console()
    wide = console.width >= 110
    table = Table(title="zoo backends", title_justify="left")
    table.add_column("backend", style="bold", no_wrap=True)
    for name in TASKS:
        table.add_column(_SHORT.get(name, name), justify="center", no_wrap=True)
    table.add_column("installed", no_wrap=not wide)
    if wide:
        table.add_column("description")
    specs = get_registry().backends.values()
    for spec in specs:
        missing = spec.missing()
        if not missing:
            status = "[green]yes[/]"
        else:
            status = f"[red]no[/]: {spec.install_hint}" if spec.extra or spec.install else f"[red]no[/]: needs {', '.join(missing)}"
        row = [spec.name, *("✓" if t in spec.tasks else "·" for t in TASKS), status]
        table.add_row(*row, *([spec.description] if wide else []))
    console.print(table)
    console.print(" " + " · ".join(f"{_SHORT.get(t, t)} {t}" for t in TASKS), style="dim")
    if not specs:
        console.print("no backend is installed; see README.md")
