"""The prepare step of ``zoo run``: from the options to a run folder ready to train in.

:class:`Setup` checks what the options name before anything is read (task, backend, its
framework, ``--select``); :class:`Preparer` then chooses or claims the run folder, reads and
checks the data, splits it, resolves the config and writes config.yaml, split.json, data/ and
the manifest, and hands :class:`zoo.pipeline.run` a :class:`Prepared` run. ``--resume`` and
the ranks of a launcher other than 0 read a prepared folder back instead of writing one.
"""

from __future__ import annotations

import logging
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zoo import __version__
from zoo.atomic import write_json
from zoo.config import dump_config, resolve_config
from zoo.data.demo import ensure_demo
from zoo.data.empty_images import thin_empty_images
from zoo.data.folds import fold_split
from zoo.data.groups import group_images
from zoo.data.intensity import fill_intensity, with_intensity
from zoo.data.lint import refuse_errors, unannotated_images
from zoo.data.reading import read_dataset
from zoo.data.split import carve_selection, check_split, choose_split, data_hash, grouped_dataset
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.evaluation.coco import GroundTruth
from zoo.pipeline.options import RunOptions, Source
from zoo.pipeline.ranking import require_scores
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
from zoo.pixels import parse_intensity
from zoo.progress import LogReporter, Reporter
from zoo.selection import Protocol
from zoo.tasks import Task, get_task
from zoo.training.autoconfig import fill_auto, vanishing_instances
from zoo.training.devices import resolve_device
from zoo.training.distributed import share, world


if TYPE_CHECKING:
    from zoo.backend import Backend
    from zoo.config import BackendConfig
    from zoo.registry import Registry
    from zoo.data.split import Split
    from zoo.specs import BackendSpec
    from zoo.training.distributed import World

log = logging.getLogger("zoo")
T = TypeVar("T")


class Quiet(LogReporter):
    """A reporter's progress bars, its messages to the log only (``RunOptions.quiet``)."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        return self.reporter.track(items, description, total=total)


def read_input(source: Source, registry) -> tuple[Dataset, str]:
    """The dataset and a label for where it came from (``demo`` when --data is omitted),
    read by ``registry``'s readers."""
    if source.path is None:
        return read_dataset(ensure_demo(), "auto", source.labels, registry=registry), "demo"
    return read_dataset(source.path, source.fmt, source.labels, source.images, registry=registry), str(source.path)


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


@dataclass
class Setup:
    """What the options name, checked before anything is read: a bad task, backend,
    ``--select`` or missing framework fails in a second."""

    opts: RunOptions
    reporter: Reporter
    world: World  # under a launcher: this process's rank
    task: Task
    spec: BackendSpec
    cls: type[Backend]  # the spec's class, loaded
    flags: dict[str, Any]
    registry: Registry  # the plugins: the options' own, else the installed ones
    protocol: Protocol  # asked for (a resume keeps the recorded one)

    @classmethod
    def of(cls, opts: RunOptions) -> Setup:
        from zoo.registry import get_registry

        here = world()  # under torchrun & co: rank 0 writes, the others train along
        if not here.main:
            opts = replace(opts, quiet=True)
        reporter = opts.reporter or LogReporter()
        task = get_task(opts.task)
        registry = opts.registry or get_registry()
        spec = registry.backend(opts.backend, task.name)
        if opts.output.rank:
            require_scores(task)
        return cls(opts=opts, reporter=Quiet(reporter) if opts.quiet else reporter, world=here, task=task,
                   spec=spec, cls=spec.load(), flags=dict(opts.training.flags), registry=registry,
                   protocol=asked_protocol(opts.selection))

    def resolve_config(self, base: dict | None = None):
        o = self.opts
        return resolve_config(
            self.cls.Config, backend=self.spec.name, task=self.task.name,
            files=o.training.config_files, flags=self.flags, sets=o.training.sets, base=base,
            demo=o.source.is_demo, spec=self.spec,
        )


def asked_protocol(asked: Protocol | None, recorded: dict | None = None) -> Protocol:
    """The selection protocol asked for (None: not given, the defaults); on ``--resume``, the
    recorded one, which a protocol given now must not contradict."""
    if recorded is None:
        return asked or Protocol()
    old = Protocol.from_dict(recorded)
    if asked is not None and asked.to_dict() != old.to_dict():
        raise ZooError(f"--resume: the interrupted run's model selection was {old.describe()}; "
                       f"drop the changed --select / --select-frac / --patience or start a new run")
    return old


