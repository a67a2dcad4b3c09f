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

A compare is three steps, each a function of this module:

1. **plan** (:func:`settings`, :func:`plan`): what runs -- the backends × folds × seeds
   cells, each either already decided (a backend that cannot load, a finished run reused) or
   a job to train; the data read and split once;
2. **execute** (:func:`execute`): the jobs, through an executor (:mod:`zoo.pipeline.executors`,
   :mod:`zoo.pipeline.executors_ray`), each finished job a :class:`Row`;
3. **report** (:func:`zoo.pipeline.leaderboard.write_leaderboard`): ranked rows, the paired
   verdict, the leaderboard files and plots; returned as a :class:`CompareResult`, which the CLI
   draws. Progress goes through a :class:`zoo.progress.Reporter`; nothing here prints.

``<out>/compare/<name>/`` holds ``leaderboard.md`` / ``.csv``, ``scores.png`` (bar chart),
``pr_curves.png`` (detection tasks: every backend's precision-recall curve at IoU 0.50),
``samples.png`` (a few val images: ground truth and each backend's predictions side by
side), ``report.html`` (all of it in one self-contained page, with every backend on the
same hardest val images, :mod:`zoo.pipeline.failures`), ``split.json`` and
``errors/<backend>.txt`` (tracebacks). The runs sit beside it, in
``<out>/<backend>-<task>[-N]``. The compare folder is derived from the runs, so re-running
compare rewrites it; runs themselves are never overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo.atomic import write_text
from zoo.config import dump_config, resolve_config
from zoo.data.folds import make_folds
from zoo.data.groups import group_images
from zoo.data.intensity import fill_intensity
from zoo.data.split import carve_selection, choose_split, data_hash, grouped_dataset, write_split
from zoo.errors import MissingDependency, ZooError
from zoo.pipeline.ensemble import compare_ensembles
from zoo.pipeline.executors import Job, run_local
from zoo.pipeline.executors_ray import run_ray
from zoo.pipeline.leaderboard import CompareResult, Row, starting_weights, write_leaderboard
from zoo.pipeline.options import Output, RunOptions, Source, SplitPlan, Training
from zoo.pipeline.prepare import read_input, report_problems
from zoo.pipeline.report import fmt
from zoo.pipeline.runfolder import Manifest, RunFolder, check_name, default_name, iter_run_folders, series
from zoo.pipeline.tracking import metric_name, open_tracker
from zoo.progress import LogReporter, Reporter
from zoo.selection import Protocol
from zoo.tasks import Task, get_task
from zoo.training.autoconfig import fill_auto
from zoo.training.devices import resolve_device

log = logging.getLogger("zoo")


@dataclass(frozen=True)
class CompareOptions:
    """Everything ``zoo compare`` takes: the parts of a run's options (zoo.pipeline.options)
    that every run shares, and what only a compare has."""

    task: str
    backends: list[str]
    source: Source = field(default_factory=Source)
    #: ``folds``: K-fold cross-validation (zoo.data.folds); None or 1: one split.
    split: SplitPlan = field(default_factory=SplitPlan)
    #: The model-selection protocol every backend follows (zoo.selection).
    selection: Protocol = field(default_factory=Protocol)
    #: ``--set key=value`` for every backend, ``BACKEND.key=value`` for one (:func:`split_sets`)
    training: Training = field(default_factory=Training)
    #: ``name``: the leaderboard's (default: the task); ``track``: a parent run, one child per run.
    output: Output = field(default_factory=Output)
    #: ``--seeds``: training repeated with each seed (None: the one seed).
    seeds: list[int] | None = None
    rerun: bool = False
    #: How many val images samples.png shows.
    samples: int = 3
    #: ``--jobs N``: runs at once on this machine (zoo.pipeline.executors)
    jobs: int = 1
    #: ``--executor local|ray``, ``--address`` of an existing Ray cluster (zoo.pipeline.executors_ray)
    executor: str = "local"
    address: str | None = None
    #: ``--ensemble``: each backend's fold models fused and scored on the test split (zoo.pipeline.ensemble)
    ensemble: bool = False
    registry: Any = None


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


def find_reusable(out: Path, backend: str, task: Task, *, digest: str, split_key: str, seed: int,
                  config: dict, protocol: dict) -> Path | None:
    """The most recently finished run under ``out`` (any name: ``zoo run --name`` runs count)
    of ``backend`` on exactly this data, split, seed, selection protocol and resolved config."""
    found = []
    for folder, m in iter_run_folders(out):
        if (
            m.is_finished and m.backend == backend and m.task == task.name and m.data.hash == digest
            and m.split.key == split_key and m.seed == seed and m.selection.get("protocol") == protocol
            and folder.metrics_file.is_file() and _same_config(folder, config)
        ):
            found.append((str(m.finished or ""), folder.path.stat().st_mtime, folder.path))
    return max(found)[2] if found else None


def _same_config(folder: RunFolder, config: dict) -> bool:
    try:
        return folder.read_config() == config
    except ZooError:
        return False


# -- plan: what runs -----------------------------------------------------------------------------


@dataclass
class Settings:
    """The compare the user asked for, checked before anything is read or trained."""

    opts: CompareOptions
    registry: Any
    task: Task
    backends: list[str]
    #: the leaderboard's name and folder (``<out>/compare/<name>``)
    name: str
    out: Path
    folder: Path
    #: the one seed of the split and of every backend, and the training seeds (``--seeds``)
    seed: int
    seeds: list[int]
    folds: int
    #: the command line's flags, ``seed`` fixed to :attr:`seed`
    flags: dict[str, Any]
    #: ``--set`` items per backend (:func:`split_sets`)
    sets: dict[str, list[str]]
    protocol: Any  # zoo.selection.Protocol
    #: the images' groups (zoo.data.groups), made on first use
    _grouping: Any = field(default=None, repr=False)

    @property
    def pretrained(self) -> bool:
        """``--pretrained``: one setting for every backend (the command line's flag wins over
        each backend's config)."""
        return bool(self.flags.get("pretrained"))

    def grouping(self, dataset):
        """The images' groups (zoo.data.groups), made once for the compare and all its runs."""
        if self._grouping is None:
            self._grouping = group_images(dataset, self.opts.split.group)
        return self._grouping

    def where(self, fold: int | None, seed: int) -> str:
        """`` fold 1 seed 2``: which cell, as far as the compare has more than one."""
        return "".join([f" fold {fold}" if fold is not None else "", f" seed {seed}" if len(self.seeds) > 1 else ""])


def settings(opts: CompareOptions) -> Settings:
    """:class:`Settings` from the options; a typo in a backend name or a bad option fails here."""
    from zoo.registry import get_registry

    opts = _check_options(opts)
    registry = opts.registry or get_registry()
    task = get_task(opts.task)
    backends = list(dict.fromkeys(b.strip() for b in opts.backends if b.strip()))
    if not backends:
        raise ZooError("--backends: name at least one backend (comma-separated)")
    for b in backends:
        registry.backend(b, task.name)  # unknown name / wrong task: fail now
    flags = dict(opts.training.flags)
    seed = flags.get("seed")
    flags["seed"] = seed = 0 if seed is None else int(seed)  # one seed for every backend, whatever their configs say
    name = check_name(opts.output.name or task.name)
    out = Path(opts.output.out)
    return Settings(
        opts, registry, task, backends, name, out, out / "compare" / name, seed,
        list(opts.seeds) if opts.seeds else [seed], int(opts.split.folds or 1), flags,
        split_sets(list(opts.training.sets), backends), opts.selection,
    )


def _check_options(opts: CompareOptions) -> CompareOptions:
    """The options that fail on their own; with ``--executor ray``, every path made absolute
    (the workers run elsewhere)."""
    if opts.executor not in ("local", "ray"):
        raise ZooError(f"--executor {opts.executor}: expected local or ray")
    if opts.jobs < 1:
        raise ZooError(f"--jobs {opts.jobs}: expected 1 or more")
    if opts.ensemble and (int(opts.split.folds or 1) < 2 or not opts.split.test):
        raise ZooError("--ensemble fuses the fold models and scores them on held-out images: "
                       "use it with --folds K --test F")
    if opts.executor == "ray":
        path = opts.source.path
        opts = replace(opts, output=replace(opts.output, out=Path(opts.output.out).resolve()),
                       source=replace(opts.source, path=None if path is None else Path(path).resolve()))
    return opts


@dataclass
class Cell:
    """One run of a compare: a backend, one fold's split, one training seed."""

    #: the cell's place in the compare's order
    index: int
    backend: str
    fold: int | None
    seed: int
    split: Any  # zoo.data.split.Split
    split_path: Path
    #: `` fold 1 seed 2`` (:meth:`Settings.where`)
    where: str

    @property
    def slug(self) -> str:
        """The cell's file name in ``errors/`` and ``logs/``."""
        return f"{self.backend}{self.where.replace(' ', '-')}"

    def run_name(self, task: str) -> str:
        """The run folder's name: ``<backend>-<task>``, then ``-fold-<i>-seed-<n>`` under
        --folds, or ``-seed-<n>`` when only the seeds vary (``-2``, ``-3`` then mean a rerun)."""
        if self.fold is not None:
            return f"{default_name(self.backend, task)}-fold-{self.fold}-seed-{self.seed}"
        return default_name(self.backend, task) + self.where.replace(" ", "-")


@dataclass
class Plan:
    """What a compare runs, decided before anything trains: every (backend, fold, seed) cell,
    and for each either its row (a backend that cannot load, a finished run reused) or the
    job that trains it."""

    settings: Settings
    dataset: Any  # zoo.dataset.Dataset
    #: where the data came from (``demo`` without --data)
    label: str
    digest: str
    #: (split, its split.json): one, or one per fold
    splits: list[tuple[Any, Path]]
    cells: list[Cell]
    #: per cell, in its order: a finished :class:`Row` or a zoo.pipeline.executors.Job
    work: list[Any]

    @property
    def jobs(self) -> list:
        return [w for w in self.work if not isinstance(w, Row)]


def plan(s: Settings, reporter: Reporter) -> Plan:
    """Read the data, split it, and decide every cell; nothing is trained yet."""
    import shutil

    configs = resolve_configs(s)  # config typos fail before the data is even read
    dataset, label = read_input(s.opts.source, s.registry)
    report_problems(dataset, reporter)
    s.task.check(dataset)
    digest = data_hash(dataset)
    s.folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(s.folder / "errors", ignore_errors=True)  # this compare's errors only
    splits = write_splits(s, dataset, digest)
    dataset = grouped_dataset(dataset, splits[0][0])  # every fold's groups are the same: the verdict resamples them
    _say_design(s, label, splits, reporter)
    cells = [Cell(k, b, fold, seed, sp, path, s.where(fold, seed)) for k, (b, fold, seed, sp, path) in enumerate(
        (b, i if s.folds > 1 else None, seed, sp, path)
        for seed in s.seeds for i, (sp, path) in enumerate(splits) for b in s.backends)]
    work = [decide(s, cell, configs[cell.backend], dataset, digest, reporter) for cell in cells]
    return Plan(s, dataset, label, digest, splits, cells, work)


def _say_design(s: Settings, label: str, splits: list, reporter: Reporter) -> None:
    split = splits[0][0]
    how = (f"{s.folds}-fold cross-validation, ~{len(split.train)} train / {len(split.val)} val images a fold"
           if s.folds > 1 else f"{len(split.train)} train / {len(split.val)} val images")
    reporter.say(f"comparing {', '.join(s.backends)} on {s.task.name}: {label}, {how}, "
                 f"seed{'s' if len(s.seeds) > 1 else ''} {','.join(map(str, s.seeds))}; "
                 f"model selection: {s.protocol.describe()}; {starting_weights(s.pretrained)}")


def resolve_configs(s: Settings) -> dict[str, Any]:
    """Each backend's (class, resolved config), or the error that stops it."""
    configs: dict[str, Any] = {}
    for b in s.backends:
        spec = s.registry.backend(b, s.task.name)
        try:
            cls = spec.load()
        except MissingDependency as e:
            configs[b] = e
            continue
        except Exception as e:  # noqa: BLE001 - a broken plugin is that backend's row, not the end
            configs[b] = ZooError(f"cannot load backend '{b}': {type(e).__name__}: {e}")
            continue
        configs[b] = (cls, resolve_config(cls.Config, backend=b, task=s.task.name, files=s.opts.training.config_files,
                                          flags=s.flags, sets=s.sets[b], demo=s.opts.source.is_demo, spec=spec))
    return configs


def write_splits(s: Settings, dataset, digest: str) -> list[tuple[Any, Path]]:
    """One split, or one per fold (``--folds K``), each with its selection split carved
    from its training part; written to ``split.json`` / ``fold-<i>/split.json``."""

    grouping = s.grouping(dataset)
    if s.folds > 1:
        splits = make_folds(dataset, s.task, s.folds, seed=s.seed, digest=digest, grouping=grouping,
                            test=s.opts.split.test)
        paths = [s.folder / f"fold-{i}" / "split.json" for i in range(s.folds)]
    else:
        plan_ = s.opts.split
        splits = [choose_split(plan_.rule, dataset, s.task, val=plan_.val, test=plan_.test, seed=s.seed,
                               digest=digest, grouping=grouping, allow_leak=plan_.allow_leak)]
        paths = [s.folder / "split.json"]
    splits = [carve_selection(sp, dataset, s.task, s.protocol.split_fraction, grouping) for sp in splits]
    for sp, path in zip(splits, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_split(sp, path)
    return list(zip(splits, paths))


def decide(s: Settings, cell: Cell, config, dataset, digest: str, reporter: Reporter):
    """A cell's row when it needs no training (a backend that cannot load, a reusable
    finished run), else the job that trains it (zoo.pipeline.executors.Job)."""
    b = cell.backend
    if isinstance(config, Exception):
        reporter.warn(f"{b}{cell.where}: {config}")
        return Row(b, "failed", error=str(config), fold=cell.fold, seed=cell.seed)
    cls, cfg = config
    flags = {**s.flags, "seed": cell.seed}
    if cell.seed != s.seed:
        cfg = resolve_config(cls.Config, backend=b, task=s.task.name, files=s.opts.training.config_files, flags=flags,
                             sets=s.sets[b], demo=s.opts.source.is_demo, spec=s.registry.backend(b))
    # the same data-derived choices the run would make, so a finished run is recognised
    train = dataset.subset(cell.split.train)
    cfg, _ = fill_auto(cfg, cls, s.task, train, resolve_device(cfg.device))
    cfg, _ = fill_intensity(cfg, train)
    reuse = None if s.opts.rerun else find_reusable(
        s.out, b, s.task, digest=digest, split_key=cell.split.key, seed=cell.seed, config=dump_config(cfg),
        protocol=s.protocol.to_dict())
    if reuse is not None:
        reporter.say(f"{b}{cell.where}: reusing {reuse}")
        folder = RunFolder(reuse)
        return Row(b, "reused", reuse, folder.read_metrics(), folder.manifest(), fold=cell.fold, seed=cell.seed)
    return Job(cell.index, b, cell.fold, cell.seed, run_options(s, cell, flags, dataset),
               s.folder / "logs" / f"{cell.slug}.txt")


def run_options(s: Settings, cell: Cell, flags: dict[str, Any], dataset) -> RunOptions:
    """The ``zoo run`` a cell is: the compare's data (read once), the cell's split, seed and
    config layers, and the compare's protocol."""
    opts = s.opts
    return RunOptions(
        task=s.task.name, backend=cell.backend,
        source=replace(opts.source, dataset=dataset, demo=opts.source.path is None),
        split=SplitPlan(rule=cell.split_path, group=opts.split.group, grouping=s.grouping(dataset),
                        allow_leak=opts.split.allow_leak),
        selection=opts.selection,
        training=replace(opts.training, config_files=list(opts.training.config_files), sets=s.sets[cell.backend],
                         flags=flags),
        output=Output(out=s.out, name=cell.run_name(s.task.name), track=opts.output.track),
        registry=s.registry, quiet=True,
    )


# -- execute: the jobs, through the executors --------------------------------------------------------


def execute(p: Plan, reporter: Reporter, track_parent: str | None = None) -> list[Row]:
    """Every cell's row, in the plan's order; the training done by the chosen executor."""
    s = p.settings
    jobs = p.jobs
    for job in jobs:
        job.opts = replace(job.opts, output=replace(job.opts.output, track_parent=track_parent))
    if jobs:
        reporter.say(f"training {len(jobs)} run(s)" + (f", {s.opts.jobs} at a time" if s.opts.jobs > 1 else "")
                     + (" on Ray" if s.opts.executor == "ray" else "") + " ...")
    rows = list(p.work)
    for job, outcome in _executor(s, jobs):
        rows[job.index] = finish(s, p.cells[job.index], outcome, reporter)
    return rows


def _executor(s: Settings, jobs: list):
    """(job, outcome) as the jobs finish: on Ray, in processes (``--jobs N``) or here."""
    if s.opts.executor == "ray":
        return run_ray(jobs, s.opts.address, s.out)
    if s.opts.jobs <= 1:
        for job in jobs:
            job.log = None  # in this process: its output shows as before
    return run_local(jobs, s.opts.jobs)


def finish(s: Settings, cell: Cell, outcome, reporter: Reporter) -> Row:
    """The row of a cell that ran, with one line for people."""
    b = cell.backend
    if not outcome.ok:
        write_text(s.folder / "errors" / f"{cell.slug}.txt", outcome.traceback)
        run_dir = outcome.run_dir or _failed_run_dir(s.out, b, s.task.name)
        err = outcome.error
        reporter.warn(f"{b}{cell.where} failed: {err.splitlines()[0] if err else ''}")
        return Row(b, "failed", run_dir, error=" ".join(err.split()), fold=cell.fold, seed=cell.seed)
    row = Row(b, "trained", outcome.run_dir, outcome.metrics, Manifest.model_validate(outcome.manifest),
              fold=cell.fold, seed=cell.seed)
    reporter.say(f"{b}{cell.where}: {fmt(row.main_value)} {outcome.metrics.get('main', '')} ({outcome.run_dir})")
    return row


# -- the whole compare ---------------------------------------------------------------------------------


def compare(opts: CompareOptions, reporter: Reporter | None = None) -> CompareResult:
    """``zoo compare``: plan every run, train or reuse each, write the leaderboard; returns
    what the leaderboard shows (the CLI draws it)."""
    reporter = reporter or LogReporter()
    s = settings(opts)
    p = plan(s, reporter)
    tracker = open_tracker(s.opts.output.track, s.out, reporter)
    _start_tracking(tracker, p)
    try:
        runs = execute(p, reporter, tracker.run_id)
    except BaseException:
        tracker.end(ok=False)
        raise
    result = write_leaderboard(p, runs, reporter, ensembles=_ensembles(s, runs, reporter))
    _track_results(tracker, result)
    return result


def _ensembles(s: Settings, runs: list[Row], reporter: Reporter) -> list:
    """``--ensemble``: every backend's fold models fused on the test split (zoo.pipeline.ensemble)."""
    if not s.opts.ensemble:
        return []
    device = resolve_device(s.opts.training.flags.get("device") or "auto")
    return compare_ensembles(s.folder, runs, reporter, device=device, registry=s.registry)


def _start_tracking(tracker, p: Plan) -> None:
    """--track: the compare's parent run; each backend × fold × seed run is a child."""
    s = p.settings
    tracker.start(s.folder, f"compare-{s.name}", params={
        "task": s.task.name, "backends": ",".join(s.backends), "seeds": ",".join(map(str, s.seeds)),
        "folds": str(s.folds), "selection": s.protocol.describe(), "pretrained": str(s.pretrained),
    }, tags={"task": s.task.name, "data_hash": p.digest, "split": p.splits[0][0].key})


def _track_results(tracker, result: CompareResult) -> None:
    """The parent run: every backend's main score, the leaderboard and its pictures."""
    tracker.final({metric_name(f"{r.backend}/{r.metrics.get('main')}"): float(r.main_value)
                   for r in result.rows if r.ok and r.main_value is not None})
    tracker.artifacts([result.folder / n for n in ("leaderboard.md", "leaderboard.csv", "report.html",
                                                   "scores.png", "pr_curves.png", "samples.png")])
    tracker.end(ok=True)


def _failed_run_dir(out: Path, backend: str, task: str) -> Path | None:
    runs = series(out, default_name(backend, task))
    m = RunFolder(runs[-1]).manifest_or_none() if runs else None
    if m is not None and m.status in ("failed", "interrupted"):
        return runs[-1]
    return None
