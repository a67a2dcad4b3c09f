"""``zoo check``: lint an annotation folder as `zoo run` would read it, training nothing.

Exit status: 0 clean, 1 findings, 2 unreadable input (as linters do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def check(
    data: Path = typer.Argument(..., help="Annotation folder or file (only read)."),
    fmt: str = typer.Option("auto", "--from", help="Input format (labelme, voc, yolo, coco, folders); detected when 'auto'."),
    labels: Optional[Path] = typer.Option(
        None, "--labels", help="Class names, one per line (labelme labels.txt convention); labels not in it are findings."
    ),
    task: Optional[str] = typer.Option(None, "--task", help="Also check the data can serve this task (exit 2 if not)."),
    val: float = typer.Option(0.2, "--val", help="The validation fraction `zoo run` will use (classes too rare for it are findings)."),
    test: float = typer.Option(0.0, "--test", help="The test fraction `zoo run` will use."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="The folder holding the images, when the annotations live elsewhere (found by path, else by file name).",
    ),
    output: str = typer.Option("table", "--format", help="table, or json for tools."),
    fix: bool = typer.Option(False, "--fix", help="Write a corrected copy to --out (labels merged, exact duplicates dropped)."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --fix: a new folder for the corrected copy (never the source)."),
    map_: list[str] = typer.Option([], "--map", help="With --fix: rename a label, 'OLD=NEW' (repeatable); wins over suggestions."),
    group: Optional[str] = typer.Option(None, "--group", help="Regex whose first capture group names each image's patient (study, volume, ...) in its path, as for zoo run: groups per class, classes in too few groups, and leaks across the data's own split are checked."),
) -> None:
    """Lint an annotation folder: every finding with its file, shape and a suggested fix."""
    from zoo.errors import ZooError

    if output not in ("table", "json"):
        raise ZooError(f"--format {output!r}: expected table or json")
    if fix != (out is not None):
        raise ZooError("--fix and --out go together: zoo check --fix --out NEW_FOLDER")
    if map_ and not fix:
        raise ZooError("--map renames labels in the copy --fix writes: add --fix --out NEW_FOLDER")
    from zoo.data import lint, lint_fix
    from zoo.registry import get_registry

    registry = get_registry()
    mapping = lint_fix.parse_map(map_)
    if fix:
        from zoo.data.output import check_out

        check_out(data, out)  # before reading: a wrong --out fails at once
    report = lint.lint_folder(data, fmt=fmt, labels=labels, task=task, val=val, test=test, images=images,
                              group=group, registry=registry)
    changes: list[str] | None = None
    final = report
    if fix:
        plan = lint_fix.plan_fixes(report.findings, mapping)
        fixed, changes = lint_fix.fix_dataset(report.dataset, plan)
        lint_fix.write_fixed(report.dataset, plan, data, out, registry)
        final = lint.lint_folder(out, fmt=fixed.format, labels=labels, task=task, val=val, test=test, group=group,
                                 registry=registry)
    if output == "json":
        _print_json(data, report, changes, final if fix else None)
    else:
        _print_table(data, report, changes, final if fix else None, out)
    raise typer.Exit(final.exit_status)


def _print_json(data: Path, report, changes, after) -> None:
    import orjson

    doc = {"data": str(data), "format": report.dataset.format, "tasks": report.tasks, "summary": report.dataset.summary(),
           "counts": {lvl: report.count(lvl) for lvl in ("error", "warning")},
           "findings": [f.as_dict() for f in report.findings]}
    if report.groups is not None:
        doc["groups"] = report.groups
    if changes is not None:
        doc["changes"] = changes
        doc["after_fix"] = [f.as_dict() for f in after.findings]
    typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def _print_table(data: Path, report, changes, after, out: Path | None) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from zoo.cli.views import print_summary

    console = Console()
    ds = report.dataset
    from dataclasses import replace

    # the readers' warnings are findings below: the table counts them, the list shows them once
    served = ", ".join(report.tasks) or "no task"
    print_summary(replace(ds, warnings=[]), title=f"{data} ({ds.format}; serves {served})", summary=ds.summary())
    if report.groups is not None:
        g = report.groups
        console.print(f"{g['groups']} groups ({g['rule']}); groups per class: "
                      + ", ".join(f"{name} {n}" for name, n in g["per_class"].items()), highlight=False)
    if not report.findings:
        console.print("[green]clean[/green]: no findings")
    else:
        by_check = Counter((f.check, f.level) for f in report.findings)
        table = Table(title="findings", title_justify="left", header_style="bold")
        for col in ("check", "level", "count", "first"):
            table.add_column(col, justify="right" if col == "count" else "left")
        for (check, level), n in by_check.items():
            first = next(f for f in report.findings if f.check == check and f.level == level)
            table.add_row(check, Text(level, style="red" if level == "error" else "yellow"), str(n), first.message)
        console.print(table)
        for f in report.findings:
            where = f.file if f.shape is None else f"{f.file} (shape {f.shape})"
            console.print(Text.assemble((f.level, "red" if f.level == "error" else "yellow"),
                                        f" [{f.check}] {where}: {f.message}", (f" -> {f.fix}" if f.fix else "", "dim")),
                          highlight=False, soft_wrap=True)
        console.print(f"{report.count('error')} error(s), {report.count('warning')} warning(s)"
                      + ("" if changes is not None else f"; `zoo check {data} --fix --out NEW_FOLDER` writes a corrected copy"),
                      markup=False, highlight=False, soft_wrap=True)
    if changes is not None:
        console.print(f"[bold]--fix[/bold]: {len(changes)} change(s) written to {out} (the source is unchanged):",
                      highlight=False, soft_wrap=True)
        for line in changes:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"the copy re-checks with {after.count('error')} error(s), {after.count('warning')} warning(s)"
                      + (" (what remains needs a person)" if after.findings else ": clean"), highlight=False)
