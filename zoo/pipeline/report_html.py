"""``report.html``: the run's (or compare's) report as one self-contained page.

The same numbers as report.md / leaderboard.md (the helpers of :mod:`zoo.pipeline.report` format
them), plus the pictures: every PNG embedded as base64 data, no script, nothing fetched. A
Content-Security-Policy forbids any load but the embedded images, so the page opens from
disk, offline, and a file that tried to fetch something would show it as a console error.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.atomic import write_text
from zoo.metrics import MetricsSchema, fmt
from zoo.tasks import get_task

if TYPE_CHECKING:
    from zoo.pipeline.runfolder import Manifest, RunFolder

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; } tr.main td { font-weight: bold; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: .9em; } .note { color: #666; }
"""


def esc(v: Any) -> str:
    return html.escape(str(v))


def img_tag(png: bytes | Path, alt: str) -> str:
    data = png.read_bytes() if isinstance(png, Path) else png
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def figure(png: bytes | Path, caption: str) -> str:
    return f"<figure>{img_tag(png, caption)}<figcaption>{esc(caption)}</figcaption></figure>"


def table(header: list[str], rows: list[list[Any]], cls: str = "", main_rows: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        f'<tr{" class=main" if k in main_rows else ""}>' + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
        for k, row in enumerate(rows))
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def scores_table(schema: MetricsSchema, metrics: dict) -> str:
    """Every score with its interval; the test split beside val when there is one."""
    test = metrics.get("test")
    keys = list(schema.scores_of(metrics))
    rows = [[k, schema.fmt(metrics, k), *([schema.fmt(test, k)] if test else [])] for k in keys]
    return table(["metric", "val", *(["test"] if test else [])], rows, "scores",
                 {i for i, k in enumerate(keys) if k == schema.main})


def per_class_table(schema: MetricsSchema, metrics: dict) -> str:
    """Each class's values, the one standing for the main metric first."""
    per_class = metrics.get("per_class") or {}
    if not per_class:
        return ""
    cols = schema.per_class_columns(metrics)
    rows = [[name, *[fmt(row.get(c)) if isinstance(row, dict) else "–" for c in cols]]
            for name, row in per_class.items()]
    return table(["class", *cols], rows, "per-class")


def failures_section(png: bytes | None, listing: list, what: str) -> list[str]:
    out = ["<h2>Where it fails most</h2>"]
    if png is None:
        return out + ["<p class=note>No validation image has a false positive, a miss or a wrong class.</p>"]
    out += [f"<p class=note>The validation images {what} most wrong, worst first: ground truth, then the "
            "predictions (score ≥ 0.25) with false positives dashed red and missed objects dotted orange. "
            "The failure score (in brackets) is false positives + misses (segmentation: the fraction of wrong "
            "pixels; classification: 1 + the confidence of a wrong class), see <code>zoo/pipeline/failures.py</code>; "
            "the scores above are the shared evaluator's.</p>", figure(png, "hardest validation images")]
    cols = list(listing[0][1]) if listing else []
    rows = [[image_id, *[found[c].describe() for c in cols]] for image_id, found in listing]
    return out + [table(["image", *cols], rows, "failures")]


def write_run_html(folder: RunFolder, *, manifest: Manifest, metrics: dict, failures: tuple) -> Path:
    """``report.html`` of a finished run (``failures``: :func:`zoo.pipeline.failures.failures_figure`)."""
    run_dir, m = folder.path, manifest
    schema = get_task(m.task).metrics_schema
    title = f"{m.backend} · {m.task} · {run_dir.name}"
    body = [f"<h1>{esc(title)}</h1>",
            f"<p class=note>Data hash <code>{esc(m.data.hash[:16])}</code>, split "
            f"<code>{esc(m.split.key)}</code>, seed {esc(m.seed)}, device "
            f"{esc(m.device)}. Scored by zoo's shared evaluator; 95% bootstrap interval over images in "
            "brackets.</p>",
            "<h2>Scores</h2>", scores_table(schema, metrics)]
    pc = per_class_table(schema, metrics)
    if pc:
        body += ["<h2>Per class</h2>", pc]
    body += failures_section(failures[0], failures[1], "the model gets")
    plots = sorted(folder.plots_dir.glob("*.png")) if folder.plots_dir.is_dir() else []
    plots = [p for p in plots if p != folder.samples_file]  # the failures figure shows the same images
    if plots:
        body += ["<h2>Plots</h2>", *[figure(p, p.stem.replace("_", " ")) for p in plots]]
    conventions = metrics.get("conventions") or {}
    if conventions:
        body += ["<h2>Conventions</h2><ul>",
                 *[f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in conventions.items()], "</ul>"]
    body += ["<p class=note>The full text report, config and data summary: report.md.</p>"]
    return write_text(folder.html_file, page(title, body))


def write_compare_html(folder: Path, *, title: str, design: str, header: list[str], rows: list[list[Any]],
                       failures: tuple) -> Path:
    """``report.html`` of a compare: the leaderboard, its plots, every backend on the same
    hard images."""
    folder = Path(folder)
    body = [f"<h1>{esc(title)}</h1>", f"<p class=note>{esc(design)}</p>", "<h2>Leaderboard</h2>",
            table(header, rows, "leaderboard")]
    plots = [folder / p for p in ("scores.png", "pr_curves.png") if (folder / p).is_file()]
    if plots:
        body += ["<h2>Plots</h2>", *[figure(p, p.stem.replace("_", " ")) for p in plots]]
    body += failures_section(failures[0], failures[1], "the backends together get")
    return write_text(folder / "report.html", page(title, body))
