"""The report of ``zoo compare``: from the rows of its runs to the leaderboard files.

``<compare>/`` gets ``compare.json`` (what was compared, every run), ``leaderboard.csv``
(every score of every run, for spreadsheets), ``leaderboard.md`` (the headline scores, the
main metric per class, the plots), ``report.html`` (all of it in one page, with every backend
on the same hardest val images) and the plots of :mod:`zoo.pipeline.compare_plots`.

The ground truth each fold is scored on is converted to COCO at most once per compare (one
:class:`zoo.evaluation.coco.GroundTruth` per fold, held by the :class:`Board`), and shared by
the PR curves and every run's re-scoring in the paired verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.atomic import read_json, write_bytes, write_json, write_text
from zoo.data.folds import aggregate_metrics
from zoo.errors import ZooError
from zoo.evaluation.coco import GroundTruth
from zoo.metrics import MetricsSchema, fmt, fmt_ci
from zoo.pipeline.artifacts import CARD_FILE
from zoo.pipeline.compare_plots import write_plots
from zoo.pipeline.ensemble import leaderboard_lines
from zoo.pipeline.failures import failures_figure
from zoo.pipeline.report import fmt_seconds
from zoo.pipeline.report_html import write_compare_html
from zoo.pipeline.runfolder import Manifest, load_predictions
from zoo.pipeline.verdict import method, verdicts
from zoo.progress import Reporter
from zoo.selection import describe
from zoo.tasks import Task

if TYPE_CHECKING:  # compare plans and runs, then hands its Plan here: it imports this module
    from zoo.pipeline.compare import Plan

log = logging.getLogger("zoo")

PLOTS = ("scores.png", "pr_curves.png", "samples.png")


@dataclass
class Row:
    backend: str
    status: str  # "trained", "reused" or "failed"
    run_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the run's manifest (None for a backend that never ran)
    manifest: Manifest | None = None
    error: str = ""
    fold: int | None = None
    seed: int | None = None
    #: a backend's leaderboard row over several folds / seeds: the single runs behind it
    runs: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @property
    def protocol(self) -> dict[str, Any] | None:
        """The model-selection protocol the run chose its weights by (zoo.selection)."""
        return (self.manifest.selection if self.manifest else {}).get("protocol")

    @property
    def main_value(self) -> float | None:
        main = self.metrics.get("main")
        v = self.metrics.get(main) if main else None
        return v if isinstance(v, (int, float)) else None


@dataclass
class CompareResult:
    folder: Path
    task: str
    rows: list[Row]
    #: the model-selection protocol every row followed (zoo.selection.Protocol.to_dict)
    selection: dict[str, Any] | None = None
    #: every single run (backend × fold × seed); ``rows`` holds one row per backend
    runs: list[Row] = field(default_factory=list)
    #: the paired verdict, winner against each other backend (zoo.pipeline.verdict), by backend
    verdicts: dict[str, Any] = field(default_factory=dict)
    #: ``--pretrained``: every backend started from published weights (else from scratch)
    pretrained: bool = False
    #: ``--ensemble``: each backend's fold ensemble on test (zoo.pipeline.ensemble.EnsembleResult)
    ensembles: list = field(default_factory=list)


def starting_weights(pretrained: bool) -> str:
    return "pretrained (published weights, --pretrained)" if pretrained else "from scratch (random init)"


def check_one_protocol(rows: list[Row], protocol: dict) -> None:
    """Refuse a leaderboard whose runs chose their weights under different protocols: a row
    tuned on another rule is not comparable (zoo.selection)."""
    other = [r for r in rows if r.ok and r.protocol != protocol]
    if other:
        r = other[0]
        raise ZooError(
            f"cannot rank {r.backend} ({r.run_dir}) with the others: it chose its weights by "
            f"'{describe(r.protocol)}', this comparison by "
            f"'{describe(protocol)}'; runs made under different model-selection protocols are not comparable "
            "(use the same --select / --select-frac / --patience, or --rerun)"
        )


def by_backend(runs: list[Row], backends: list[str]) -> list[Row]:
    """One leaderboard row per backend. A single run is its own row; several (folds × seeds)
    give the mean of every score with its standard deviation (zoo.data.folds.aggregate_metrics),
    and the row fails when any of its runs failed (a mean over the survivors would flatter it)."""
    rows = []
    for b in backends:
        mine = [r for r in runs if r.backend == b]
        if len(mine) == 1:
            rows.append(mine[0])
            continue
        failed = [r for r in mine if not r.ok]
        first = mine[0]
        if failed:
            f = failed[0]
            where = " ".join(x for x in (f"fold {f.fold}" if f.fold is not None else "", f"seed {f.seed}") if x)
            rows.append(Row(b, "failed", f.run_dir, error=f"{where}: {f.error}", runs=mine))
            continue
        status = "reused" if all(r.status == "reused" for r in mine) else "trained"
        rows.append(Row(b, status, first.run_dir, aggregate_metrics([r.metrics for r in mine]), first.manifest,
                        runs=mine))
    return rows


def rank(rows: list[Row]) -> list[Row]:
    """Best main metric first; rows without a score (failed) last, in the order given."""
    order = {id(r): k for k, r in enumerate(rows)}
    return sorted(rows, key=lambda r: (not r.ok, -(r.main_value if r.main_value is not None else -1.0), order[id(r)]))


def fmt_verdict(v) -> str:
    """``+0.123 (0.05–0.20), P 0.99`` (winner minus this backend)."""
    ci = f" ({v.ci95[0]:+.3f}–{v.ci95[1]:+.3f})" if v.ci95 else ""
    p = f", P {v.p_better:.2f}" if v.p_better is not None else ""
    return f"{v.difference:+.3f}{ci}{p}"


@dataclass
class Board:
    """What the leaderboard files are made of."""

    plan: Plan
    #: one row per backend, ranked
    rows: list[Row]
    #: every single run (backend × fold × seed)
    runs: list[Row]
    #: per fold, its scored (val) images and their ground truth, converted once
    truths: list[Any]  # zoo.evaluation.coco.GroundTruth
    #: the paired verdict, winner against each other backend (zoo.pipeline.verdict), by backend
    verdicts: dict[str, Any]
    #: ``--ensemble``: each backend's fold ensemble on the test split (zoo.pipeline.ensemble)
    ensembles: list = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.plan.settings.folder

    @property
    def split(self):
        """The (first) split: the one the plots and the hard images show."""
        return self.plan.splits[0][0]

    @property
    def main(self) -> str | None:
        return next((r.metrics.get("main") for r in self.rows if r.ok), None)

    @property
    def has_test(self) -> bool:
        return any(r.ok and r.metrics.get("test") for r in self.rows)

    @property
    def title(self) -> str:
        s = self.plan.settings
        return f"Leaderboard · {s.task.title} · {s.name}"


def write_leaderboard(p: Plan, runs: list[Row], reporter: Reporter, ensembles: list | None = None) -> CompareResult:
    """Rank the runs, weigh the winner against each other backend, write every file
    (``ensembles``: ``--ensemble``'s fold ensembles on test, zoo.pipeline.ensemble)."""
    s = p.settings
    check_one_protocol(runs, s.protocol.to_dict())
    rows = rank(by_backend(runs, s.backends))
    truths = [GroundTruth(p.dataset.subset(sp.val)) for sp, _ in p.splits]
    board = Board(p, rows, runs, truths, paired_verdicts(s.task, rows, truths, reporter), ensembles or [])
    write_compare_json(board)
    write_plots(board, reporter)
    write_csv(board)
    header, cells = table(board)
    write_markdown(board, header, cells)
    write_html(board, [h.replace("**", "") for h in header], cells)
    return CompareResult(s.folder, s.task.name, rows, s.protocol.to_dict(), runs, board.verdicts, s.pretrained,
                         board.ensembles)


def paired_verdicts(task: Task, rows: list[Row], truths: list, reporter: Reporter) -> dict[str, Any]:
    """The winner against each other scored backend, on the same images (zoo.pipeline.verdict)."""
    ok = [r for r in rows if r.ok and r.main_value is not None]
    if len(ok) < 2:
        return {}
    main = ok[0].metrics["main"]
    runs = {r.backend: [(run.fold or 0, run.run_dir) for run in (r.runs or [r])] for r in ok}
    try:
        found = verdicts(task, [t.dataset for t in truths], runs, {r.backend: r.main_value for r in ok}, main,
                         ok[0].backend, truths=truths)
    except Exception as e:  # noqa: BLE001 - the verdict must not cost the leaderboard
        log.warning("paired verdict failed: %s", e, exc_info=True)
        reporter.warn(f"paired verdict failed: {e}")
        return {}
    return {v.backend: v for v in found}


def write_compare_json(board: Board) -> None:
    """``compare.json``: what was compared and how, one entry per backend and per run."""
    p, s = board.plan, board.plan.settings
    write_json(board.folder / "compare.json", {
        "task": s.task.name, "backends": s.backends, "seed": s.seed, "seeds": s.seeds,
        "folds": s.folds, "data_hash": p.digest, "selection": s.protocol.to_dict(),
        "pretrained": s.pretrained,
        "split_key": board.split.key, "split_keys": [sp.key for sp, _ in p.splits], "rows": [
            {"backend": r.backend, "status": r.status, "run": str(r.run_dir) if r.run_dir else None,
             "error": r.error, "main": r.metrics.get("main"), "score": r.main_value} for r in board.rows],
        "runs": [
            {"backend": r.backend, "fold": r.fold, "seed": r.seed, "status": r.status,
             "run": str(r.run_dir) if r.run_dir else None, "error": r.error, "score": r.main_value}
            for r in board.runs],
        "verdict": [v.to_dict() for v in board.verdicts.values()],
        "grouping": {"rule": board.split.group_rule or None,
                     "groups": [sp.group_counts() for sp, _ in p.splits] if board.split.groups else None,
                     "leaks": board.split.leaks},
        "ensembles": [e.summary() for e in board.ensembles],
    })


# -- leaderboard.csv ------------------------------------------------------------------------------


def _csv_columns(schema: MetricsSchema, singles: list[Row]) -> tuple[list[str], list[tuple[str, str]], list[str],
                                                                       list[str]]:
    """Every score, every (class, per-class value), the scores with an interval, those on test."""
    score_cols: list[str] = []
    pc_cols: list[tuple[str, str]] = []
    for r in singles:
        score_cols += [k for k in schema.scores_of(r.metrics) if k not in score_cols]
        for cname, vals in (r.metrics.get("per_class") or {}).items():
            for k, v in (vals.items() if isinstance(vals, dict) else []):
                if (isinstance(v, float) or v is None) and (cname, k) not in pc_cols:
                    pc_cols.append((cname, k))
    ci_cols = [k for k in score_cols if any((r.metrics.get("ci95") or {}).get(k) for r in singles)]
    test_cols = [k for k in score_cols if any(k in (r.metrics.get("test") or {}) for r in singles)]
    return score_cols, pc_cols, ci_cols, test_cols


def write_csv(board: Board) -> None:
    """``leaderboard.csv``: every score and per-class value; one line per single run."""
    import csv
    import io

    rows = board.rows
    singles = [run for r in rows for run in (r.runs or [r])]
    score_cols, pc_cols, ci_cols, test_cols = _csv_columns(board.plan.settings.task.metrics_schema, singles)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    many = any(r.runs for r in rows)  # folds / seeds: one CSV line per single run
    w.writerow(["rank", "backend", *(["fold", "seed"] if many else []), "framework", "status", *score_cols,
                *(f"{k} ci95 {end}" for k in ci_cols for end in ("low", "high")),
                *(f"test {k}" for k in test_cols), *(f"{k} {c}" for c, k in pc_cols),
                "parameters", "train_s", "predict_ms_per_image", "device", "run", "error"])
    for rank_, r in [(rank_, run) for rank_, r in enumerate(rows, 1) for run in (r.runs or [r])]:
        m = r.manifest
        pcs = r.metrics.get("per_class") or {}
        w.writerow([
            rank_ if r.ok else "", r.backend, *([_csv(r.fold), _csv(r.seed)] if many else []),
            m.framework if m else "", r.status,
            *(_csv(r.metrics.get(k)) for k in score_cols),
            *(_csv(((r.metrics.get("ci95") or {}).get(k) or [None, None])[end]) for k in ci_cols for end in (0, 1)),
            *(_csv((r.metrics.get("test") or {}).get(k)) for k in test_cols),
            *(_csv((pcs.get(c) or {}).get(k)) for c, k in pc_cols),
            *((_csv(m.parameters), _csv(m.timings.fit), _csv(m.timings.predict_per_image_ms), m.device or "")
              if m else ("", "", "", "")),
            str(r.run_dir or ""), r.error,
        ])
    write_bytes(board.folder / "leaderboard.csv", buf.getvalue().encode())


# -- leaderboard.md and report.html ----------------------------------------------------------------


def _columns(schema: MetricsSchema, rows: list[Row]) -> tuple[list[str], list[str]]:
    """Headline metric names and class names, from the first successful row."""
    for r in rows:
        if r.ok and r.metrics:
            return list(schema.headline_of(r.metrics)), list(schema.per_class_scores(r.metrics))
    return [], []


def table(board: Board) -> tuple[list[str], list[list[str]]]:
    """The leaderboard's header and rows (for leaderboard.md and report.html): the headline
    metrics (with their intervals), the main metric on test beside val when there is a test
    split, the paired verdict, and the main metric per class."""
    rows, main, schema = board.rows, board.main, board.plan.settings.task.metrics_schema
    metric_cols, class_cols = _columns(schema, rows)
    pc_key = schema.per_class_main
    test_col = [f"**{main}** test"] if board.has_test and main else []
    verdict_col = [f"winner − this, {main} (95%), P(winner better)"] if board.verdicts else []
    onnx = {r.backend: onnx_ms(r.run_dir) for r in rows if r.ok and r.run_dir is not None}
    onnx_col = ["onnxruntime / img"] if any(onnx.values()) else []
    header = ["#", "backend", "framework", *[f"**{k}**" if k == main else k for k in metric_cols], *test_col,
              *verdict_col, *[f"{pc_key} {c}" for c in class_cols], "params", "train", "predict / img", *onnx_col,
              "device", "run"]
    cells = []
    for rank_, r in enumerate(rows, 1):
        if not r.ok:
            cells.append(["–", r.backend, "", f"failed: {r.error}", *[""] * (len(header) - 4)])
            continue
        m = r.manifest
        pcm = schema.per_class_scores(r.metrics)
        v = board.verdicts.get(r.backend)
        cells.append([
            str(rank_), r.backend + (" ≈" if v is not None and not v.distinguishable else ""),
            m.framework, *[schema.fmt(r.metrics, k) for k in metric_cols],
            *[schema.fmt(r.metrics.get("test") or {}, main) for _ in test_col],
            *([fmt_verdict(v) if v is not None else "winner"] if verdict_col else []),
            *[fmt(pcm.get(c)) for c in class_cols], fmt_params(m.parameters),
            fmt_seconds(m.timings.fit), _ms(m.timings.predict_per_image_ms), *[onnx[r.backend] or "–" for _ in onnx_col],
            m.device or "",
            r.run_dir.name + (" (reused)" if r.status == "reused" else ""),
        ])
    return header, cells


def onnx_ms(run_dir: Path) -> str | None:
    """``12.3 ms (torch 40.1)``: the run's ``zoo export`` (RUN/export/onnx/model.json), both
    engines timed there on the same val images; None where the run was not exported."""
    try:
        timed = read_json(Path(run_dir) / "export" / "onnx" / CARD_FILE)["ms_per_image"]
        return f"{timed['onnxruntime']:.1f} ms (torch {timed['torch']:.1f})"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_markdown(board: Board, header: list[str], cells: list[list[str]]) -> None:
    """``leaderboard.md``: how the rows were made, the table, the plots, the conventions."""
    s, main = board.plan.settings, board.main
    selection = board.split.selection
    lines = [f"# {board.title}", "",
             design_sentence(board) + " Ranked by " + (f"**{main}**" if main else "the main metric") + " on val.", "",
             f"Model selection, the same for every backend: {s.protocol.describe()}"
             + (f" ({len(selection)} selection images)" if selection else "") + ".", "",
             f"Starting weights, the same for every backend: {starting_weights(s.pretrained)}.", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r, row in zip(board.rows, cells):
        if not r.ok:
            row = [*row[:3], f"failed: {_md_escape(r.error)}", *row[4:]]
        else:  # the run column links the run's report
            row = [*row[:-1], f"[{r.run_dir.name}](../../{r.run_dir.name}/report.md)"
                   + (" (reused)" if r.status == "reused" else "")]
        lines.append("| " + " | ".join(row) + " |")
    plots = [name for name in PLOTS if (board.folder / name).is_file()]
    lines += ["", *_ensemble_section(board), *[f"![{name[:-4]}]({name})" for name in plots], "",
              *_conventions(board)]
    write_text(board.folder / "leaderboard.md", "\n".join(lines))


def _ensemble_section(board: Board) -> list[str]:
    if not board.ensembles:
        return []
    return leaderboard_lines(board.ensembles)


def _conventions(board: Board) -> list[str]:
    """The evaluator's conventions (the first run's), and the verdict's method."""
    conventions = next((r.metrics.get("conventions") for r in board.rows if r.ok and r.metrics.get("conventions")),
                       None)
    if not conventions:
        return []
    if board.verdicts:
        groups = sum(sp.group_counts()["val"] for sp, _ in board.plan.splits) if board.split.groups else None
        conventions = {**conventions, "paired verdict": method(board.main, groups)}
    return ["## Conventions", "", *[f"- **{k}**: {v}" for k, v in conventions.items()], ""]


def design_sentence(board: Board) -> str:
    """How the rows were scored: one split (with bootstrap intervals) or folds × seeds
    (mean ± standard deviation over the runs)."""
    s, sp = board.plan.settings, board.split
    groups = f" ({sp.grouping_note()})" if sp.grouping_note() else ""
    if s.folds == 1 and len(s.seeds) == 1:
        return (f"Data `{sp.data_hash[:16]}`, split `{sp.key}` (seed {s.seed}): "
                f"{len(sp.train)} train / {len(sp.val)} val" + (f" / {len(sp.test)} test" if sp.test else "")
                + f" images{groups}, scored on val" + (" (and once on test)" if board.has_test else "") + " by zoo's "
                f"shared evaluator, 95% bootstrap interval over {'groups' if sp.groups else 'images'} in brackets.")
    design = (f"{s.folds}-fold cross-validation (stratified, folds seeded by {s.seed}; "
              f"`fold-<i>/split.json`), every image scored once on val per seed{groups}"
              if s.folds > 1 else
              f"split `{sp.key}` (seed {s.seed}): {len(sp.train)} train / {len(sp.val)} val images{groups}")
    runs = s.folds * len(s.seeds)
    return (f"Data `{sp.data_hash[:16]}`, {design}; training seeds {', '.join(map(str, s.seeds))}. "
            f"Scores are the mean ± standard deviation over each backend's {runs} runs "
            "(leaderboard.csv has every run's own values), by zoo's shared evaluator.")


def write_html(board: Board, header: list[str], cells: list[list[str]]) -> None:
    """report.html: the leaderboard, its plots, every backend on the same hard images."""
    write_compare_html(board.folder, title=board.title, design=design_sentence(board), header=header, rows=cells,
                       failures=_hard_images(board))


def _hard_images(board: Board) -> tuple:
    """Every backend on the val images they get most wrong (zoo.pipeline.failures); one-split
    compares only (folds score different images)."""
    s = board.plan.settings
    if s.opts.samples <= 0:
        return None, []
    val = board.truths[0].dataset
    columns = {}
    for r in board.rows:
        if r.ok and not r.runs and r.run_dir is not None:
            try:
                columns[r.backend] = {p.image_id: p for p in load_predictions(r.run_dir, val)}
            except (OSError, ZooError) as e:
                log.warning("no hard images for %s: %s", r.backend, e)
    if not columns:
        return None, []
    try:
        return failures_figure(s.task, val, columns, n=s.opts.samples)
    except Exception as e:  # noqa: BLE001 - a picture must not cost the leaderboard
        log.warning("hard images failed: %s", e, exc_info=True)
        return None, []


def _csv(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def fmt_params(n: Any) -> str:
    if not isinstance(n, int):
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,}"


def _ms(v: Any) -> str:
    return "–" if v is None else f"{v:.1f} ms"