@dataclass
class RunData:
    """The data of a run, split: what fit, predict and the scores each see."""

    dataset: Dataset
    label: str  # where it came from, for messages ("demo" for the demo data)
    digest: str  # zoo.data.split.data_hash
    split: Split
    train: Dataset
    selection: Dataset  # carved from train; scored during training by the selection protocol
    val: Dataset
    test: Dataset | None  # predicted and scored once, after the model is chosen; fit never sees it
    meta: Dataset  # the vocabularies, no images
    #: val's and test's ground truth as the evaluator scores it (zoo.evaluation.coco.GroundTruth):
    #: converted once, for data/val_coco.json and for the scores
    val_truth: GroundTruth | None = None
    test_truth: GroundTruth | None = None

    @classmethod
    def of(cls, dataset: Dataset, label: str, digest: str, split) -> RunData:
        dataset = grouped_dataset(dataset, split)  # the split's groups on the records: ci95 resamples them
        val, test = dataset.subset(split.val), dataset.subset(split.test) if split.test else None
        return cls(dataset, label, digest, split, train=dataset.subset(split.train),
                   selection=dataset.subset(split.selection), val=val, test=test, meta=dataset.meta(),
                   val_truth=GroundTruth(val), test_truth=GroundTruth(test) if test is not None else None)


@dataclass
class Prepared:
    """A run folder ready to train in: what the prepare step hands :class:`_Run`."""

    folder: RunFolder
    manifest: Manifest
    config: BackendConfig  # the backend's, resolved
    device: str  # resolved ("cpu", "cuda:0", ...); config.yaml keeps what the user asked
    data: RunData
    protocol: Protocol
    resumed: bool

    def save(self) -> None:
        self.folder.write_manifest(self.manifest)

    def phase_done(self, phase: str, seconds: float | None = None) -> None:
        self.manifest.phase_done(phase, seconds)
        self.save()


# -- the steps of a new run ------------------------------------------------------------------------


def read_checked(setup: Setup) -> tuple[Dataset, str]:
    """The dataset and where it came from (``--strict``: refused when ``zoo check`` finds
    errors), its problems reported, checked against the task and for pixels."""
    source, split, task = setup.opts.source, setup.opts.split, setup.task
    if source.strict:
        refuse_errors(source.path or ensure_demo(), fmt=source.fmt, labels=source.labels, task=task.name,
                      val=split.val, test=split.test, images=source.images, group=split.group,
                      registry=setup.registry)
    if source.dataset is not None:
        dataset, label = source.dataset, str(source.path or source.dataset.root or "dataset")
    else:
        dataset, label = read_input(source, setup.registry)
    report_problems(dataset, setup.reporter)
    task.check(dataset)
    check_pixels(dataset, label)
    return dataset, label


def split_for(setup: Setup, dataset: Dataset, digest: str, seed: int):
    """``--split``, or fold i of ``--folds K`` (zoo.data.folds); then the selection split
    carved from train (zoo.selection)."""
    plan, task = setup.opts.split, setup.task
    grouping = plan.grouping if plan.grouping is not None else group_images(dataset, plan.group)
    if plan.fold is None and plan.folds is None:
        split = choose_split(plan.rule, dataset, task, val=plan.val, test=plan.test, seed=seed, digest=digest,
                             grouping=grouping, allow_leak=plan.allow_leak)
    elif plan.fold is None or plan.folds is None:
        raise ZooError("--fold and --folds go together: --fold i --folds K")
    else:
        split = fold_split(dataset, task, plan.fold, plan.folds, seed=seed, digest=digest, grouping=grouping,
                           test=plan.test)
    return carve_selection(split, dataset, task, setup.protocol.split_fraction, grouping)


def new_manifest(setup: Setup, data: RunData, seed: int, device: str, t_read: float) -> Manifest:
    path, split = setup.opts.source.path, data.split
    return Manifest(
        zoo=__version__, backend=setup.spec.name, framework=setup.spec.framework_name, task=setup.task.name,
        status="running", started=_now(), command=shlex.join(sys.argv),  # quoted: pastes back into a shell as it ran
        # absolute, so --resume finds it from any working directory ("demo" for the demo)
        data=DataRecord(path=str(Path(path).resolve()) if path is not None else data.label,
                        format=data.dataset.format, hash=data.digest, summary=data.dataset.summary(),
                        unlabelled=unlabelled_images(data.dataset)),
        seed=seed, device=device,
        split=SplitRecord(key=split.key, **split.sizes(), val_fraction=split.val_fraction,
                          test_fraction=split.test_fraction, selection_fraction=split.selection_fraction,
                          group_rule=split.group_rule or None, groups=split.group_counts() if split.groups else None,
                          leaks=split.leaks or None),
        selection={"protocol": setup.protocol.to_dict(), "description": setup.protocol.describe()},
        versions=_versions(), timings=Timings(read=round(t_read, 3)), checkpoints={},
    )


