"""``zoo run``: annotation folder (or the demo data) -> split -> train -> predict -> shared scores.

The pipeline, backend-agnostic (a backend only ever sees canonical data)::

    prepare   read the folder, report its problems, task.check, split (split.json; the
              selection split carved from train when the protocol scores, zoo.selection),
              resolve the config (config.yaml), ground truth scored (data/val_coco.json)
              -> a _Prepared run (_Preparer)
    fit       backend.fit(train, selection)                -> checkpoint/
              (never the scored split: the selection protocol is zoo's, see zoo.selection)
    predict   backend.predict(val images, annotations removed), each prediction validated
              by the task                                  -> predictions/
    evaluate  zoo.evaluation.evaluate (the ONE evaluator)  -> metrics.json, plots/
    report                                                 -> report.md, report.html,
              plots/samples.png (the hardest val images)

:func:`execute` returns a :class:`RunResult`; progress goes to the :class:`zoo.progress.Reporter`
of :attr:`RunOptions.reporter` (``zoo/cli`` passes one that draws, and draws the result).

Every file is written atomically and ``manifest.json`` records the phases done, so
``--resume`` continues an interrupted run: a finished ``fit`` is not repeated (the backend
is restored with ``Backend.load``); an unfinished one starts again, or continues where the
backend supports it (``RunContext.resume`` is set and its ``work/`` is kept).
See :mod:`zoo.pipeline.runfolder` for the folder layout and the naming rule.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from zoo import __version__
from zoo.dataset import Dataset, strip_annotations
from zoo.errors import ZooError
from zoo.pipeline.runfolder import (
    DataRecord,
    Manifest,
    RunFolder,
    RunLock,
    SplitRecord,
    Timings,
    check_name,
    default_name,
    next_free,
    series,
)
from zoo.predictions import check_predictions
from zoo.progress import LogReporter, Reporter
from zoo.tasks import Task, get_task
from zoo.training.seeding import seed_everything

log = logging.getLogger("zoo")
T = TypeVar("T")


@dataclass
class RunOptions:
    """Everything ``zoo run`` takes; ``zoo compare`` builds these too."""

    task: str
    backend: str
    data: Path | None = None  # None: the demo data (zoo.data.demo.ensure_demo)
    fmt: str = "auto"
    labels: Path | None = None
    seed: int | None = None  # None: the config's seed (default 0)
    name: str | None = None  # None: <backend>-<task>
    out: Path = Path("runs")
    config_files: list[Path] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    val: float = 0.2
    test: float = 0.0
    resume: bool = False
    #: The dedicated flags (epochs, imgsz, batch, device, seed, weights, pretrained); None = not given.
    flags: dict[str, Any] = field(default_factory=dict)
    #: ``--split``: "auto" (the data's own train/val split if it has one, else seeded),
    #: "random" (always seeded), or a split.json to reuse (checked against the data).
    split_file: Path | str | None = None
    #: The plugin registry (tests inject plugins here); None: the installed plugins.
    registry: Any = None
    #: An already-read dataset (zoo compare reads the folder once); ``data`` then only labels it.
    dataset: Dataset | None = None
    #: ``dataset`` is the demo data (the demo's preset applies, configs/demo.yaml).
    demo: bool = False
    #: Who hears of the progress; None: the ``zoo`` logger (zoo.progress.LogReporter).
    reporter: Reporter | None = None
    #: No progress messages (to the log instead); the reporter still draws progress bars.
    quiet: bool = False
    #: ``--strict``: refuse data in which ``zoo check`` finds errors (zoo.data.lint).
    strict: bool = False
    #: ``--rank``: end by ranking the folder's unlabelled images (zoo.pipeline.ranking); ``top`` pre-filled.
    rank: bool = False
    top: int = 10
    #: ``--trust-weights``: a starting-weights file that is a pickle may be unpickled.
    trust_weights: bool = False
    #: Model selection (zoo.selection): ``--select last|best``, ``--select-frac``,
    #: ``--patience``. None = not given: the defaults for a new run (last, 0.1, no early
    #: stopping), the interrupted run's own protocol for ``--resume``.
    select: str | None = None
    select_frac: float | None = None
    patience: int | None = None
    #: ``--fold i --folds K``: score on fold i of stratified K-fold cross-validation (zoo.data.folds)
    fold: int | None = None
    folds: int | None = None
    #: ``--track mlflow|tensorboard`` (zoo.pipeline.tracking); ``track_parent``: a compare's parent run id.
    track: str | None = None
    track_parent: str | None = None


@dataclass
class RunResult:
    run_dir: Path
    backend: str
    task: str
    metrics: dict[str, Any]
    manifest: Manifest
    resumed: bool = False
    ranked: list | None = None  # --rank: zoo.pipeline.ranking.Ranked, most useful first


# -- helpers -----------------------------------------------------------------------------------


class _Quiet:
    """A reporter's progress bars, its messages to the log only (``RunOptions.quiet``)."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def say(self, message: str) -> None:
        log.info("%s", message)

    def warn(self, message: str) -> None:
        log.warning("%s", message)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        return self.reporter.track(items, description, total=total)


