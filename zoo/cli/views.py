"""What the CLI draws from the results of compare, eval and convert / check (rich); the
reporter and run / predict's tables are in :mod:`zoo.cli.render`.

The pipeline returns result objects (zoo.pipeline.leaderboard.CompareResult, ...); the tables
people read on the terminal are made here, and nowhere else.
"""

from __future__ import annotations

from typing import Any


def _esc(v: Any) -> str:
    """User text (paths, error messages) shown through rich: never read as markup."""
    from rich.markup import escape

    return escape(str(v))


def leaderboard_table(result):
    """The compare's leaderboard (zoo.pipeline.leaderboard.CompareResult) as a rich table: three
    headline metrics fit an 80-column terminal; leaderboard.md / .csv have them all."""
    from rich import box
    from rich.table import Table

    from zoo.pipeline.leaderboard import fmt_params
    from zoo.pipeline.report import fmt_ci, fmt_seconds, headline

    rows = result.rows
    first = next((r for r in rows if r.ok and r.metrics), None)
    metrics = list(headline(first.metrics, n=3)) if first else []
    main = first.metrics.get("main") if first else None
    devices = {r.manifest.device or "" for r in rows if r.ok}
    one_device = len(devices) == 1
    # the framework column only when rows come from more than one (it costs terminal width)
    mixed = len({r.manifest.framework for r in rows if r.ok}) > 1
    title = f"zoo compare · {result.task} · {result.folder}" + (f" · {devices.pop()}" if one_device else "")
    table = Table(title=_esc(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, caption="\n".join(_leaderboard_notes(result)) or None, caption_justify="left")
    table.add_column("#", justify="right", min_width=1, no_wrap=True)
    table.add_column("backend", style="bold", no_wrap=True)
    if mixed:
        table.add_column("framework", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right", style="bold" if m == main else None, min_width=len(m), no_wrap=True)
    test = [main] if main and any(r.ok and r.metrics.get("test") for r in rows) else []
    for m in test:
        table.add_column(f"{m} test", justify="right", min_width=len(m) + 5, no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("train", justify="right", no_wrap=True)
    table.add_column("ms/img", justify="right", no_wrap=True, min_width=6)
    if not one_device:
        table.add_column("device")
    extra = 3 if one_device else 4
    for k, r in enumerate(rows, 1):
        if not r.ok:
            table.add_row("–", r.backend, *([""] if mixed else []), "[red]failed[/]",
                          *[""] * (len(metrics) + len(test) + extra - 1))
            continue
        m = r.manifest
        ms = m.timings.predict_per_image_ms
        v = result.verdicts.get(r.backend)
        cells = [str(k), r.backend + ("*" if r.status == "reused" else "")
                 + (" ≈" if v is not None and not v.distinguishable else ""),
                 *([m.framework] if mixed else []),
                 *[fmt_ci(r.metrics, m) for m in metrics], *[fmt_ci(r.metrics.get("test") or {}, m) for m in test],
                 fmt_params(m.parameters),
                 fmt_seconds(m.timings.fit), "–" if ms is None else f"{ms:.1f}"]
        if not one_device:
            cells.append(m.device or "")
        table.add_row(*cells)
    return table


def _leaderboard_notes(result) -> list[str]:
    """The lines under the leaderboard: the protocol every backend followed, each failure,
    what the marks (``*`` reused, ``≈`` not distinguishable) mean."""
    from zoo.pipeline.leaderboard import fmt_verdict, starting_weights
    from zoo.selection import describe

    rows = result.rows
    notes = [f"model selection, every backend: {describe(result.selection)}"] if result.selection else []
    notes.append(f"starting weights, every backend: {starting_weights(result.pretrained)}")
    notes += [f"{r.backend}: {_esc(r.error)}" for r in rows if not r.ok]
    if any(r.status == "reused" for r in rows):
        notes.append("* reused a finished run with the same data, split, seed and config")
    if result.verdicts:
        notes.append("≈ not distinguishable from the winner (paired bootstrap over images: "
                     + "; ".join(f"{b} {fmt_verdict(v)}" for b, v in result.verdicts.items()) + ")")
    return notes


def print_leaderboard(result) -> None:
    """The leaderboard on stdout, where its files are on stderr."""
    from zoo.cli.render import stderr_console, stdout_console

    stdout_console().print(leaderboard_table(result))
    stderr_console().print(f"leaderboard: {result.folder / 'leaderboard.md'}", markup=False)


# -- zoo eval ------------------------------------------------------------------------------------


def metrics_table(metrics: dict[str, Any]):
    """The scores of ``zoo eval``: every top-level score (the main one bold, with its interval),
    then the box AP of the same detections for masks / keypoints."""
    from rich.table import Table

    from zoo.pipeline.report import fmt_ci

    main = metrics.get("main")
    scalars = {k: v for k, v in metrics.items() if isinstance(v, float) or (v is None and k[:1].isupper())}
    table = Table(title=f"{metrics.get('task', '')}: {metrics.get('images', '?')} images", show_header=True,
                  min_width=36)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in scalars:
        table.add_row(k, fmt_ci(metrics, k, 4), style="bold" if k == main else None)  # "0.7570 (0.70–0.81)"
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
    task = get_task(metrics["task"])
    first = next(iter(per_class.values()))
    cols = [c for c in task.per_class_columns if c in first]
    count = task.per_class_count if task.per_class_count in first else None
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
        console.print(f"metrics written to {out}")


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
