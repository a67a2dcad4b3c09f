"""``zoo demo``: write the built-in demo dataset."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Argument(Path("zoo-demo"), help="Folder to write the demo dataset into."),
) -> None:
    """Write the built-in blood-smear demo dataset (labelme format, all five tasks)."""
    from zoo.cli.render import stderr_console
    from zoo.data.demo import write_demo

    summary = write_demo(out)
    stderr_console().print(
        f"wrote {summary['images']} images to {out} "
        f"({', '.join(f'{n} {k}' for k, n in summary['instances'].items())})", markup=False, highlight=True, soft_wrap=True,
    )