@contextmanager
def _log_to(path: Path):
    """Mirror the ``zoo`` logger (backends log there) into the run's log.txt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_level = log.level
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        handler.close()


def read_input(data: Path | None, fmt: str, labels: Path | None) -> tuple[Dataset, str]:
    """The dataset and a label for where it came from (``demo`` when --data is omitted)."""
    from zoo.data.reading import read_dataset

    if data is None:
        from zoo.data.demo import ensure_demo

        return read_dataset(ensure_demo(), "auto", labels), "demo"
    return read_dataset(data, fmt, labels), str(data)


def report_problems(dataset: Dataset, reporter: Reporter, limit: int = 5) -> None:
    """A short summary of the reader's warnings; all of them go to the log."""
    if not dataset.warnings:
        return
    for w in dataset.warnings:
        log.warning("%s", w)
    reporter.warn(f"{len(dataset.warnings)} problem(s) in the data (skipped or repaired):")
    for w in dataset.warnings[:limit]:
        reporter.say(f"  {w}")
    if len(dataset.warnings) > limit:
        reporter.say(f"  ... and {len(dataset.warnings) - limit} more (see log.txt, or run `zoo check`)")


def check_pixels(dataset, label: str) -> None:
    """Training and predicting need every image's pixels (a COCO file's ground truth is
    scored without them, ``zoo eval``)."""
    missing = [r.id for r in dataset.images if not r.has_pixels]
    if missing:
        raise ZooError(f"{label}: {len(missing)} image(s) have no image file (e.g. '{missing[0]}'): "
                       "training needs the pixels; `zoo eval` scores predictions without them")


