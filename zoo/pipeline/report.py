"""The human side of a run: ``report.md`` in the run folder, and the formatting of scores
that every report shares (report.html, the leaderboard, the table ``zoo/cli`` draws).

Reads only what the shared evaluator wrote (``metrics.json``: top-level scores, ``per_class``,
``conventions``) and the manifest, so a report never disagrees with the files next to it; which
scores are shown, in which order and how, is the task's metrics schema (:mod:`zoo.metrics`).
``fmt`` / ``fmt_ci`` (the formatting every report shares) live there too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.atomic import write_text
from zoo.metrics import MetricsSchema, fmt, fmt_ci  # noqa: F401 - fmt_ci: the reports' shared formatting
from zoo.selection import statement
from zoo.training.budget import describe_budget

if TYPE_CHECKING:
    from zoo.pipeline.runfolder import Manifest, RunFolder

def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


#: Characters markdown (or the HTML it may hold) would read as markup: escaped in any text
#: that comes from the user's data (label names, file names), so a label ``<img onerror=...>``
#: or ``**x**`` shows as written and runs nothing where report.md is rendered.
_MARKUP = re.compile(r"([\\`\[\]|])")


def md_text(value: Any) -> str:
    """``value`` as literal markdown text: one line; what could open a link, an image, a code
    span or a table cell backslash-escaped; ``<`` and ``&`` as HTML entities (a backslash
    does not stop raw HTML)."""
    text = " ".join(str(value).splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return _MARKUP.sub(r"\\\1", text)


def md_code(value: Any) -> str:
    """``value`` as an inline code span that no backtick in it can close early."""
    text = " ".join(str(value).splitlines())
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A table; every cell that is text (not a number) escaped: it may come from the data."""
    def cell(c: Any) -> str:
        return fmt(c) if c is None or isinstance(c, (int, float)) else md_text(c)

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(folder: RunFolder, *, manifest: Manifest, metrics: dict, split, dataset, config: dict, task) -> Path:
    """Write ``report.md`` for a finished run: one section builder per heading."""
    parts = [f"# {manifest.backend} · {task.title} · {md_text(folder.path.name)}", ""]
    schema = task.metrics_schema
    parts += _scores_section(schema, metrics, manifest)
    parts += _evaluation_details(folder, schema, metrics)
    parts += _data_section(manifest, dataset, split, task)
    parts += _config_section(manifest, config)
    parts += _run_section(manifest)
    parts += _label_next(folder)
    parts += _reproduce_section(folder, manifest, task)
    return write_text(folder.report_file, "\n".join(parts))


def _scores_section(schema: MetricsSchema, metrics: dict, m: Manifest) -> list[str]:
    """Every score, val beside test, the main metric in bold; how the weights were chosen."""
    main = schema.main
    test = metrics.get("test")
    parts = ["## Scores (" + ("validation and test splits" if test else "validation split")
             + ", zoo's shared evaluator; 95% bootstrap interval over images in brackets)", ""]
    header = ["metric", "val", *(["test"] if test else [])]
    rows = [[f"**{k}**" if k == main else k, schema.fmt(metrics, k), *([schema.fmt(test, k)] if test else [])]
            for k in schema.scores_of(metrics)]
    parts += [_md_table(header, rows), ""]
    parts += [f"Model selection: {statement(m.selection)}."
              + (" Test was predicted and scored once, after the model was chosen; training and "
                 "selection never saw it." if test else ""), ""]
    return parts


def _evaluation_details(folder: RunFolder, schema: MetricsSchema, metrics: dict) -> list[str]:
    """Per class (the main metric's column first), the evaluator's conventions, the plots."""
    parts: list[str] = []
    per_class = metrics.get("per_class") or {}
    if per_class:
        cols = schema.per_class_columns(metrics)
        rows = [[name, *[(row.get(c) if isinstance(row, dict) else None) for c in cols]]
                for name, row in per_class.items()]
        parts += ["### Per class", "", _md_table(["class", *cols], rows), ""]

    conventions = metrics.get("conventions") or {}
    if conventions:
        parts += ["### Conventions", ""]
        parts += [f"- **{k}**: {v}" for k, v in conventions.items()]
        parts += [""]

    plots = sorted(folder.plots_dir.glob("*.png")) if folder.plots_dir.is_dir() else []
    if plots:
        parts += ["### Plots", ""]
        parts += [f"![{p.stem}]({folder.relative(p)})" for p in plots]
        parts += [""]
    return parts


