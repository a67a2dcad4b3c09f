"""What the CLI draws: the rich :class:`zoo.progress.Reporter` and the renderers of the
results the pipeline returns (``zoo run``'s summary and ranking tables, ``zoo predict``'s line).

The pipeline never imports this module: it returns result objects and talks through the
reporter it is given, so the same code runs quietly in a test, a notebook or a Ray worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

T = TypeVar("T")


def stderr_console() -> Console:
    """Progress and messages go to stderr (stdout carries the tables a user may pipe)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    from rich.console import Console

    return Console()


class ConsoleReporter:
    """:class:`zoo.progress.Reporter` on the terminal: lines on stderr, warnings in yellow,
    a progress bar where stderr is a terminal. Messages are plain text, never rich markup.
    ``quiet``: no lines (the bars stay). Lines are never broken by rich (``soft_wrap``): a
    path in one stays whole to copy, and the terminal folds what is too long."""

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or stderr_console()
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, style="yellow", markup=False, highlight=False, soft_wrap=True)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        from zoo.progress import track

        return track(items, description, total=total)


# -- zoo run ---------------------------------------------------------------------------------


def summary_table(result) -> Table:
    """The table ``zoo run`` prints at the end (a :class:`zoo.pipeline.run.RunResult`)."""
    from rich.markup import escape
    from rich.table import Table

    from zoo.metrics import fmt
    from zoo.pipeline.report import fmt_seconds
    from zoo.tasks import get_task

    metrics, t = result.metrics, result.manifest.timings
    schema = get_task(result.task).metrics_schema
    main = schema.main
    # the run folder is on the report line below, whole: a title wraps it mid-path
    table = Table(title=escape(f"{result.backend} · {result.task}"), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    test = metrics.get("test")
    if test:
        table.add_column("test", justify="right")
    for k in schema.headline_of(metrics, n=6):
        table.add_row(f"[bold]{escape(k)}[/]" if k == main else escape(k), schema.fmt(metrics, k),
                      *([schema.fmt(test, k)] if test else []))
    for name, v in schema.per_class_scores(metrics).items():
        table.add_row(escape(f"  {schema.per_class_main} {name}"), fmt(v))
    table.add_row("train time", fmt_seconds(t.fit))
    table.add_row("predict time", fmt_seconds(t.predict)
                  + (f" ({t.predict_per_image_ms:.1f} ms/img)" if t.predict_per_image_ms is not None else ""))
    table.add_row("device", str(result.manifest.device))
    return table


def ranking_table(ranked: Sequence, top: int) -> Table:
    """The first ``top`` of a ranking (:class:`zoo.pipeline.ranking.Ranked`, most useful
    first): what ``zoo run --rank`` and ``zoo predict --rank`` print."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"label next ({min(top, len(ranked))} of {len(ranked)} unlabelled)", title_justify="left")
    for col in ("#", "image", "score", "why"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, r in enumerate(ranked[:top], 1):
        table.add_row(str(i), escape(str(r.file or r.image_id)), f"{r.score:.3f}", escape(r.why))
    return table


def show_run(result, top: int) -> None:
    """Everything ``zoo run`` prints once the run returned."""
    stdout_console().print(summary_table(result))
    if result.ranked:
        stdout_console().print(ranking_table(result.ranked, top))
    stderr_console().print(f"report: {result.run_dir / 'report.html'} (open it in a browser; report.md beside it)",
                           markup=False, soft_wrap=True)


# -- zoo predict -----------------------------------------------------------------------------


def show_ranking(ranked: Sequence, out, top: int) -> None:
    """``zoo predict --rank``: the table, then where the pre-filled files are."""
    stdout_console().print(ranking_table(ranked, top))
    stderr_console().print(f"{out / 'ranking.csv'}: {len(ranked)} image(s) ranked; the first {min(top, len(ranked))} "
                           f"pre-filled as labelme JSON in {out}: open them with `labelme {out}`", markup=False,
                           soft_wrap=True)


def predicted_line(result) -> str:
    """``zoo predict``'s closing line (a :class:`zoo.pipeline.predict.PredictResult`)."""
    extra = f", {result.detections} detection(s) before the --conf {result.conf:g} cut" if result.detections else ""
    return (f"wrote {len(result.written)} labelme file(s) to {result.out}{extra}; "
            f"open them with `labelme {result.out}`")