def unlabelled_images(dataset: Dataset) -> list[str]:
    """Images in the data folder no annotation covers (not trained on; --rank ranks them)."""
    root = dataset.root
    if root is None or not root.is_dir():
        return []
    return [p.relative_to(root).as_posix() for p in unannotated_images(dataset, root)]


def choose_auto(setup: Setup, config, train: Dataset, device: str):
    """``config`` with ``imgsz``/``epochs: auto`` filled from the training images, and the
    choices (``Manifest.choices``; None when nothing was auto); why, said."""
    config, choices = fill_auto(config, setup.cls, setup.task, train, device)
    for c in choices:
        setup.reporter.say(str(c))
    tiny = vanishing_instances(train, config.imgsz) if isinstance(config.imgsz, int) else {}
    for name, count in tiny.items():
        setup.reporter.warn(f"{count} '{name}' instance(s) are under 4 px at imgsz {config.imgsz}: "
                            "the model can hardly see them (raise --imgsz)")
    return config, ({c.key: c.to_dict() for c in choices} or None)


def choose_pixels(setup: Setup, config, train: Dataset):
    """``config`` with its intensity rule fitted on the training images (config.yaml keeps the
    fitted rule, so a resume and ``zoo predict`` decode as training did), and the choice."""
    config, chosen = fill_intensity(config, train)
    if chosen.rule is not None:
        setup.reporter.say(f"intensity {chosen.rule.describe()}: {chosen.reason}")
    return config, chosen


def intensity_choice(chosen) -> dict:
    """The manifest's (and the report's) record of the intensity rule."""
    rule = chosen.rule
    return {"value": chosen.spec, "reason": chosen.reason if rule is None else f"{rule.describe()}; {chosen.reason}"}


def recorded_rule(config):
    """The rule config.yaml recorded (``none``: 8-bit pixels as they are)."""
    return parse_intensity(config.intensity)[1]


def write_prepared(p: Prepared) -> None:
    """config.yaml, split.json, data/ (the vocabularies, and the ground truth exactly as the
    evaluator scores it: zoo-filled polygons as RLE, a COCO file's own annotations as given),
    then the manifest with ``prepare`` done."""
    p.folder.write_config(dump_config(p.config))
    p.folder.write_split(p.data.split)
    p.folder.write_meta(p.data.meta)
    write_json(p.folder.val_truth_file, p.data.val_truth.coco("segm"))
    if p.data.test is not None:
        write_json(p.folder.test_truth_file, p.data.test_truth.coco("segm"))
    p.phase_done("prepare")