def _data_section(m: Manifest, dataset, split, task) -> list[str]:
    """Where the data came from, what is in it, what was left out, and the split."""
    summary = m.data.summary or dataset.summary()
    parts = ["## Data", ""]
    parts += [f"- source: {md_code(m.data.path)} (format {m.data.format or '?'}), hash `{m.data.hash[:16]}`"]
    parts += [f"- {summary.get('images', len(dataset))} images, {summary.get('warnings', 0)} reader warning(s), "
              f"{summary.get('ignored', 0)} ignored region(s)"]
    if task.answer_kind == "label" and summary.get("labels"):  # a class per image: count images
        parts += ["- images per class: " + ", ".join(f"{md_text(k)} {v}" for k, v in summary["labels"].items())]
    elif summary.get("instances"):
        parts += ["- objects per category: " + ", ".join(f"{md_text(k)} {v}" for k, v in summary["instances"].items())]
    unlabelled = m.data.unlabelled
    if unlabelled:
        parts += [f"- {len(unlabelled)} image(s) without annotation, not trained on: "
                  + ", ".join(md_code(u) for u in unlabelled[:20]) + (" ..." if len(unlabelled) > 20 else "")]
    sizes = split.sizes()
    parts += [f"- split (seed {split.seed}, key `{split.key}`"
              f"{', stratified' if split.stratified else ''}): "
              f"train {sizes['train']}"
              + (f", selection {sizes['selection']} (carved from train)" if sizes.get("selection") else "")
              + f", val {sizes['val']}, test {sizes['test']}"
              + (f", {sizes['excluded']} excluded (not usable for {task.name})" if sizes["excluded"] else "")]
    if split.grouping_note():
        parts += [f"- {split.grouping_note()}"]
    return parts + [""]


def _config_section(m: Manifest, config: dict) -> list[str]:
    """The resolved config, what ``auto`` chose and why, and the backend's own plan."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False).rstrip()
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))  # never closed by the text
    parts = ["## Config (resolved)", "", f"{fence}yaml", text, fence, ""]
    choices = m.choices or {}
    if choices:
        parts += ["Chosen from the training images (`auto`; set the key to override):", ""]
        parts += [f"- **{k}** {md_text(c['value'])}: {md_text(c['reason'])}" for k, c in choices.items()]
        parts += [""]
    plan = m.plan or {}
    if plan:
        parts += [f"## Plan ({m.backend} chose it from the training images)", ""]
        parts += [_md_table(["setting", "value"], [[k, _plain(v)] for k, v in plan.items()]), ""]
    return parts


def _run_section(m: Manifest) -> list[str]:
    """Device, size of the model, versions, timings and the framework's own numbers."""
    t = m.timings.model_dump(exclude_none=True)
    n = m.parameters
    params = f"{n / 1e6:.2f} M ({n:,})" if isinstance(n, int) and n >= 100_000 else fmt(n)
    parts = ["## Run", "", f"- device: {m.device}; parameters: {params}"]
    parts += ["- versions: " + ", ".join(f"{k} {v}" for k, v in m.versions.items())]
    if m.budget:
        parts += [f"- budget: {describe_budget(m.budget)}"]
    parts += ["- timings: " + ", ".join(
        f"{k} {fmt_seconds(v)}" for k, v in t.items() if k in ("read", "fit", "predict", "evaluate"))
        + (f" ({t['predict_per_image_ms']:.1f} ms per image)" if "predict_per_image_ms" in t else "")]
    own = _flatten({k: v for k, v in (m.framework_metrics or {}).items() if k != "note"})
    if own:
        parts += [f"- {m.backend}'s own numbers (not used for ranking): "
                  + ", ".join(f"{k} {fmt(v)}" for k, v in own.items())]
    return parts + [""]


def _reproduce_section(folder: RunFolder, m: Manifest, task) -> list[str]:
    """The commands that redo this run on the same split and config, and predict with it."""
    data = m.data.path
    return ["## Reproduce, predict", "", "```sh",
            f"zoo run --task {task.name} --backend {m.backend}"
            + ("" if data == "demo" else f" --data {_q(data)}")
            + f" --config {_q(folder.config_file)} --split {_q(folder.split_file)}"
            + _select_flags(m.selection.get("protocol")),
            f"zoo predict --run {_q(folder.path)} IMAGES... --out DIR   # labelme JSON to open and correct",
            "```", ""]


def _label_next(folder: RunFolder, n: int = 10) -> list[str]:
    """--rank: the first rows of ``ranking/ranking.csv``."""
    import csv

    path = folder.ranking_file
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return ["## Label next", "",
            f"The unlabelled images, most useful to annotate first (`ranking/ranking.csv`, {len(rows)} rows; "
            "the first ones pre-filled as labelme JSON in `ranking/`):", "",
            _md_table(["image", "score", "why"], [[r["image"], r["score"], r["why"]] for r in rows[:n]]), ""]


def _select_flags(protocol: dict | None) -> str:
    """The ``--select`` options that reproduce a run's model-selection protocol."""
    if not protocol:
        return ""
    out = f" --select {protocol['rule']}"
    if protocol.get("selection_fraction"):
        out += f" --select-frac {protocol['selection_fraction']:g}"
    if protocol.get("patience") is not None:
        out += f" --patience {protocol['patience']}"
    return out


def _q(p) -> str:
    import shlex

    return shlex.quote(str(p))


def _plain(v: Any) -> str:
    """A plan value in one table cell: lists and dicts as compact JSON-like text."""
    if isinstance(v, (list, tuple, dict)):
        import json

        return json.dumps(v, separators=(", ", ": "))
    return fmt(v)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k} "))
        else:
            out[f"{prefix}{k}"] = v
    return out

