"""What the CLI draws from the results of compare, eval and convert / check (rich); the
reporter and run / predict's tables are in :mod:`zoo.cli.render`.

The pipeline returns result objects (zoo.pipeline.leaderboard.CompareResult, ...); the tables
people read on the terminal are made here, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _esc(v: Any) -> str:
    """User text (paths, error messages) shown through rich: never read as markup."""
    from rich.markup import escape

    return escape(str(v))


@dataclass
class _Column:
    header: str
    cells: list[str]
    justify: str = "right"
    style: str | None = None
    #: a narrow screen gives up the columns of highest ``drop`` first (0: always shown); each
    #: is in leaderboard.md / .csv, which the caption then points at
    drop: int = 0


def leaderboard_table(result, width: int | None = None):
    """The compare's leaderboard (zoo.pipeline.leaderboard.CompareResult) as a rich table that
    fits ``width`` (the console's): nothing cut, no word split. The main metric carries its
    interval, the others their value; "vs #1" is the paired verdict; when the screen is too
    narrow, timings and sizes go first, then the secondary metrics (leaderboard.md has them all)."""
    from rich.console import Console

    columns = _leaderboard_columns(result)
    width = width or Console().width
    every = columns

    def fits(cols) -> bool:
        return _table_width(_board_table(result, cols)) <= width

    while not fits(columns) and any(c.drop for c in columns):
        victim = max(columns, key=lambda c: c.drop)
        columns = [c for c in columns if c is not victim]
    for back in sorted((c for c in every if c not in columns), key=lambda c: c.drop):  # a narrow one may fit again
        trial = [c for c in every if c in columns or c is back]
        if fits(trial):
            columns = trial
    dropped = [c.header for c in every if c not in columns]
    return _board_table(result, columns, _leaderboard_notes(result, dropped))


def _table_width(table) -> int:
    """The width ``table`` (without a caption, which wraps) needs to show every cell whole."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum


def _leaderboard_columns(result) -> list[_Column]:
    from zoo.pipeline.leaderboard import fmt_params
    from zoo.metrics import fmt
    from zoo.pipeline.report import fmt_seconds
    from zoo.tasks import get_task

    rows = result.rows
    ok = [r for r in rows if r.ok]
    first = next((r for r in ok if r.metrics), None)
    schema = get_task(result.task).metrics_schema
    metrics = list(schema.headline_of(first.metrics, n=3)) if first else []
    main = schema.main if first else None
    with_test = bool(main) and any(r.metrics.get("test") for r in ok)

    def cells(of_row, failed: str = "") -> list[str]:
        return [of_row(r) if r.ok else failed for r in rows]

    cols = [_Column("#", [str(k) if r.ok else "–" for k, r in enumerate(rows, 1)]),
            _Column("backend", [r.backend + ("*" if r.status == "reused" else "") for r in rows],
                    justify="left", style="bold")]
    if len({r.manifest.framework for r in ok}) > 1:  # the framework only when it tells rows apart
        cols.append(_Column("framework", cells(lambda r: r.manifest.framework or ""), justify="left", drop=2))
    for k, m in enumerate(metrics):
        show = (lambda r, m=m: schema.fmt(r.metrics, m)) if m == main else (lambda r, m=m: fmt(r.metrics.get(m)))
        cols.append(_Column(m, cells(show, failed="failed" if k == 0 else ""), style="bold" if m == main else None,
                            drop=0 if m == main else 3 + len(metrics) - k))
    if with_test:
        cols.append(_Column(f"{main} test", cells(lambda r: schema.fmt(r.metrics.get("test") or {}, main))))
    if result.verdicts:
        cols.append(_Column("vs #1", cells(lambda r: _verdict_cell(result.verdicts.get(r.backend))), justify="left"))
    cols += [_Column("params", cells(lambda r: fmt_params(r.manifest.parameters)), drop=11),
             _Column("train", cells(lambda r: fmt_seconds(r.manifest.timings.fit)), drop=10),
             _Column("ms/img", cells(lambda r: _ms(r.manifest.timings.predict_per_image_ms)), drop=12)]
    if len({r.manifest.device or "" for r in ok}) > 1:
        cols.append(_Column("device", cells(lambda r: r.manifest.device or ""), justify="left", drop=13))
    return cols


def _ms(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def _verdict_cell(v) -> str:
    """The winner row: ``best``; another: ``worse`` when the winner is better beyond chance,
    ``≈`` when not, with P(winner better)."""
    if v is None:
        return "best"
    p = f" (P {v.p_better:.2f})" if v.p_better is not None else ""
    return ("worse" if v.distinguishable else "≈") + p


def _board_table(result, columns: list[_Column], notes: list[str] = ()):
    from rich import box
    from rich.table import Table

    devices = {r.manifest.device or "" for r in result.rows if r.ok}
    title = f"zoo compare · {result.task}" + (f" · {devices.pop()}" if len(devices) == 1 else "")
    caption = "\n".join(_esc(n) for n in notes) or None
    table = Table(title=_esc(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, caption=caption, caption_justify="left")
    for c in columns:
        table.add_column(_esc(c.header), justify=c.justify, style=c.style, no_wrap=True)
    for k, row in enumerate(result.rows):
        table.add_row(*(("[red]failed[/]" if c.cells[k] == "failed" else _esc(c.cells[k])) for c in columns))
    return table


def _leaderboard_notes(result, dropped: list[str] = ()) -> list[str]:
    """The lines under the leaderboard: the protocol every backend followed, each failure,
    what the marks (``*`` reused, vs #1's ``worse`` and ``≈``) mean, and what a narrow screen left out."""
    from zoo.pipeline.leaderboard import starting_weights
    from zoo.selection import describe

    rows = result.rows
    notes = [f"model selection, every backend: {describe(result.selection)}"] if result.selection else []
    notes.append(f"starting weights, every backend: {starting_weights(result.pretrained)}")
    notes += [f"{r.backend}: {r.error}" for r in rows if not r.ok]
    if any(r.status == "reused" for r in rows):
        notes.append("* reused a finished run with the same data, split, seed and config")
    if result.verdicts:
        marks = {_verdict_cell(v).split(" ")[0] for v in result.verdicts.values()}
        said = ["vs #1: #1 against each backend on the same images (paired bootstrap); "
                "P: the share of resamples in which #1 scores higher"]
        if "worse" in marks:
            said.append("worse: #1 is better beyond chance (the 95% interval of the difference is above 0)")
        if "≈" in marks:
            said.append("≈: not distinguishable from #1 (the interval reaches 0)")
        notes.append("; ".join(said) + "; the differences with their intervals are in leaderboard.md")
    if dropped:
        notes.append(f"{', '.join(dropped)}: in leaderboard.md (a wider terminal shows them here)")
    return notes


def print_leaderboard(result) -> None:
    """The leaderboard on stdout, where its files are on stderr."""
    from zoo.cli.render import stderr_console, stdout_console

    console = stdout_console()
    console.print(leaderboard_table(result, console.width))
    stderr_console().print(f"leaderboard: {result.folder / 'leaderboard.md'} (and report.html beside it)",
                           markup=False, soft_wrap=True)


# -- zoo eval ------------------------------------------------------------------------------------


def metrics_table(metrics: dict[str, Any]):
    """The scores of ``zoo eval``: every top-level score (the main one bold, with its interval),
    then the box AP of the same detections for masks / keypoints."""
    from rich.table import Table

    from zoo.metrics import fmt_ci
    from zoo.tasks import get_task

    schema = get_task(metrics["task"]).metrics_schema
    table = Table(title=f"{metrics.get('task', '')}: {metrics.get('images', '?')} images", show_header=True,
                  min_width=36)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in schema.scores_of(metrics):
        table.add_row(k, fmt_ci(metrics, k, 4), style="bold" if k == schema.main else None)  # "0.7570 (0.70–0.81)"
    for k in ("AP", "AP50", "AP75"):
        if isinstance(metrics.get("bbox"), dict):
            table.add_row(f"box {k}", _fmt4(metrics["bbox"].get(k)), style="dim")
    return table


def per_class_table(metrics: dict[str, Any]):
    """``zoo eval``'s per-class scores, the task's columns (None when the metrics have none)."""
    from rich.table import Table

    from zoo.tasks import get_task

    per_class = metrics.get("per_class")
    if not per_class:
        return None
    schema = get_task(metrics["task"]).metrics_schema
    first = next(iter(per_class.values()))
    cols = [c for c in schema.per_class if c in first]
    count = schema.per_class_count if schema.per_class_count in first else None
    table = Table(title="per class", show_header=True)
    table.add_column("class")
    for c in cols + ([count] if count else []):
        table.add_column(c, justify="right")
    for name, row in per_class.items():
        table.add_row(name, *[_fmt4(row.get(c)) for c in cols], *([str(row.get(count))] if count else []))
    return table


def print_metrics(metrics: dict[str, Any], out=None) -> None:
    from zoo.cli.render import stdout_console

    console = stdout_console()
    console.print(metrics_table(metrics))
    per_class = per_class_table(metrics)
    if per_class is not None:
        console.print(per_class)
    if out is not None:
        console.print(f"metrics written to {out}", markup=False, soft_wrap=True)


def _fmt4(v) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


# -- zoo convert, zoo check ----------------------------------------------------------------------


def print_summary(ds, *, title: str, all_warnings: bool = False, max_warnings: int = 10,
                  summary: dict | None = None) -> None:
    """What a folder holds (zoo convert, zoo check): images, instances per category, image
    classes, keypoints, the source's splits, then its warnings."""
    from rich.table import Table
    from rich.text import Text

    from zoo.cli.render import stdout_console

    console = stdout_console()
    s = summary or ds.summary()
    console.print(f"[bold]{title}[/bold]", highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("name")
    table.add_column("count", justify="right")
    table.add_row("images", "", str(s["images"]))
    for i, (name, n) in enumerate(s["instances"].items()):
        table.add_row("instances" if i == 0 else "", name, str(n))
    if s["ignored"]:
        table.add_row("ignored regions", "", str(s["ignored"]))
    for i, (name, n) in enumerate(s["labels"].items()):
        table.add_row("image classes" if i == 0 else "", name, str(n))
    if ds.keypoint_names:
        table.add_row("keypoints", ", ".join(ds.keypoint_names), str(len(ds.keypoint_names)))
    for i, (name, ids) in enumerate(ds.splits.items()):
        table.add_row("splits in source" if i == 0 else "", name, str(len(ids)))
    table.add_row("warnings", "", str(s["warnings"]), style="yellow" if s["warnings"] else None)
    console.print(table)
    shown = ds.warnings if all_warnings else ds.warnings[:max_warnings]
    for w in shown:
        console.print(Text.assemble(("warning", "yellow"), f": {w}"), highlight=False, soft_wrap=True)
    if len(ds.warnings) > len(shown):
        console.print(f"... and {len(ds.warnings) - len(shown)} more warnings (zoo check lists them all)")