class Preparer:
    """The prepare phase: choose (or claim) the run folder, read and check the data, split it,
    resolve the config, write config.yaml, split.json, data/ and the manifest.

    It keeps the folder, its manifest and its lock from the moment it has them, so that a
    failure at any point (here or later in the run) is recorded in the folder it reached.
    """

    def __init__(self, setup: Setup):
        self.setup = setup
        self.opts = setup.opts
        self.output = setup.opts.output
        self.say = setup.reporter.say
        self.folder: RunFolder | None = None
        self.manifest: Manifest | None = None
        self.lock: RunLock | None = None

    def prepare(self) -> Prepared:
        if not self.setup.world.main:
            return self._follow()
        resumed = self._resumed_folder() if self.output.resume else None
        prepared = self._resume(resumed) if resumed is not None else self._new()
        self._lead(prepared)
        return prepared

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # a new run -------------------------------------------------------------------------------

    def _new(self) -> Prepared:
        setup = self.setup
        t0 = time.perf_counter()
        # Config before data: a typo in --set fails in a second, not after reading 10k files.
        config = setup.resolve_config()
        dataset, label = read_checked(setup)
        t_read = time.perf_counter() - t0
        digest = data_hash(dataset)
        split = split_for(setup, dataset, digest, config.seed)
        split, thinned = thin_empty_images(split, dataset, config.empty_slices, config.seed)
        if split.source == "data":
            self.say("using the train / val split the data defines (--split random to draw one)")
        for leak in split.leaks:
            setup.reporter.warn(f"--allow-leak: {leak}; the scores measure partly memory")
        device = resolve_device(config.device)
        config, intensity = choose_pixels(setup, config, dataset.subset(split.train))
        data = RunData.of(with_intensity(dataset, intensity.rule), label, digest, split)
        folder = self._claim(self._base_name())
        self.manifest = new_manifest(setup, data, config.seed, device, t_read)
        config, self.manifest.choices = choose_auto(setup, config, data.train, device)
        self.manifest.choices = {**(self.manifest.choices or {}), "intensity": intensity_choice(intensity)}
        if thinned:
            why = (f"{thinned} training image(s) without annotations left out "
                   f"(empty_slices {config.empty_slices}: that fraction of them trains)")
            self.say(why)
            self.manifest.choices["empty_slices"] = {"value": config.empty_slices, "reason": why}
        prepared = Prepared(folder, self.manifest, config, device, data, setup.protocol, resumed=False)
        write_prepared(prepared)
        self.say(
            f"{setup.spec.name} {setup.task.name} on {label}: {len(data.train)} train"
            + (f" / {len(data.selection)} selection" if len(data.selection) else "")
            + f" / {len(data.val)} val images, device {device}, run folder {folder.path}"
        )
        return prepared

    def _base_name(self) -> str:
        return check_name(self.output.name or default_name(self.setup.spec.name, self.setup.task.name))

    def _claim(self, base: str) -> RunFolder:
        """Create the first free ``<out>/<base>[-N]`` and lock it. Another zoo run may take a
        name while this one reads its data: then the next free one."""
        path = next_free(Path(self.output.out), base)
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

    # --resume ---------------------------------------------------------------------------------

    def _resumed_folder(self) -> RunFolder:
        """--name X resumes X itself; without --name, the newest <backend>-<task>[-N]. Locked
        before anything reads or writes it."""
        out, base, setup = Path(self.output.out), self._base_name(), self.setup
        existing = [out / base] if self.output.name and (out / base).is_dir() else series(out, base)
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

    def _resume(self, folder: RunFolder, say: bool = True) -> Prepared:
        """The interrupted run as it was prepared: its config (what is asked now must agree),
        its data (unchanged, by hash), its split and its selection protocol."""
        m, source = self.manifest, self.opts.source
        if "prepare" not in m.done:
            raise ZooError(f"--resume: {folder.path} stopped before its data was prepared; "
                           "there is nothing to resume, start a new run")
        saved = folder.read_config()
        config = self.setup.resolve_config(base=saved)
        diff = _config_diff(saved, dump_config(config))
        asked = (m.budget or {}).get("epochs_asked")
        if diff and asked is not None:  # config.yaml says the epochs a --budget ran; the asked ones agree too
            diff = _config_diff({**saved, "epochs": asked}, dump_config(config))
        if diff:
            raise ZooError(f"--resume: the config differs from the interrupted run's ({'; '.join(diff)}); "
                           "drop the changed options or start a new run")
        if source.dataset is not None:
            dataset, label = source.dataset, str(source.path or "dataset")
        else:
            if source.path is None and m.data.path != "demo":  # the run's own data, wherever it is run from
                source = replace(source, path=Path(m.data.path))
            dataset, label = read_input(source, self.setup.registry)
        digest = data_hash(dataset)
        if digest != m.data.hash:
            raise ZooError(f"--resume: the data changed since {folder.path} started; start a new run")
        split = folder.read_split()
        check_split(split, dataset, self.setup.task, digest, str(folder.split_file))
        protocol = asked_protocol(self.opts.selection, m.selection.get("protocol") or {})
        m.device = resolve_device(config.device)
        if say:
            self.say(f"resuming {folder.path} (done: {', '.join(m.done) or 'nothing'})")
        dataset = with_intensity(dataset, recorded_rule(config))
        return Prepared(folder, m, config, m.device, RunData.of(dataset, label, digest, split), protocol, resumed=True)

    # under a launcher (torchrun): rank 0 prepares, the others follow -----------------------------

    def _lead(self, prepared: Prepared) -> None:
        """Rank 0, its folder prepared: tell the other ranks where it is (no-op alone)."""
        if self.setup.world.distributed:
            prepared.manifest.world_size = self.setup.world.size
        share((str(prepared.folder.path), prepared.resumed))

    def _follow(self) -> Prepared:
        """A rank other than 0: read the folder rank 0 prepared, as a resume reads it, and
        write nothing (no lock either: rank 0 holds it for the whole group)."""
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
                f"--out {self.output.out} --name {self.folder.path.name} --resume")