def _config_diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"zoo": __version__, "python": platform.python_version()}
    for dist in ("torch", "torchvision", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# -- what a run is made of -------------------------------------------------------------------------


@dataclass
class _Setup:
    """What the options name, checked before anything is read: a bad task, backend,
    ``--select`` or missing framework fails in a second."""

    opts: RunOptions
    reporter: Reporter
    world: Any  # zoo.training.distributed.World
    task: Task
    spec: Any  # zoo.specs.BackendSpec
    cls: Any  # its zoo.backend.Backend subclass
    flags: dict[str, Any]
    protocol: Any  # zoo.selection.Protocol asked for (a resume keeps the recorded one)

    @classmethod
    def of(cls, opts: RunOptions) -> _Setup:
        from zoo.registry import get_registry
        from zoo.training.distributed import world

        here = world()  # under torchrun & co: rank 0 writes, the others train along
        if not here.main:
            opts = replace(opts, quiet=True)
        reporter = opts.reporter or LogReporter()
        task = get_task(opts.task)
        spec = (opts.registry or get_registry()).backend(opts.backend, task.name)
        flags = dict(opts.flags)
        if opts.seed is not None and flags.get("seed") is None:
            flags["seed"] = opts.seed
        if opts.rank:
            from zoo.pipeline.ranking import require_scores

            require_scores(task)
        return cls(opts=opts, reporter=_Quiet(reporter) if opts.quiet else reporter, world=here, task=task,
                   spec=spec, cls=spec.load(), flags=flags, protocol=asked_protocol(opts))

    def resolve_config(self, base: dict | None = None):
        from zoo.config import resolve_config

        o = self.opts
        return resolve_config(
            self.cls.Config, backend=self.spec.name, task=self.task.name,
            files=o.config_files, flags=self.flags, sets=o.sets, base=base,
            demo=o.demo or (o.data is None and o.dataset is None),
        )


def asked_protocol(opts: RunOptions, recorded: dict | None = None):
    """The selection protocol from the options; on ``--resume``, the recorded one, which
    an option given now must not contradict."""
    from zoo.selection import Protocol

    asked = {"rule": opts.select, "fraction": opts.select_frac, "patience": opts.patience}
    if recorded is None:
        return Protocol(**{k: v for k, v in asked.items() if v is not None})
    old = Protocol.from_dict(recorded)
    for key, value in asked.items():
        if value is not None and value != getattr(old, key):
            raise ZooError(f"--resume: the interrupted run's model selection was {old.describe()}; "
                           f"drop the changed --select / --select-frac / --patience or start a new run")
    return old


@dataclass
class _Data:
    """The data of a run, split: what fit, predict and the scores each see."""

    dataset: Dataset
    label: str  # where it came from, for messages ("demo" for the demo data)
    digest: str  # zoo.data.split.data_hash
    split: Any  # zoo.data.split.Split
    train: Dataset
    selection: Dataset  # carved from train; scored during training by the selection protocol
    val: Dataset
    test: Dataset | None  # predicted and scored once, after the model is chosen; fit never sees it
    meta: Dataset  # the vocabularies, no images

    @classmethod
    def of(cls, dataset: Dataset, label: str, digest: str, split) -> _Data:
        return cls(dataset, label, digest, split, train=dataset.subset(split.train),
                   selection=dataset.subset(split.selection), val=dataset.subset(split.val),
                   test=dataset.subset(split.test) if split.test else None, meta=dataset.meta())


@dataclass
class _Prepared:
    """A run folder ready to train in: what the prepare step hands :class:`_Run`."""

    folder: RunFolder
    manifest: Manifest
    config: Any  # the backend's resolved BackendConfig
    device: str  # resolved ("cpu", "cuda:0", ...); config.yaml keeps what the user asked
    data: _Data
    protocol: Any  # zoo.selection.Protocol
    resumed: bool


# -- prepare ---------------------------------------------------------------------------------------


class _Preparer:
    """The prepare phase: choose (or claim) the run folder, read and check the data, split it,
    resolve the config, write config.yaml, split.json, data/ and the manifest.

    It keeps the folder, its manifest and its lock from the moment it has them, so that a
    failure at any point (here or later in the run) is recorded in the folder it reached.
    """

    def __init__(self, setup: _Setup):
        self.setup = setup
        self.opts = setup.opts
        self.say = setup.reporter.say
        self.folder: RunFolder | None = None
        self.manifest: Manifest | None = None
        self.lock: RunLock | None = None

    def prepare(self) -> _Prepared:
        if not self.setup.world.main:
            return self._follow()
        resumed = self._resumed_folder() if self.opts.resume else None
        prepared = self._resume(resumed) if resumed is not None else self._new()
        self._lead(prepared)
        return prepared

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # a new run -------------------------------------------------------------------------------

    def _new(self) -> _Prepared:
        from zoo.data.split import carve_selection, data_hash
        from zoo.training.devices import resolve_device

        setup, opts = self.setup, self.opts
        t0 = time.perf_counter()
        # Config before data: a typo in --set fails in a second, not after reading 10k files.
        config = setup.resolve_config()
        dataset, label = self._read_data()
        t_read = time.perf_counter() - t0
        digest = data_hash(dataset)
        split = carve_selection(self._choose_split(dataset, digest, config.seed), dataset, setup.task,
                                setup.protocol.split_fraction)
        if split.source == "data":
            self.say("using the train / val split the data defines (--split random to draw one)")
        device = resolve_device(config.device)
        data = _Data.of(dataset, label, digest, split)
        folder = self._claim(self._base_name())
        self.manifest = self._new_manifest(data, config.seed, device, t_read)
        config = self._choose_auto(config, data.train, device)
        prepared = _Prepared(folder, self.manifest, config, device, data, setup.protocol, resumed=False)
        self._write(prepared)
        self.say(
            f"{setup.spec.name} {setup.task.name} on {label}: {len(data.train)} train"
            + (f" / {len(data.selection)} selection" if len(data.selection) else "")
            + f" / {len(data.val)} val images, device {device}, run folder {folder.path}"
        )
        return prepared

    def _base_name(self) -> str:
        return check_name(self.opts.name or default_name(self.setup.spec.name, self.setup.task.name))

    def _read_data(self, data: Path | None = None) -> tuple[Dataset, str]:
        """The dataset (``--strict``: refused when ``zoo check`` finds errors), its problems
        reported, checked against the task and for pixels."""
        opts, task = self.opts, self.setup.task
        if opts.strict:
            from zoo.data.demo import ensure_demo
            from zoo.data.lint import refuse_errors

            refuse_errors(opts.data or ensure_demo(), fmt=opts.fmt, labels=opts.labels, task=task.name,
                          val=opts.val, test=opts.test)
        if opts.dataset is not None:
            dataset, label = opts.dataset, str(opts.data or opts.dataset.root or "dataset")
        else:
            dataset, label = read_input(opts.data, opts.fmt, opts.labels)
        report_problems(dataset, self.setup.reporter)
        task.check(dataset)
        check_pixels(dataset, label)
        return dataset, label

    def _choose_split(self, dataset: Dataset, digest: str, seed: int):
        """``--split``, or fold i of ``--folds K`` (zoo.data.folds), before the selection split."""
        from zoo.data.split import choose_split

        opts, task = self.opts, self.setup.task
        if opts.fold is None and opts.folds is None:
            return choose_split(opts.split_file, dataset, task, val=opts.val, test=opts.test, seed=seed, digest=digest)
        if opts.fold is None or opts.folds is None:
            raise ZooError("--fold and --folds go together: --fold i --folds K")
        if opts.test:
            raise ZooError("--folds and --test: cross-validation scores every image once on val; drop --test")
        from zoo.data.folds import fold_split

        return fold_split(dataset, task, opts.fold, opts.folds, seed=seed, digest=digest)

    def _claim(self, base: str) -> RunFolder:
        """Create the first free ``<out>/<base>[-N]`` and lock it. Another zoo run may take a
        name while this one reads its data: then the next free one."""
        path = next_free(Path(self.opts.out), base)
        for _ in range(1000):
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                path = next_free(path.parent, base)
        else:
            raise ZooError(f"{path.parent}: could not create a new run folder for {base}")
        self.folder = RunFolder(path)
        self.lock = RunLock(path).acquire()
        if path.name != base:  # announced only now: a mistake in the input fails before, with its one line
            self.say(f"{path.parent / base} exists; this run goes to {path}")
        return self.folder

    def _new_manifest(self, data: _Data, seed: int, device: str, t_read: float) -> Manifest:
        opts, setup, split = self.opts, self.setup, data.split
        return Manifest(
            zoo=__version__, backend=setup.spec.name, framework=setup.spec.framework_name, task=setup.task.name,
            status="running", started=_now(), command=" ".join(sys.argv),
            # absolute, so --resume finds it from any working directory ("demo" for the demo)
            data=DataRecord(path=str(Path(opts.data).resolve()) if opts.data is not None else data.label,
                            format=data.dataset.format, hash=data.digest, summary=data.dataset.summary(),
                            unlabelled=self._unlabelled(data.dataset)),
            seed=seed, device=device,
            split=SplitRecord(key=split.key, **split.sizes(), val_fraction=split.val_fraction,
                              test_fraction=split.test_fraction, selection_fraction=split.selection_fraction),
            selection={"protocol": setup.protocol.to_dict(), "description": setup.protocol.describe()},
            versions=_versions(), timings=Timings(read=round(t_read, 3)), checkpoints={},
        )

    @staticmethod
    def _unlabelled(dataset: Dataset) -> list[str]:
        """Images in the data folder no annotation covers (not trained on; --rank ranks them)."""
        from zoo.data.lint import unannotated_images

        root = dataset.root
        if root is None or not root.is_dir():
            return []
        return [p.relative_to(root).as_posix() for p in unannotated_images(dataset, root)]

    def _choose_auto(self, config, train: Dataset, device: str):
        """``imgsz``/``epochs: auto`` filled from the training images; why, said and recorded."""
        from zoo.training.autoconfig import fill_auto, vanishing_instances

        setup = self.setup
        config, choices = fill_auto(config, setup.cls, setup.task, train, device)
        if choices:
            self.manifest.choices = {c.key: c.to_dict() for c in choices}
        for c in choices:
            self.say(str(c))
        tiny = vanishing_instances(train, config.imgsz) if isinstance(config.imgsz, int) else {}
        for name, count in tiny.items():
            setup.reporter.warn(f"{count} '{name}' instance(s) are under 4 px at imgsz {config.imgsz}: "
                                "the model can hardly see them (raise --imgsz)")
        return config

    def _write(self, p: _Prepared) -> None:
        """config.yaml, split.json, data/ (the vocabularies, and the ground truth exactly as
        the evaluator scores it: zoo-filled polygons as RLE, a COCO file's own annotations as
        given), then the manifest with ``prepare`` done."""
        from zoo.atomic import write_json
        from zoo.config import dump_config
        from zoo.evaluation.coco import evaluation_ground_truth

        p.folder.write_config(dump_config(p.config))
        p.folder.write_split(p.data.split)
        p.folder.write_meta(p.data.meta)
        write_json(p.folder.val_truth_file, evaluation_ground_truth(p.data.val, "segm"))
        if p.data.test is not None:
            write_json(p.folder.test_truth_file, evaluation_ground_truth(p.data.test, "segm"))
        p.manifest.phase_done("prepare")
        p.folder.write_manifest(p.manifest)

    # --resume ---------------------------------------------------------------------------------

    def _resumed_folder(self) -> RunFolder:
        """--name X resumes X itself; without --name, the newest <backend>-<task>[-N]. Locked
        before anything reads or writes it."""
        out, base, setup = Path(self.opts.out), self._base_name(), self.setup
        existing = [out / base] if self.opts.name and (out / base).is_dir() else series(out, base)
        if not existing:
            raise ZooError(f"--resume: no run named '{base}' in {out}")
        folder = RunFolder(existing[-1])
        m = folder.manifest_or_none()
        if m is None:
            raise ZooError(f"--resume: {folder.path} has no readable {folder.manifest_file.name}; start a new run")
        if (m.backend, m.task) != (setup.spec.name, setup.task.name):
            raise ZooError(f"--resume: {folder.path} is a {m.backend} {m.task} run, "
                           f"not {setup.spec.name} {setup.task.name}")
        self.lock = RunLock(folder.path).acquire()
        self.folder, self.manifest = folder, folder.manifest()  # as the holder before us left it
        return folder

    def _resume(self, folder: RunFolder, say: bool = True) -> _Prepared:
        """The interrupted run as it was prepared: its config (what is asked now must agree),
        its data (unchanged, by hash), its split and its selection protocol."""
        from zoo.config import dump_config
        from zoo.data.split import check_split, data_hash
        from zoo.training.devices import resolve_device

        m, opts = self.manifest, self.opts
        if "prepare" not in m.done:
            raise ZooError(f"--resume: {folder.path} stopped before its data was prepared; "
                           "there is nothing to resume, start a new run")
        saved = folder.read_config()
        config = self.setup.resolve_config(base=saved)
        diff = _config_diff(saved, dump_config(config))
        if diff:
            raise ZooError(f"--resume: the config differs from the interrupted run's ({'; '.join(diff)}); "
                           "drop the changed options or start a new run")
        if opts.dataset is not None:
            dataset, label = opts.dataset, str(opts.data or "dataset")
        else:
            data = opts.data if opts.data is not None else (None if m.data.path == "demo" else Path(m.data.path))
            dataset, label = read_input(data, opts.fmt, opts.labels)
        digest = data_hash(dataset)
        if digest != m.data.hash:
            raise ZooError(f"--resume: the data changed since {folder.path} started; start a new run")
        split = folder.read_split()
        check_split(split, dataset, self.setup.task, digest, str(folder.split_file))
        protocol = asked_protocol(opts, m.selection.get("protocol") or {})
        m.device = resolve_device(config.device)
        if say:
            self.say(f"resuming {folder.path} (done: {', '.join(m.done) or 'nothing'})")
        return _Prepared(folder, m, config, m.device, _Data.of(dataset, label, digest, split), protocol, resumed=True)

    # under a launcher (torchrun): rank 0 prepares, the others follow -----------------------------

    def _lead(self, prepared: _Prepared) -> None:
        """Rank 0, its folder prepared: tell the other ranks where it is (no-op alone)."""
        from zoo.training.distributed import share

        if self.setup.world.distributed:
            prepared.manifest.world_size = self.setup.world.size
        share((str(prepared.folder.path), prepared.resumed))

    def _follow(self) -> _Prepared:
        """A rank other than 0: read the folder rank 0 prepared, as a resume reads it, and
        write nothing (no lock either: rank 0 holds it for the whole group)."""
        from zoo.training.distributed import share

        run_dir, resumed = share(None)
        folder = RunFolder(run_dir)
        self.manifest = folder.manifest()
        return replace(self._resume(folder, say=False), resumed=resumed)

    # when it fails -----------------------------------------------------------------------------

    def keep_for_resume(self, err: BaseException) -> None:
        """Record in the manifest why the run stopped, and say how to continue it."""
        if not self.setup.world.main or self.folder is None or self.manifest is None or not self.folder.path.is_dir():
            return
        m = self.manifest
        m.status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        m.error = f"{type(err).__name__}: {err}"
        try:
            self.folder.write_manifest(m)
        except (OSError, ZooError):  # a full disk: the error that got us here says so
            pass
        if not self.opts.quiet:
            self.setup.reporter.warn(
                f"run folder kept: {self.folder.path} (done: {', '.join(m.done) or 'nothing'}); "
                f"continue it with: zoo run --task {m.task} --backend {m.backend} "
                f"--out {self.opts.out} --name {self.folder.path.name} --resume")


# -- fit, predict, evaluate, report ------------------------------------------------------------------


class _Run:
    """A prepared run while it trains, predicts, scores and reports (the phases read like the
    module doc)."""

    def __init__(self, setup: _Setup, prepared: _Prepared):
        from zoo.pipeline.tracking import open_tracker

        self.setup, self.opts, self.world = setup, setup.opts, setup.world
        self.reporter, self.task, self.spec, self.cls = setup.reporter, setup.task, setup.spec, setup.cls
        self.folder, self.manifest, self.resumed = prepared.folder, prepared.manifest, prepared.resumed
        self.config, self.device, self.protocol = prepared.config, prepared.device, prepared.protocol
        self.data = prepared.data
        self.ledger = self._ledger()  # the checkpoints' sha256 (zoo.checksums)
        self.tracker = open_tracker(self.opts.track, Path(self.opts.out))
        self.fit_started: float | None = None  # perf_counter at the start of this fit part
        self.ranked: list | None = None

    def run(self) -> RunResult:
        """Fit (rank 0 and the ranks training along), then rank 0 alone predicts, scores and
        reports, with the ``zoo`` logger mirrored into log.txt."""
        self.manifest.status = "running"  # a resumed run's manifest says how it stopped
        if not self.world.main:
            self.fit()  # trains along; prediction and scores are rank 0's, once
            return self._result({})
        with _log_to(self.folder.log_file):
            self.start_tracking()
            try:
                backend = self.fit()
                preds = self.predict(backend)
                metrics = self.evaluate(preds, self.predict_test(backend))
                if self.opts.rank:
                    self.rank_unlabelled(backend)
                self.report(metrics, preds)
                self.track_results(metrics)
            except BaseException:
                self.tracker.end(ok=False)
                raise
            self.tracker.end(ok=True)
        return self._result(metrics)

    def _result(self, metrics: dict) -> RunResult:
        return RunResult(self.folder.path, self.spec.name, self.task.name, metrics, self.manifest, self.resumed,
                         self.ranked)

    # the manifest and the backend's context --------------------------------------------------------

    def phase_done(self, phase: str, seconds: float | None = None) -> None:
        self.manifest.phase_done(phase, seconds)
        self.folder.write_manifest(self.manifest)

    def save_progress(self) -> None:
        """The manifest after a checkpoint was written: its sha256, and the training time
        so far (what a resume after a crash adds its own part to)."""
        if self.fit_started is not None:
            self.manifest.timings.fit_parts[-1] = round(time.perf_counter() - self.fit_started, 3)
        self.folder.write_manifest(self.manifest)

    def _ledger(self):
        if not self.world.main:
            from zoo.checksums import FollowerLedger

            return FollowerLedger(self.folder.path)
        return self.folder.ledger(self.manifest, save=self.save_progress)

    def context(self):
        from zoo.backend import RunContext
        from zoo.training.distributed import local_device

        return RunContext(run_dir=self.folder.path.resolve(), device=local_device(self.device), log=log,
                          resume=self.resumed, trust_weights=self.opts.trust_weights, ledger=self.ledger)

    def backend_config(self):
        # The backend gets the device resolved; config.yaml keeps what the user asked ("auto").
        # Under a launcher each rank trains on its own GPU (cuda:LOCAL_RANK).
        from zoo.training.distributed import local_device

        return self.config.model_copy(update={"device": local_device(self.device)})

    # fit ------------------------------------------------------------------------------------------

    def fit(self):
        """The trained backend: restored when an earlier part of the run finished fit."""
        from zoo.selection import Selection

        ctx = self.context()
        seed_everything(self.config.seed)
        if self.manifest.trained:
            ctx.ledger.verify_all("checkpoint")
            return self.cls.load(self.task, self.data.meta, self.backend_config(), ctx)
        backend = self.cls(self.task, self.data.meta, self.backend_config(), ctx)
        selection = Selection(self.protocol, self.data.selection, self.task)
        if not self.world.main:
            # train along (zoo.training.fit shares the epochs and gradients); rank 0 records
            backend.fit(self.data.train, selection)
            return backend
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        budget = self.config.budget
        self.reporter.say(f"training {self.spec.name} for "
                          + (f"a budget of {budget / 60:.1f} min ..." if budget else f"{self.config.epochs} epoch(s) ..."))
        own = self._timed_fit(backend, selection)
        # every file the backend left in checkpoint/, whether or not it recorded it itself
        ctx.ledger.record(*sorted(p for p in ctx.checkpoint_dir.rglob("*") if p.is_file()))
        self._record_fit(backend, selection, own)
        fit_seconds = sum(self.manifest.timings.fit_parts)
        self._record_budget(fit_seconds)
        self.phase_done("fit", fit_seconds)
        return backend

    def _timed_fit(self, backend, selection) -> dict:
        """``backend.fit``, its time a new part of ``timings.fit_parts``: training time is the
        sum of its parts, an interrupted part counting up to its last checkpoint (what the
        resumed part continues from); the published weights it fetched, recorded."""
        from zoo.training import fetch

        parts = self.manifest.timings.fit_parts
        if parts is None:
            parts = self.manifest.timings.fit_parts = []
        parts.append(0.0)
        self.fit_started = t0 = time.perf_counter()
        fetched = fetch.mark()
        own = dict(backend.fit(self.data.train, selection) or {})
        # the published weights training started from: file, URL, sha256 (zoo.training.fetch)
        if fetch.records_since(fetched):
            self.manifest.weights = fetch.records_since(fetched)
        self.fit_started = None
        parts[-1] = round(time.perf_counter() - t0, 3)
        return own

    def _record_fit(self, backend, selection, own: dict) -> None:
        """What training chose and reported, in the manifest."""
        m = self.manifest
        m.selection = selection.summary()
        if selection.active and not selection.scored:
            log.warning("%s scored nothing on the selection split: its weights are not chosen by "
                        "the protocol (%s)", self.spec.name, self.protocol.describe())
        # What a self-configuring framework chose (patch size, batch, topology): the report
        # shows it as the backend's plan, not as scores.
        m.plan = own.pop("plan", None) or m.plan
        # Per-epoch rows ({"epoch": n, "loss": ...}) a backend reports: for --track.
        m.history = own.pop("history", None) or m.history
        m.framework_metrics = {
            "note": f"{self.spec.name}'s own numbers, for the log only; ranked scores are in metrics.json", **own,
        }
        m.versions.update(backend.versions() or {})
        m.parameters = backend.num_parameters()

    def _record_budget(self, fit_seconds: float) -> None:
        """The budget and what training took, in the manifest; an overrun is a warning (a
        backend whose framework has its own loop may not honour the budget)."""
        budget = self.config.budget
        if not budget:
            return
        self.manifest.budget = {"seconds": budget, "fit_seconds": round(fit_seconds, 3)}
        if fit_seconds > 1.25 * budget:
            log.warning("%s trained for %.0f s against a budget of %.0f s", self.spec.name, fit_seconds, budget)

    # predict, evaluate ------------------------------------------------------------------------------

    def _predictions(self, backend, dataset: Dataset, description: str) -> list:
        """The backend's predictions on ``dataset``'s images (annotations removed), checked."""
        images = strip_annotations(dataset)
        preds = list(self.reporter.track(backend.predict(images), description, total=len(images)))
        check_predictions(self.task, self.spec.name, images, preds, self.data.meta)
        return preds

    def predict(self, backend) -> list:
        from zoo.pipeline.predict import write_labelme_predictions

        val, t = self.data.val, self.manifest.timings
        t0 = time.perf_counter()
        preds = self._predictions(backend, val, "predicting")
        seconds = time.perf_counter() - t0
        t_save = time.perf_counter()
        self.folder.save_predictions(self.task, preds, val)
        # For viewing in labelme: the same --conf cut as `zoo predict`; coco_results keeps all.
        write_labelme_predictions(self.folder.labelme_dir, val, preds, conf=0.25, copy_images=False,
                                  registry=self.opts.registry)
        t.predict_per_image_ms = round(1000 * seconds / max(1, len(val)), 3)
        t.save_predictions = round(time.perf_counter() - t_save, 3)
        self.phase_done("predict", seconds)
        return preds

    def predict_test(self, backend) -> list | None:
        """The chosen model's predictions on the test split (None without one), saved under
        predictions/test/ in the same formats as val's."""
        if self.data.test is None:
            return None
        t0 = time.perf_counter()
        preds = self._predictions(backend, self.data.test, "predicting test")
        self.folder.save_predictions(self.task, preds, self.data.test, split="test")
        self.manifest.timings.predict_test = round(time.perf_counter() - t0, 3)
        return preds

    def score(self, dataset: Dataset, preds: list, plots: Path) -> dict:
        from zoo.evaluation import evaluate
        from zoo.selection import statement

        plots.mkdir(parents=True, exist_ok=True)
        metrics = evaluate(self.task, dataset, preds, plots_dir=plots)
        metrics.setdefault("conventions", {})["model selection"] = statement(self.manifest.selection)
        if isinstance(metrics.get("plots"), list):  # relative: a run folder may be moved or shared
            metrics["plots"] = [self.folder.relative(p) for p in metrics["plots"]]
        return metrics

    def evaluate(self, preds: list, test_preds: list | None = None) -> dict:
        """val scores; with test predictions, the same evaluator on test under ``"test"``."""
        t0 = time.perf_counter()
        metrics = self.score(self.data.val, preds, self.folder.plots_of("val"))
        if test_preds is not None:
            metrics["test"] = self.score(self.data.test, test_preds, self.folder.plots_of("test"))
        self.folder.write_metrics(metrics)
        self.phase_done("evaluate", time.perf_counter() - t0)
        return metrics

    def rank_unlabelled(self, backend) -> None:
        from zoo.pipeline.ranking import rank_unlabelled_of_run

        unlabelled = self.manifest.data.unlabelled
        if unlabelled:
            self.reporter.say(f"ranking {len(unlabelled)} unlabelled image(s) ...")
            self.ranked = rank_unlabelled_of_run(self.folder.path, backend, self.task, self.data.meta, self.spec.name,
                                                 self.data.dataset.root, unlabelled, top=self.opts.top)

    # report, tracking --------------------------------------------------------------------------------

    def report(self, metrics: dict, preds: list) -> None:
        from zoo.config import dump_config
        from zoo.pipeline.report import write_report

        t0 = time.perf_counter()
        m = self.manifest
        m.status, m.finished, m.timings.report = "finished", _now(), 0.0
        self.write_html(metrics, preds)  # first: report.md lists plots/samples.png
        write_report(self.folder.path, manifest=m, metrics=metrics, split=self.data.split,
                     dataset=self.data.dataset, config=dump_config(self.config), task=self.task)
        m.timings.report = round(time.perf_counter() - t0, 3)
        self.phase_done("report")

    def write_html(self, metrics: dict, preds: list) -> None:
        """plots/samples.png (the hardest val images, overlays) and report.html; a drawing
        that fails costs the pictures, never the run."""
        from zoo.pipeline.failures import failures_figure
        from zoo.pipeline.report_html import write_run_html

        try:
            failures = failures_figure(self.task, self.data.val, {self.spec.name: {p.image_id: p for p in preds}},
                                       path=self.folder.samples_file)
        except Exception as e:  # noqa: BLE001 - a picture must not cost the scores
            log.warning("plots/samples.png failed: %s", e, exc_info=True)
            failures = (None, [])
        write_run_html(self.folder.path, manifest=self.manifest, metrics=metrics, failures=failures)

    def start_tracking(self) -> None:
        from zoo.config import dump_config
        from zoo.pipeline.tracking import flat_params

        m, path = self.manifest, self.folder.path
        self.tracker.start(path, path.name, params=flat_params(dump_config(self.config)),
                           tags={"backend": self.spec.name, "task": self.task.name,
                                 "data_hash": m.data.hash, "split": m.split.key,
                                 **{f"split.{k}": getattr(m.split, k) for k in ("train", "selection", "val", "test")},
                                 **({"fold": self.opts.fold} if self.opts.fold is not None else {}),
                                 "seed": self.config.seed},
                           parent=self.opts.track_parent)

    def track_results(self, metrics: dict) -> None:
        from zoo.pipeline.tracking import history_metrics, score_metrics

        f = self.folder
        self.tracker.history(history_metrics(self.manifest))
        self.tracker.final(score_metrics(metrics))
        self.tracker.artifacts([f.report_file, f.html_file, f.metrics_file, f.config_file, f.split_file, f.plots_dir])


# -- the whole pipeline ----------------------------------------------------------------------------


def execute(opts: RunOptions) -> RunResult:
    """Run the whole pipeline; returns where it went and what it scored."""
    from zoo.training import distributed

    setup = _Setup.of(opts)
    preparer = _Preparer(setup)
    try:
        distributed.join()
        prepared = preparer.prepare()
        if prepared.resumed and prepared.manifest.is_finished:
            setup.reporter.say(f"{prepared.folder.path} already finished; nothing to resume")
            return RunResult(prepared.folder.path, setup.spec.name, setup.task.name,
                             prepared.folder.read_metrics(), prepared.manifest, resumed=True)
        return _Run(setup, prepared).run()
    except BaseException as e:
        preparer.keep_for_resume(e)
        raise
    finally:
        preparer.release()
        distributed.leave()
