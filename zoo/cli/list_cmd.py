"""``zoo list``: every backend x task, and whether its framework is installed; the annotation
formats installed readers read and writers write (a plugin's among them)."""

from __future__ import annotations

import textwrap

# Three-letter headers (explained under the table) so the matrix fits 80 columns.
_SHORT = {"classify": "cls", "detect": "det", "semantic-seg": "sem",
          "instance-seg": "ins", "keypoint": "kpt"}


def list_backends() -> None:
    """List every backend, the tasks it does, and whether its framework is installed; how to
    install the missing ones goes under the table, one whole line per command (a table cell
    would cut it at 80 columns)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from zoo.registry import get_registry
    from zoo.tasks import TASKS

    console = Console()
    wide = console.width >= 110
    table = Table(title="zoo backends", title_justify="left")
    table.add_column("backend", style="bold", no_wrap=True)
    for name in TASKS:
        table.add_column(_SHORT.get(name, name), justify="center", no_wrap=True)
    table.add_column("installed", no_wrap=True)
    if wide:
        table.add_column("description")
    specs = get_registry().backends.values()
    to_install: dict[str, list[str]] = {}
    for spec in specs:
        missing = spec.missing()
        if missing:
            how = spec.install_hint if spec.extra or spec.install else f"needs {', '.join(missing)}"
            to_install.setdefault(how, []).append(spec.name)
        status = Text("no", style="red") if missing else Text("yes", style="green")
        row = [Text(spec.name), *("✓" if t in spec.tasks else "·" for t in TASKS), status]
        table.add_row(*row, *([Text(spec.description)] if wide else []))
    console.print(table)
    console.print(" " + " · ".join(f"{_SHORT.get(t, t)} {t}" for t in TASKS), style="dim")
    for how, names in to_install.items():  # plain text: `zoo[smp]` is no markup tag
        # the backends' names wrap as further comment lines: the command itself stays whole
        for line in textwrap.wrap(f"{how}  # {', '.join(names)}", width=max(40, console.width),
                                  subsequent_indent="    # ", break_long_words=False, break_on_hyphens=False):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not specs:
        console.print("no backend is installed; see README.md")
    _print_formats(console, get_registry())


def _print_formats(console, registry) -> None:
    """The formats ``--from`` reads and ``--to`` writes, wrapped at the terminal's width."""
    for what, names in (("formats read (--from)", registry.readers), ("formats written (--to)", registry.writers)):
        text = f"{what}: {', '.join(names) or 'none installed'}"
        for line in textwrap.wrap(text, width=max(40, console.width), subsequent_indent="    "):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
