"""``zoo compare``: several backends, one split, one seed, one evaluator, one leaderboard.

The data is read once and split once (``<out>/compare/<name>/split.json``); every backend's
run gets that split, that seed and the same ``--set`` / ``--config`` layers, and is scored
by the shared evaluator. Every backend follows one model-selection protocol (``--select``,
``--select-frac``, ``--patience``; :mod:`zoo.selection`), named in the leaderboard's header;
runs made under different protocols are never ranked together. A finished run of the same
backend with the same data hash, split, seed, protocol and resolved config is reused instead
of trained again (``--rerun`` trains anyway).

``--set key=value`` applies to every backend; ``--set BACKEND.key=value`` to one only
(``--set unet.encoder=resnet18``), so keys that only some backends know can be given.
A backend that fails (not installed, crashed, bad predictions) gets a leaderboard row with
its error; the others still run. A typo in a backend name or a config key fails at once,
before anything trains.

``<out>/compare/<name>/`` holds ``leaderboard.md`` / ``.csv``, ``scores.png`` (bar chart),
``pr_curves.png`` (detection tasks: every backend's precision-recall curve at IoU 0.50),
``samples.png`` (a few val images: ground truth and each backend's predictions side by
side), ``report.html`` (all of it in one self-contained page, with every backend on the
same hardest val images, :mod:`zoo.pipeline.failures`), ``split.json`` and ``errors/<backend>.txt`` (tracebacks). The runs sit beside it, in
``<out>/<backend>-<task>[-N]``. The compare folder is derived from the runs, so re-running
compare rewrites it; runs themselves are never overwritten.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.atomic import read_json, write_bytes, write_text
from zoo.errors import MissingDependency, ZooError
from zoo.pipeline.report import all_scores, fmt, fmt_ci, fmt_seconds, headline, per_class_main, per_class_metric
from zoo.tasks import Task, get_task

log = logging.getLogger("zoo")


@dataclass
class CompareOptions:
    task: str
    backends: list[str]
    data: Path | None = None
    fmt: str = "auto"
    labels: Path | None = None
    seed: int | None = None
    name: str | None = None
    out: Path = Path("runs")
    sets: list[str] = field(default_factory=list)
    val: float = 0.2
    rerun: bool = False
    flags: dict[str, Any] = field(default_factory=dict)
    config_files: list[Path] = field(default_factory=list)
    test: float = 0.0
    registry: Any = None
    quiet: bool = False
    #: ``--trust-weights``: a starting-weights file that is a pickle may be unpickled.
    trust_weights: bool = False
    #: How many val images samples.png shows.
    samples: int = 3
    #: ``--track mlflow|tensorboard`` (zoo.pipeline.tracking): a parent run, one child per run.
    track: str | None = None
    #: "auto", "random" or a split.json path (see zoo.data.split).
    split: str | Path = "auto"
    #: The model-selection protocol every backend follows (zoo.selection).
    select: str = "last"
    select_frac: float = 0.1
    patience: int | None = None
    #: ``--folds K``: K-fold cross-validation (zoo.data.folds); None or 1: one split.
    folds: int | None = None
    #: ``--seeds``: training repeated with each seed (None: the one --seed).
    seeds: list[int] | None = None
    #: ``--jobs N``: runs at once on this machine (zoo.pipeline.executors)
    jobs: int = 1
    #: ``--executor local|ray``, ``--address`` of an existing Ray cluster (zoo.pipeline.executors_ray)
    executor: str = "local"
    address: str | None = None


@dataclass
class Row:
    backend: str
    status: str  # "trained", "reused" or "failed"
    run_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    fold: int | None = None
    seed: int | None = None
    #: a backend's leaderboard row over several folds / seeds: the single runs behind it
    runs: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

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


def starting_weights(pretrained: bool) -> str:
    return "pretrained (published weights, --pretrained)" if pretrained else "from scratch (random init)"


def split_sets(sets: list[str], backends: list[str]) -> dict[str, list[str]]:
    """``--set`` items per backend: unscoped ones for all, ``BACKEND.key=v`` for that one."""
    out: dict[str, list[str]] = {b: [] for b in backends}
    for item in sets:
        key = item.partition("=")[0].strip()
        scope, dot, rest = key.partition(".")
        if dot and rest:
            if scope not in out:
                raise ZooError(f"--set {item!r}: '{scope}' is not one of the compared backends ({', '.join(backends)})")
            out[scope].append(item.strip()[len(scope) + 1:])
        else:
            for b in backends:
                out[b].append(item)
    return out


def _same_config(run_dir: Path, config: dict) -> bool:
    import yaml

    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except OSError:
        return False
    return saved == config


def find_reusable(out: Path, backend: str, task: Task, *, digest: str, split_key: str, seed: int,
                  config: dict, protocol: dict) -> Path | None:
    """The most recently finished run under ``out`` (any name: ``zoo run --name`` runs count)
    of ``backend`` on exactly this data, split, seed, selection protocol and resolved config."""
    from zoo.pipeline.runfolder import iter_runs

    found = []
    for run_dir, m in iter_runs(out):
        if (
            m.get("status") == "finished" and m.get("backend") == backend and m.get("task") == task.name
            and m.get("data", {}).get("hash") == digest and m.get("split", {}).get("key") == split_key
            and m.get("seed") == seed and (m.get("selection") or {}).get("protocol") == protocol
            and (run_dir / "metrics.json").is_file() and _same_config(run_dir, config)
        ):
            found.append((str(m.get("finished", "")), run_dir.stat().st_mtime, run_dir))
    return max(found)[2] if found else None


class _Compare:
    def __init__(self, opts: CompareOptions):
        from zoo.registry import get_registry
        from zoo.pipeline.runfolder import check_name

        if opts.executor == "ray":
            # the workers run elsewhere: every path they are given must be absolute
            from dataclasses import replace

            opts = replace(opts, out=Path(opts.out).resolve(),
                           data=None if opts.data is None else Path(opts.data).resolve())
        self.opts = opts
        self.registry = opts.registry or get_registry()
        self.task = get_task(opts.task)
        self.backends = list(dict.fromkeys(b.strip() for b in opts.backends if b.strip()))
        if not self.backends:
            raise ZooError("--backends: name at least one backend (comma-separated)")
        for b in self.backends:
            self.registry.backend(b, self.task.name)  # unknown name / wrong task: fail now
        self.name = check_name(opts.name or self.task.name)
        self.out = Path(opts.out)
        self.folder = self.out / "compare" / self.name
        flags = dict(opts.flags)
        seed = flags.get("seed") if flags.get("seed") is not None else opts.seed
        self.seed = 0 if seed is None else int(seed)
        flags["seed"] = self.seed  # one seed for every backend, whatever their configs say
        self.flags = flags
        self.seeds = list(opts.seeds) if opts.seeds else [self.seed]
        self.folds = int(opts.folds or 1)
        if opts.executor not in ("local", "ray"):
            raise ZooError(f"--executor {opts.executor}: expected local or ray")
        if opts.jobs < 1:
            raise ZooError(f"--jobs {opts.jobs}: expected 1 or more")
        if self.folds > 1 and opts.test:
            raise ZooError("--folds and --test: cross-validation scores every image once on val; drop --test")
        self.sets = split_sets(list(opts.sets), self.backends)
        from zoo.selection import Protocol

        self.protocol = Protocol(opts.select, opts.select_frac, opts.patience)
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    def say(self, msg: str) -> None:
        if not self.opts.quiet:
            self.console.print(msg)

    def resolve_configs(self) -> dict[str, Any]:
        """Each backend's resolved config, or the MissingDependency that stops it."""
        from zoo.config import resolve_config

        configs: dict[str, Any] = {}
        for b in self.backends:
            spec = self.registry.backend(b, self.task.name)
            try:
                cls = spec.load()
            except MissingDependency as e:
                configs[b] = e
                continue
            except Exception as e:  # noqa: BLE001 - a broken plugin is that backend's row, not the end
                configs[b] = ZooError(f"cannot load backend '{b}': {type(e).__name__}: {e}")
                continue
            configs[b] = (cls, resolve_config(cls.Config, backend=b, task=self.task.name, files=self.opts.config_files,
                                              flags=self.flags, sets=self.sets[b], demo=self.opts.data is None))
        return configs

    def splits(self, dataset, digest: str) -> list:
        """One split, or one per fold (``--folds K``), each with its selection split carved
        from its training part; written to ``split.json`` / ``fold-<i>/split.json``."""
        from zoo.data.split import carve_selection, choose_split, write_split

        opts = self.opts
        if self.folds > 1:
            from zoo.data.folds import make_folds

            splits = make_folds(dataset, self.task, self.folds, seed=self.seed, digest=digest)
            paths = [self.folder / f"fold-{i}" / "split.json" for i in range(self.folds)]
        else:
            splits = [choose_split(opts.split, dataset, self.task, val=opts.val, test=opts.test, seed=self.seed,
                                   digest=digest)]
            paths = [self.folder / "split.json"]
        splits = [carve_selection(sp, dataset, self.task, self.protocol.split_fraction) for sp in splits]
        for sp, path in zip(splits, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_split(sp, path)
        return list(zip(splits, paths))

    def cells(self, splits) -> list[tuple[str, int | None, int, Any, Path]]:
        """Every (backend, fold, seed) run of this compare, with the fold's split and its file."""
        fold_of = (lambda i: i) if self.folds > 1 else (lambda i: None)
        return [(b, fold_of(i), s, sp, path) for s in self.seeds for i, (sp, path) in enumerate(splits)
                for b in self.backends]

    def where(self, fold: int | None, seed: int) -> str:
        """`` fold 1 seed 2``: which cell, as far as the compare has more than one."""
        return "".join([f" fold {fold}" if fold is not None else "", f" seed {seed}" if len(self.seeds) > 1 else ""])

    def prepare_cell(self, index: int, b: str, fold: int | None, seed: int, split, split_path: Path, configs,
                     dataset, digest: str):
        """A (backend, fold, seed) cell: its row when it needs no training (failed config,
        reusable finished run), else the job that trains it (zoo.pipeline.executors.Job)."""
        from zoo.training.autoconfig import fill_auto
        from zoo.config import dump_config, resolve_config
        from zoo.training.devices import resolve_device
        from zoo.pipeline.executors import Job
        from zoo.pipeline.run import RunOptions

        opts = self.opts
        where = self.where(fold, seed)
        cfg = configs[b]
        if isinstance(cfg, Exception):
            self.say(f"[red]{b}[/]{where}: {_esc(cfg)}")
            return Row(b, "failed", error=str(cfg), fold=fold, seed=seed)
        cls, cfg = cfg
        flags = {**self.flags, "seed": seed}
        if seed != self.seed:
            cfg = resolve_config(cls.Config, backend=b, task=self.task.name, files=opts.config_files, flags=flags,
                                 sets=self.sets[b], demo=opts.data is None)
        # the same data-derived choices the run would make, so a finished run is recognised
        cfg, _ = fill_auto(cfg, cls, self.task, dataset.subset(split.train), resolve_device(cfg.device))
        reuse = None if opts.rerun else find_reusable(
            self.out, b, self.task, digest=digest, split_key=split.key, seed=seed, config=dump_config(cfg),
            protocol=self.protocol.to_dict())
        if reuse is not None:
            self.say(f"{b}{where}: reusing {_esc(reuse)}")
            return Row(b, "reused", reuse, read_json(reuse / "metrics.json"), read_json(reuse / "manifest.json"),
                       fold=fold, seed=seed)
        run_opts = RunOptions(
            task=self.task.name, backend=b, data=opts.data, fmt=opts.fmt, labels=opts.labels,
            out=self.out, config_files=list(opts.config_files), sets=self.sets[b], flags=flags,
            split_file=split_path, registry=self.registry, dataset=dataset, demo=opts.data is None, quiet=True,
            trust_weights=opts.trust_weights,
            select=opts.select, select_frac=opts.select_frac, patience=opts.patience,
            track=opts.track, track_parent=self.tracker.run_id,
        )
        return Job(index, b, fold, seed, run_opts, self.folder / "logs" / f"{b}{where.replace(' ', '-')}.txt")

    def finish_cell(self, job, outcome) -> Row:
        """The row of a job that ran, with one line on the screen."""
        b, fold, seed = job.backend, job.fold, job.seed
        where = self.where(fold, seed)
        if not outcome.ok:
            write_text(self.folder / "errors" / f"{b}{where.replace(' ', '-')}.txt", outcome.traceback)
            run_dir = outcome.run_dir or _failed_run_dir(self.out, b, self.task.name)
            err = outcome.error
            self.say(f"[red]{b}{where} failed[/]: {_esc(err.splitlines()[0] if err else '')}")
            return Row(b, "failed", run_dir, error=" ".join(err.split()), fold=fold, seed=seed)
        self.say(f"{b}{where}: {fmt(Row(b, 'trained', metrics=outcome.metrics).main_value)} "
                 f"{outcome.metrics.get('main', '')} ({_esc(outcome.run_dir)})")
        return Row(b, "trained", outcome.run_dir, outcome.metrics, outcome.manifest, fold=fold, seed=seed)

    def run_cells(self, cells, configs, dataset, digest: str) -> list[Row]:
        """Every cell's row, in the compare's order; the training done by the executor."""
        from zoo.pipeline.executors import Job

        planned = [self.prepare_cell(k, b, fold, seed, sp, path, configs, dataset, digest)
                   for k, (b, fold, seed, sp, path) in enumerate(cells)]
        jobs = [p for p in planned if isinstance(p, Job)]
        if jobs:
            self.say(f"training {len(jobs)} run(s)" + (f", {self.opts.jobs} at a time" if self.opts.jobs > 1 else "")
                     + (" on Ray" if self.opts.executor == "ray" else "") + " ...")
        for job, outcome in self.execute(jobs):
            planned[job.index] = self.finish_cell(job, outcome)
        return planned

    def execute(self, jobs):
        if self.opts.executor == "ray":
            from zoo.pipeline.executors_ray import run_ray

            return run_ray(jobs, self.opts.address, self.out)
        from zoo.pipeline.executors import run_local

        if self.opts.jobs <= 1:
            for job in jobs:
                job.log = None  # in this process: its output shows as before
        return run_local(jobs, self.opts.jobs)

    def run(self) -> CompareResult:
        from zoo.atomic import write_json
        from zoo.pipeline.run import read_input, report_problems
        from zoo.data.split import data_hash

        opts = self.opts
        configs = self.resolve_configs()  # config typos fail before the data is even read
        dataset, label = read_input(opts.data, opts.fmt, opts.labels)
        report_problems(dataset, self.console, opts.quiet)
        self.task.check(dataset)
        digest = data_hash(dataset)
        self.folder.mkdir(parents=True, exist_ok=True)
        import shutil

        shutil.rmtree(self.folder / "errors", ignore_errors=True)  # this compare's errors only
        splits = self.splits(dataset, digest)
        split = splits[0][0]
        self.dataset, self.split = dataset, split
        how = (f"{self.folds}-fold cross-validation, ~{len(split.train)} train / {len(split.val)} val images a fold"
               if self.folds > 1 else f"{len(split.train)} train / {len(split.val)} val images")
        self.say(f"comparing {', '.join(self.backends)} on {self.task.name}: {_esc(label)}, {how}, "
                 f"seed{'s' if len(self.seeds) > 1 else ''} {','.join(map(str, self.seeds))}; "
                 f"model selection: {self.protocol.describe()}; {starting_weights(self.pretrained)}")

        self.start_tracking(digest, split)
        try:
            runs = self.run_cells(self.cells(splits), configs, dataset, digest)
        except BaseException:
            self.tracker.end(ok=False)
            raise
        check_one_protocol(runs, self.protocol.to_dict())
        rows = rank(by_backend(runs, self.backends))
        self.verdicts = self.paired_verdict(rows, [sp for sp, _ in splits])
        write_json(self.folder / "compare.json", {
            "task": self.task.name, "backends": self.backends, "seed": self.seed, "seeds": self.seeds,
            "folds": self.folds, "data_hash": digest, "selection": self.protocol.to_dict(),
            "pretrained": self.pretrained,
            "split_key": split.key, "split_keys": [sp.key for sp, _ in splits], "rows": [
                {"backend": r.backend, "status": r.status, "run": str(r.run_dir) if r.run_dir else None,
                 "error": r.error, "main": r.metrics.get("main"), "score": r.main_value} for r in rows],
            "runs": [
                {"backend": r.backend, "fold": r.fold, "seed": r.seed, "status": r.status,
                 "run": str(r.run_dir) if r.run_dir else None, "error": r.error, "score": r.main_value}
                for r in runs],
            "verdict": [v.to_dict() for v in self.verdicts.values()],
        })
        self.write_plots(rows)
        self.write_tables(rows)
        self.track_results(rows)
        return CompareResult(self.folder, self.task.name, rows, self.protocol.to_dict(), runs, self.verdicts,
                             self.pretrained)

    def paired_verdict(self, rows: list[Row], splits: list) -> dict[str, Any]:
        """The winner against each other scored backend, on the same images (zoo.pipeline.verdict)."""
        from zoo.pipeline.verdict import verdicts

        ok = [r for r in rows if r.ok and r.main_value is not None]
        if len(ok) < 2:
            return {}
        main = ok[0].metrics["main"]
        folds = [self.dataset.subset(sp.val) for sp in splits]
        runs = {r.backend: [(run.fold or 0, run.run_dir) for run in (r.runs or [r])] for r in ok}
        try:
            found = verdicts(self.task, folds, runs, {r.backend: r.main_value for r in ok}, main, ok[0].backend)
        except Exception as e:  # noqa: BLE001 - the verdict must not cost the leaderboard
            log.warning("paired verdict failed: %s", e, exc_info=True)
            self.say(f"[yellow]paired verdict failed[/]: {_esc(e)}")
            return {}
        return {v.backend: v for v in found}

    @property
    def pretrained(self) -> bool:
        """``--pretrained``: one setting for every backend (the command line's flag wins over
        each backend's config)."""
        return bool(self.flags.get("pretrained"))

    # outputs ----------------------------------------------------------------------------------

    def columns(self, rows: list[Row]) -> tuple[list[str], list[str]]:
        """Headline metric names and class names, from the first successful row."""
        for r in rows:
            if r.ok and r.metrics:
                return list(headline(r.metrics)), list(per_class_main(r.metrics))
        return [], []

    def write_tables(self, rows: list[Row]) -> None:
        import csv
        import io

        metric_cols, class_cols = self.columns(rows)
        main = next((r.metrics.get("main") for r in rows if r.ok), None)
        pc_key = next((per_class_metric(r.metrics) for r in rows if r.ok), None)

        # CSV: every score, every per-class value, for spreadsheets.
        score_cols: list[str] = []
        pc_cols: list[tuple[str, str]] = []
        singles = [run for r in rows for run in (r.runs or [r])]
        for r in singles:
            for k in all_scores(r.metrics):
                if k not in score_cols:
                    score_cols.append(k)
            for cname, vals in (r.metrics.get("per_class") or {}).items():
                for k, v in (vals.items() if isinstance(vals, dict) else []):
                    if isinstance(v, float) or v is None:
                        if (cname, k) not in pc_cols:
                            pc_cols.append((cname, k))
        ci_cols = [k for k in score_cols if any((r.metrics.get("ci95") or {}).get(k) for r in singles)]
        test_cols = [k for k in score_cols if any(k in (r.metrics.get("test") or {}) for r in singles)]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        many = any(r.runs for r in rows)  # folds / seeds: one CSV line per single run
        w.writerow(["rank", "backend", *(["fold", "seed"] if many else []), "framework", "status", *score_cols,
                    *(f"{k} ci95 {end}" for k in ci_cols for end in ("low", "high")),
                    *(f"test {k}" for k in test_cols), *(f"{k} {c}" for c, k in pc_cols),
                    "parameters", "train_s", "predict_ms_per_image", "device", "run", "error"])
        lines_ = [(rank_, run) for rank_, r in enumerate(rows, 1) for run in (r.runs or [r])]
        for rank_, r in lines_:
            t = r.manifest.get("timings", {})
            pcs = r.metrics.get("per_class") or {}
            w.writerow([
                rank_ if r.ok else "", r.backend, *([_csv(r.fold), _csv(r.seed)] if many else []),
                r.manifest.get("framework", ""), r.status,
                *(_csv(r.metrics.get(k)) for k in score_cols),
                *(_csv(((r.metrics.get("ci95") or {}).get(k) or [None, None])[end]) for k in ci_cols for end in (0, 1)),
                *(_csv((r.metrics.get("test") or {}).get(k)) for k in test_cols),
                *(_csv((pcs.get(c) or {}).get(k)) for c, k in pc_cols),
                _csv(r.manifest.get("parameters")), _csv(t.get("fit")), _csv(t.get("predict_per_image_ms")),
                r.manifest.get("device", ""), str(r.run_dir or ""), r.error,
            ])
        write_bytes(self.folder / "leaderboard.csv", buf.getvalue().encode())

        # Markdown: the headline metrics (with their intervals), the main metric on test beside
        # val when there is a test split, and the main metric per class.
        has_test = any(r.ok and r.metrics.get("test") for r in rows)
        test_col = [f"**{main}** test"] if has_test and main else []
        header = ["#", "backend", "framework", *[f"**{k}**" if k == main else k for k in metric_cols], *test_col,
                  *[f"{pc_key} {c}" for c in class_cols], "params", "train", "predict / img", "device", "run"]
        verdict_col = bool(self.verdicts)
        if verdict_col:
            header.insert(3 + len(metric_cols) + len(test_col), f"winner − this, {main} (95%), P(winner better)")
        lines = [f"# Leaderboard · {self.task.title} · {self.name}", "",
                 self.design_sentence(has_test) + " Ranked by "
                 + (f"**{main}**" if main else "the main metric") + " on val.", "",
                 f"Model selection, the same for every backend: {self.protocol.describe()}"
                 + (f" ({len(self.split.selection)} selection images)" if self.split.selection else "") + ".", "",
                 f"Starting weights, the same for every backend: {starting_weights(self.pretrained)}.", "",
                 "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        cells = []  # the table's rows, for leaderboard.md and report.html
        for rank_, r in enumerate(rows, 1):
            if not r.ok:
                cells.append(["–", r.backend, "", f"failed: {r.error}", *[""] * (len(header) - 4)])
                continue
            t = r.manifest.get("timings", {})
            pcm = per_class_main(r.metrics)
            v = self.verdicts.get(r.backend)
            cells.append([
                str(rank_), r.backend + (" ≈" if v is not None and not v.distinguishable else ""),
                str(r.manifest.get("framework", "")), *[fmt_ci(r.metrics, k) for k in metric_cols],
                *[fmt_ci(r.metrics.get("test") or {}, main) for _ in test_col],
                *([fmt_verdict(v) if v is not None else "winner"] if verdict_col else []),
                *[fmt(pcm.get(c)) for c in class_cols], _params(r.manifest.get("parameters")),
                fmt_seconds(t.get("fit")), _ms(t.get("predict_per_image_ms")), str(r.manifest.get("device", "")),
                r.run_dir.name + (" (reused)" if r.status == "reused" else ""),
            ])
        for r, row in zip(rows, cells):
            if not r.ok:
                row = [*row[:3], f"failed: {_md_escape(r.error)}", *row[4:]]
            else:  # the run column links the run's report
                row = [*row[:-1], f"[{r.run_dir.name}](../../{r.run_dir.name}/report.md)"
                       + (" (reused)" if r.status == "reused" else "")]
            lines.append("| " + " | ".join(row) + " |")
        plots = [p for p in ("scores.png", "pr_curves.png", "samples.png") if (self.folder / p).is_file()]
        lines += ["", *[f"![{p[:-4]}]({p})" for p in plots], ""]
        conventions = next((r.metrics.get("conventions") for r in rows if r.ok and r.metrics.get("conventions")), None)
        if conventions:
            if self.verdicts:
                from zoo.pipeline.verdict import method

                conventions = {**conventions, "paired verdict": method(main)}
            lines += ["## Conventions", "", *[f"- **{k}**: {v}" for k, v in conventions.items()], ""]
        write_text(self.folder / "leaderboard.md", "\n".join(lines))
        self.write_html([h.replace("**", "") for h in header], cells, rows, has_test)

    def start_tracking(self, digest: str, split) -> None:
        """--track: the compare's parent run; each backend × fold × seed run is a child."""
        from zoo.pipeline.tracking import open_tracker

        self.tracker = open_tracker(self.opts.track, self.out)
        self.tracker.start(self.folder, f"compare-{self.name}", params={
            "task": self.task.name, "backends": ",".join(self.backends), "seeds": ",".join(map(str, self.seeds)),
            "folds": str(self.folds), "selection": self.protocol.describe(), "pretrained": str(self.pretrained),
        }, tags={"task": self.task.name, "data_hash": digest, "split": split.key})

    def track_results(self, rows: list[Row]) -> None:
        """The parent run: every backend's main score, the leaderboard and its pictures."""
        from zoo.pipeline.tracking import metric_name

        self.tracker.final({metric_name(f"{r.backend}/{r.metrics.get('main')}"): float(r.main_value)
                            for r in rows if r.ok and r.main_value is not None})
        self.tracker.artifacts([self.folder / n for n in ("leaderboard.md", "leaderboard.csv", "report.html",
                                                          "scores.png", "pr_curves.png", "samples.png")])
        self.tracker.end(ok=True)

    def write_html(self, header: list[str], cells: list[list[str]], rows: list[Row], has_test: bool) -> None:
        """report.html: the leaderboard, its plots, every backend on the same hard images."""
        from zoo.pipeline.failures import failures_figure
        from zoo.pipeline.report_html import write_compare_html
        from zoo.pipeline.runfolder import load_predictions

        failures = (None, [])
        if self.opts.samples > 0:
            val = self.dataset.subset(self.split.val)
            columns = {}
            for r in rows:
                # one split's predictions: folds score different images, so only one-split compares
                if r.ok and not r.runs and r.run_dir is not None:
                    try:
                        columns[r.backend] = {p.image_id: p for p in load_predictions(r.run_dir, val)}
                    except (OSError, ZooError) as e:
                        log.warning("no hard images for %s: %s", r.backend, e)
            try:
                failures = failures_figure(self.task, val, columns, n=self.opts.samples) if columns else failures
            except Exception as e:  # noqa: BLE001 - a picture must not cost the leaderboard
                log.warning("hard images failed: %s", e, exc_info=True)
        write_compare_html(self.folder, title=f"Leaderboard · {self.task.title} · {self.name}",
                           design=self.design_sentence(has_test), header=header, rows=cells, failures=failures)

    def design_sentence(self, has_test: bool) -> str:
        """How the rows were scored: one split (with bootstrap intervals) or folds × seeds
        (mean ± standard deviation over the runs)."""
        sp = self.split
        if self.folds == 1 and len(self.seeds) == 1:
            return (f"Data `{sp.data_hash[:16]}`, split `{sp.key}` (seed {self.seed}): "
                    f"{len(sp.train)} train / {len(sp.val)} val" + (f" / {len(sp.test)} test" if sp.test else "")
                    + " images, scored on val" + (" (and once on test)" if has_test else "") + " by zoo's "
                    "shared evaluator, 95% bootstrap interval over images in brackets.")
        design = (f"{self.folds}-fold cross-validation (stratified, folds seeded by {self.seed}; "
                  f"`fold-<i>/split.json`), every image scored once on val per seed"
                  if self.folds > 1 else
                  f"split `{sp.key}` (seed {self.seed}): {len(sp.train)} train / {len(sp.val)} val images")
        runs = self.folds * len(self.seeds)
        return (f"Data `{sp.data_hash[:16]}`, {design}; training seeds {', '.join(map(str, self.seeds))}. "
                f"Scores are the mean ± standard deviation over each backend's {runs} runs "
                "(leaderboard.csv has every run's own values), by zoo's shared evaluator.")

    def write_plots(self, rows: list[Row]) -> None:
        ok = [r for r in rows if r.ok and r.metrics]
        for p in ("scores.png", "pr_curves.png", "samples.png"):
            (self.folder / p).unlink(missing_ok=True)
        if not ok:
            return
        val = self.dataset.subset(self.split.val)
        plots = [(bar_chart, (ok, self.folder / "scores.png", f"{self.task.title} · {self.name}"))]
        if self.task.evaluator_options.get("iou_type"):
            plots.append((pr_overlay, (ok, self.task, val, self.folder / "pr_curves.png")))
        plots.append((samples_grid, (ok, self.task, val, self.folder / "samples.png", self.opts.samples)))
        for fn, args in plots:
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - a plot must not cost the leaderboard
                log.warning("%s failed: %s", fn.__name__, e, exc_info=True)
                self.say(f"[yellow]{fn.__name__} failed[/]: {_esc(e)}")


def _failed_run_dir(out: Path, backend: str, task: str) -> Path | None:
    from zoo.pipeline.runfolder import default_name, read_manifest, series

    runs = series(out, default_name(backend, task))
    if runs and (read_manifest(runs[-1]) or {}).get("status") in ("failed", "interrupted"):
        return runs[-1]
    return None


def check_one_protocol(rows: list[Row], protocol: dict) -> None:
    """Refuse a leaderboard whose runs chose their weights under different protocols: a row
    tuned on another rule is not comparable (zoo.selection)."""
    from zoo.selection import describe

    other = [r for r in rows if r.ok and (r.manifest.get("selection") or {}).get("protocol") != protocol]
    if other:
        r = other[0]
        raise ZooError(
            f"cannot rank {r.backend} ({r.run_dir}) with the others: it chose its weights by "
            f"'{describe((r.manifest.get('selection') or {}).get('protocol'))}', this comparison by "
            f"'{describe(protocol)}'; runs made under different model-selection protocols are not comparable "
            "(use the same --select / --select-frac / --patience, or --rerun)"
        )


def by_backend(runs: list[Row], backends: list[str]) -> list[Row]:
    """One leaderboard row per backend. A single run is its own row; several (folds × seeds)
    give the mean of every score with its standard deviation (zoo.data.folds.aggregate_metrics),
    and the row fails when any of its runs failed (a mean over the survivors would flatter it)."""
    from zoo.data.folds import aggregate_metrics

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


def _esc(v: Any) -> str:
    """User text (paths, error messages) shown through rich: never read as markup."""
    from rich.markup import escape

    return escape(str(v))


def _csv(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _params(n: Any) -> str:
    if not isinstance(n, int):
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,}"


def _ms(v: Any) -> str:
    return "–" if v is None else f"{v:.1f} ms"


# -- plots ---------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_chart(rows: list[Row], path: Path, title: str) -> Path:
    """The headline metrics of every backend, grouped bars."""
    import numpy as np

    plt = _pyplot()
    metrics = list(headline(rows[0].metrics, n=3))
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(metrics))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2), 4.2), dpi=120)
    for k, m in enumerate(metrics):
        vals = [r.metrics.get(m) if isinstance(r.metrics.get(m), (int, float)) else 0.0 for r in rows]
        bars = ax.bar(x + (k - (len(metrics) - 1) / 2) * width, vals, width, label=m)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in vals], fontsize=7, padding=1)
    ax.set_xticks(x, [r.backend for r in rows], rotation=20 if len(rows) > 4 else 0)
    ax.set(ylim=(0, 1.08), ylabel="score", title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def pr_curve_points(run_dir: Path, task: Task, val):
    """(recall, precision) at IoU 0.50, averaged over categories with ground truth, for a run:
    the shared evaluator's ground truth and COCOeval, on the run's saved results."""
    import numpy as np

    from zoo.evaluation.coco import evaluation_ground_truth, oks_sigmas, run_cocoeval

    iou_type = task.evaluator_options["iou_type"]
    gt = evaluation_ground_truth(val, iou_type)
    results = read_json(run_dir / "predictions" / "coco_results.json")
    sigmas = oks_sigmas(val.meta())[0] if iou_type == "keypoints" else None
    ev = run_cocoeval(gt, list(results), iou_type, sigmas=sigmas, cat_ids=[c["id"] for c in gt["categories"]])
    p = ev.eval["precision"][0, :, :, 0, -1]  # [R, K] at IoU .50, all areas, most detections
    cols = [k for k in range(p.shape[1]) if (p[:, k] > -1).all()]
    if not cols:
        return None
    return np.asarray(ev.params.recThrs), p[:, cols].mean(1)


def pr_overlay(rows: list[Row], task: Task, val, path: Path) -> Path | None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    drawn = 0
    for r in rows:
        try:
            pts = pr_curve_points(r.run_dir, task, val)
        except (OSError, ZooError, KeyError) as e:
            log.warning("no PR curve for %s: %s", r.backend, e)
            continue
        if pts is None:
            continue
        rec, prec = pts
        ax.plot(rec, prec.clip(0, None), lw=1.8, label=f"{r.backend}  AP50 {prec.mean():.3f}")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    label = {"bbox": "box", "segm": "mask", "keypoints": "OKS"}[task.evaluator_options["iou_type"]]
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision",
           title=f"Precision-recall, all backends ({label} IoU 0.50, mean over classes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw(ax, record, pred_or_gt, task: Task, meta, conf: float = 0.25) -> None:
    """Boxes / masks / keypoints / label map / class of one image on a matplotlib axis."""
    import numpy as np
    from matplotlib import patches

    from zoo.dataset import ImageRecord
    from zoo.data.raster import rle_to_mask
    from zoo.predictions import ClassPrediction, InstancePredictions, SemanticPrediction

    cmap = _pyplot().get_cmap("tab10")
    img = record.load_rgb().astype(np.float32) / 255.0
    h, w = img.shape[:2]
    overlay = img.copy()
    title = ""
    items = []  # (category, score, box, mask, keypoints)
    if isinstance(pred_or_gt, ImageRecord):
        if task.name == "classify":
            title = ", ".join(meta.classes[c] for c in pred_or_gt.labels)
        elif task.name == "semantic-seg":
            from zoo.data.raster import semantic_label_map

            pred_or_gt = SemanticPrediction(record.id, semantic_label_map(pred_or_gt, meta))
        else:
            from zoo.data.raster import instance_mask

            for i in pred_or_gt.instances:
                if i.ignore:
                    continue
                mask = instance_mask(i, h, w) if task.name == "instance-seg" else None
                items.append((i.category, None, i.bbox, mask, i.keypoints if task.name == "keypoint" else None))
    if isinstance(pred_or_gt, InstancePredictions):
        shown = [d for d in sorted(pred_or_gt.detections, key=lambda d: -d.score) if d.score >= conf][:50]
        for d in shown:
            mask = rle_to_mask(d.mask).astype(bool) if d.mask is not None else None
            items.append((d.category, d.score, d.bbox, mask, d.keypoints))
        title = f"{len(shown)} of {len(pred_or_gt.detections)} detections (score ≥ {conf:g})"
    elif isinstance(pred_or_gt, SemanticPrediction):
        lm = np.asarray(pred_or_gt.label_map)
        for c in range(1, len(meta.categories) + 1):
            sel = lm == c
            overlay[sel] = 0.5 * overlay[sel] + 0.5 * np.asarray(cmap((c - 1) % 10)[:3])
    elif isinstance(pred_or_gt, ClassPrediction):
        title = meta.classes[pred_or_gt.label]
        if pred_or_gt.scores:
            title += f" ({max(pred_or_gt.scores):.2f})"
    for cat, _score, _box, mask, _kps in items:
        if mask is not None:
            overlay[mask] = 0.55 * overlay[mask] + 0.45 * np.asarray(cmap(cat % 10)[:3])
    ax.imshow(overlay)
    for cat, score, (x0, y0, x1, y1), _mask, kps in items:
        color = cmap(cat % 10)
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.0, ec=color))
        for x, y, v in kps or []:
            if v > (0 if score is None else 0.5):
                ax.plot([x], [y], ".", ms=3, color=color)
    if title:
        ax.set_xlabel(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def samples_grid(rows: list[Row], task: Task, val, path: Path, n: int = 3) -> Path | None:
    """A few val images: ground truth, then each backend's predictions, side by side."""
    from zoo.pipeline.runfolder import load_predictions

    if n <= 0 or not val.images:
        return None
    plt = _pyplot()
    # The images with the most annotations show the most: deterministic, by count then id.
    records = sorted(val.images, key=lambda r: (-len(r.instances), r.id))[:n]
    meta = val.meta()
    sub = val.subset([r.id for r in records])
    preds: dict[str, dict[str, Any]] = {}
    for r in rows:
        try:
            loaded = load_predictions(r.run_dir, val)
        except (OSError, ZooError) as e:
            log.warning("no samples for %s: %s", r.backend, e)
            continue
        preds[r.backend] = {p.image_id: p for p in loaded}
    cols = ["ground truth", *preds]
    size = 2.6
    fig, axes = plt.subplots(len(records), len(cols), figsize=(size * len(cols), size * len(records) + 0.6),
                             dpi=110, squeeze=False)
    for i, rec in enumerate(sub.images):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            _draw(ax, rec, rec if j == 0 else preds[col].get(rec.id), task, meta)
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(rec.id, fontsize=7)
    if task.name != "classify" and meta.categories:
        from matplotlib.patches import Patch

        cmap = plt.get_cmap("tab10")
        handles = [Patch(color=cmap(k % 10), label=name) for k, name in enumerate(meta.categories)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# -- entry point -----------------------------------------------------------------------------------


def leaderboard_table(result: CompareResult):
    from rich.table import Table

    rows = result.rows
    first = next((r for r in rows if r.ok and r.metrics), None)
    # Three headline metrics fit an 80-column terminal; leaderboard.md / .csv have them all.
    metrics = list(headline(first.metrics, n=3)) if first else []
    main = first.metrics.get("main") if first else None
    devices = {str(r.manifest.get("device", "")) for r in rows if r.ok}
    one_device = len(devices) == 1
    # the framework column only when rows come from more than one (it costs terminal width)
    mixed = len({r.manifest.get("framework", "") for r in rows if r.ok}) > 1
    title = f"zoo compare · {result.task} · {result.folder}" + (f" · {devices.pop()}" if one_device else "")
    from rich import box

    from zoo.selection import describe

    notes = [f"model selection, every backend: {describe(result.selection)}"] if result.selection else []
    notes.append(f"starting weights, every backend: {starting_weights(result.pretrained)}")
    notes += [f"{r.backend}: {_esc(r.error)}" for r in rows if not r.ok]
    if any(r.status == "reused" for r in rows):
        notes.append("* reused a finished run with the same data, split, seed and config")
    if result.verdicts:
        notes.append("≈ not distinguishable from the winner (paired bootstrap over images: "
                     + "; ".join(f"{b} {fmt_verdict(v)}" for b, v in result.verdicts.items()) + ")")
    table = Table(title=_esc(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, caption="\n".join(notes) or None, caption_justify="left")
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
        t = r.manifest.get("timings", {})
        ms = t.get("predict_per_image_ms")
        v = result.verdicts.get(r.backend)
        cells = [str(k), r.backend + ("*" if r.status == "reused" else "")
                 + (" ≈" if v is not None and not v.distinguishable else ""),
                 *([str(r.manifest.get("framework", ""))] if mixed else []),
                 *[fmt_ci(r.metrics, m) for m in metrics], *[fmt_ci(r.metrics.get("test") or {}, m) for m in test],
                 _params(r.manifest.get("parameters")),
                 fmt_seconds(t.get("fit")), "–" if ms is None else f"{ms:.1f}"]
        if not one_device:
            cells.append(str(r.manifest.get("device", "")))
        table.add_row(*cells)
    return table


def compare_and_report(opts: CompareOptions) -> CompareResult:
    """``zoo compare``: run or reuse each backend, write the leaderboard, print it."""
    result = _Compare(opts).run()
    if not opts.quiet:
        from rich.console import Console

        Console().print(leaderboard_table(result))
        Console(stderr=True).print(f"leaderboard: {result.folder / 'leaderboard.md'}")
    return result
