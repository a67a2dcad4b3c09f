"""``zoo run``: annotation folder (or the demo data) -> split -> train -> predict -> shared scores.

The pipeline, backend-agnostic (a backend only ever sees canonical data)::

    prepare   read the folder, report its problems, task.check, split (split.json; the
              selection split carved from train when the protocol scores, zoo.selection),
              resolve the config (config.yaml), ground truth scored (data/val_coco.json)
    fit       backend.fit(train, selection)                -> checkpoint/
              (never the scored split: the selection protocol is zoo's, see zoo.selection)
    predict   backend.predict(val images, annotations removed), each prediction validated
              by the task                                  -> predictions/
    evaluate  zoo.evaluation.evaluate (the ONE evaluator)  -> metrics.json, plots/
    report                                                 -> report.md, report.html,
              plots/samples.png (the hardest val images), a table on screen

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
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.atomic import write_json, write_yaml
from zoo.dataset import Dataset, strip_annotations
from zoo.errors import ZooError
from zoo.pipeline.runfolder import (
    RunLock,
    check_name,
    checkpoint_ledger,
    default_name,
    is_finished,
    next_free,
    read_manifest,
    save_predictions,
    series,
)
from zoo.predictions import check_predictions
from zoo.tasks import get_task
from zoo.training.seeding import seed_everything

log = logging.getLogger("zoo")


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
    #: No progress messages or summary table (zoo compare prints its own).
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
    manifest: dict[str, Any]
    resumed: bool = False
    ranked: list | None = None  # --rank: zoo.pipeline.ranking.Ranked, most useful first


# -- helpers -----------------------------------------------------------------------------------


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _relative(path: str | Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _esc(v: Any) -> str:
    """User text (paths, messages) shown through rich: never read as markup."""
    from rich.markup import escape

    return escape(str(v))


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


def report_problems(dataset: Dataset, console, quiet: bool, limit: int = 5) -> None:
    """A short summary of the reader's warnings; all of them go to the log."""
    if not dataset.warnings:
        return
    for w in dataset.warnings:
        log.warning("%s", w)
    if quiet:
        return
    console.print(f"[yellow]{len(dataset.warnings)} problem(s) in the data[/] (skipped or repaired):")
    for w in dataset.warnings[:limit]:
        console.print(f"  {w}", markup=False)
    if len(dataset.warnings) > limit:
        console.print(f"  ... and {len(dataset.warnings) - limit} more (see log.txt, or run `zoo check`)")


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


# -- the pipeline --------------------------------------------------------------------------------


class _Run:
    """State of one run while it executes (one object, so phases read like the module doc)."""

    def __init__(self, opts: RunOptions):
        from zoo.registry import get_registry

        from zoo.training.distributed import world

        self.world = world()  # under torchrun & co: rank 0 writes, the others train along
        if not self.world.main:
            opts = replace(opts, quiet=True)
        self.opts = opts
        self.console = _console()
        self.registry = opts.registry or get_registry()
        self.task = get_task(opts.task)
        self.spec = self.registry.backend(opts.backend, self.task.name)
        self.flags = dict(opts.flags)
        if opts.seed is not None and self.flags.get("seed") is None:
            self.flags["seed"] = opts.seed
        self.manifest: dict[str, Any] = {}
        self.resumed = False
        self.ranked = None
        if opts.rank:
            from zoo.pipeline.ranking import require_scores

            require_scores(self.task)
        self.lock: RunLock | None = None
        self.ledger = None  # the checkpoints' sha256 (zoo.checksums), once the manifest exists
        self.fit_started: float | None = None  # perf_counter at the start of this fit part
        self.protocol = self.asked_protocol()  # a bad --select fails before anything is read

    def choose_split(self):
        """``--split``, or fold i of ``--folds K`` (zoo.data.folds), before the selection split."""
        from zoo.data.split import choose_split

        opts = self.opts
        if opts.fold is None and opts.folds is None:
            return choose_split(opts.split_file, self.dataset, self.task, val=opts.val, test=opts.test,
                                seed=self.config.seed, digest=self.digest)
        if opts.fold is None or opts.folds is None:
            raise ZooError("--fold and --folds go together: --fold i --folds K")
        if opts.test:
            raise ZooError("--folds and --test: cross-validation scores every image once on val; drop --test")
        from zoo.data.folds import fold_split

        return fold_split(self.dataset, self.task, opts.fold, opts.folds, seed=self.config.seed, digest=self.digest)

    def asked_protocol(self, recorded: dict | None = None):
        """The selection protocol from the options; on ``--resume``, the recorded one, which
        an option given now must not contradict."""
        from zoo.selection import Protocol

        o = self.opts
        asked = {"rule": o.select, "fraction": o.select_frac, "patience": o.patience}
        if recorded is None:
            return Protocol(**{k: v for k, v in asked.items() if v is not None})
        old = Protocol.from_dict(recorded)
        for key, value in asked.items():
            if value is not None and value != getattr(old, key):
                raise ZooError(f"--resume: the interrupted run's model selection was {old.describe()}; "
                               f"drop the changed --select / --select-frac / --patience or start a new run")
        return old

    def say(self, msg: str) -> None:
        if not self.opts.quiet:
            self.console.print(msg)

    # prepare ----------------------------------------------------------------------------------

    def resolve_config(self, base: dict | None = None):
        from zoo.config import resolve_config

        return resolve_config(
            self.cls.Config, backend=self.spec.name, task=self.task.name,
            files=self.opts.config_files, flags=self.flags, sets=self.opts.sets, base=base,
            demo=self.opts.demo or (self.opts.data is None and self.opts.dataset is None),
        )

    def choose_auto(self) -> None:
        """Fill ``imgsz``/``epochs: auto`` from the training images; say and record why."""
        from zoo.training.autoconfig import fill_auto, vanishing_instances

        self.config, choices = fill_auto(self.config, self.cls, self.task, self.train, self.device)
        if choices:
            self.manifest["choices"] = {c.key: c.to_dict() for c in choices}
        for c in choices:
            log.info("chose %s", c)
            self.say(f"[dim]{_esc(c)}[/]")
        tiny = vanishing_instances(self.train, self.config.imgsz) if isinstance(self.config.imgsz, int) else {}
        for name, count in tiny.items():
            msg = (f"{count} '{name}' instance(s) are under 4 px at imgsz {self.config.imgsz}: "
                   "the model can hardly see them (raise --imgsz)")
            log.warning("%s", msg)
            self.say(f"[yellow]{_esc(msg)}[/]")

    def choose_folder(self) -> None:
        opts = self.opts
        out = Path(opts.out)
        base = self.base_name = check_name(opts.name or default_name(self.spec.name, self.task.name))
        if opts.resume:
            # --name X resumes X itself; without --name, the newest <backend>-<task>[-N].
            existing = [out / base] if opts.name and (out / base).is_dir() else series(out, base)
            if not existing:
                raise ZooError(f"--resume: no run named '{base}' in {out}")
            self.run_dir = existing[-1]
            m = read_manifest(self.run_dir)
            if m is None:
                raise ZooError(f"--resume: {self.run_dir} has no readable manifest.json; start a new run")
            if (m.get("backend"), m.get("task")) != (self.spec.name, self.task.name):
                raise ZooError(
                    f"--resume: {self.run_dir} is a {m.get('backend')} {m.get('task')} run, "
                    f"not {self.spec.name} {self.task.name}"
                )
            self.lock = RunLock(self.run_dir).acquire()  # before anything reads or writes the run
            self.manifest = read_manifest(self.run_dir) or m  # as the holder before us left it
            self.resumed = True
        else:
            self.run_dir = next_free(out, base)

    def claim_folder(self) -> None:
        # Another zoo run may have taken the name since choose_folder: take the next free one.
        # Announced only now: a mistake in the input fails before, with its one line.
        for _ in range(1000):
            try:
                self.run_dir.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                self.run_dir = next_free(self.run_dir.parent, self.base_name)
        else:
            raise ZooError(f"{self.run_dir.parent}: could not create a new run folder for {self.base_name}")
        self.lock = RunLock(self.run_dir).acquire()
        if self.run_dir.name != self.base_name:
            self.say(f"[dim]{_esc(self.run_dir.parent / self.base_name)} exists; this run goes to {_esc(self.run_dir)}[/]")

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def prepare(self) -> None:
        from zoo.training.devices import resolve_device
        from zoo.data.split import carve_selection, choose_split, data_hash, write_split

        opts = self.opts
        self.cls = self.spec.load()
        t0 = time.perf_counter()
        if not self.world.main:
            self.follow()
            return
        self.choose_folder()
        if self.resumed:
            self.prepare_resumed()
            self.lead()
            return
        # Config before data: a typo in --set fails in a second, not after reading 10k files.
        self.config = self.resolve_config()
        if opts.strict:
            from zoo.data.demo import ensure_demo
            from zoo.data.lint import refuse_errors

            refuse_errors(opts.data or ensure_demo(), fmt=opts.fmt, labels=opts.labels, task=self.task.name,
                          val=opts.val, test=opts.test)
        if opts.dataset is not None:
            self.dataset, self.data_label = opts.dataset, str(opts.data or opts.dataset.root or "dataset")
        else:
            self.dataset, self.data_label = read_input(opts.data, opts.fmt, opts.labels)
        report_problems(self.dataset, self.console, opts.quiet)
        self.task.check(self.dataset)
        check_pixels(self.dataset, self.data_label)
        t_read = time.perf_counter() - t0

        self.digest = data_hash(self.dataset)
        self.split = self.choose_split()
        self.split = carve_selection(self.split, self.dataset, self.task, self.protocol.split_fraction)
        if self.split.source == "data":
            self.say("[dim]using the train / val split the data defines (--split random to draw one)[/]")
        self.device = resolve_device(self.config.device)
        self.claim_folder()
        self.manifest = {
            "zoo": __version__,
            "backend": self.spec.name,
            "framework": self.spec.framework_name,
            "task": self.task.name,
            "status": "running",
            "done": [],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv),
            "data": {
                # absolute, so --resume finds it from any working directory ("demo" for the demo)
                "path": str(Path(opts.data).resolve()) if opts.data is not None else self.data_label,
                "format": self.dataset.format, "hash": self.digest,
                "summary": self.dataset.summary(),
                "unlabelled": self.unlabelled_images(),
            },
            "seed": self.config.seed,
            "device": self.device,
            "split": {"key": self.split.key, **self.split.sizes(),
                      "val_fraction": self.split.val_fraction, "test_fraction": self.split.test_fraction,
                      "selection_fraction": self.split.selection_fraction},
            "selection": {"protocol": self.protocol.to_dict(), "description": self.protocol.describe()},
            "versions": _versions(),
            "parameters": None,
            "timings": {"read": round(t_read, 3)},
            "checkpoints": {},  # path -> sha256 of each checkpoint written (zoo.checksums)
        }
        self.make_subsets()
        self.choose_auto()
        write_yaml(self.run_dir / "config.yaml", self._config_dump())
        write_split(self.split, self.run_dir / "split.json")
        self.write_ground_truth()
        self.phase_done("prepare")
        self.lead()
        self.say(
            f"[bold]{self.spec.name}[/] {self.task.name} on {_esc(self.data_label)}: "
            f"{len(self.train)} train"
            + (f" / {len(self.selection_data)} selection" if len(self.selection_data) else "")
            + f" / {len(self.val)} val images, device {self.device}, "
            f"run folder {_esc(self.run_dir)}"
        )

    def lead(self) -> None:
        """Rank 0, its folder prepared: tell the other ranks where it is (no-op alone)."""
        from zoo.training.distributed import share

        if self.world.distributed:
            self.manifest["world_size"] = self.world.size
        share((str(self.run_dir), self.resumed))

    def follow(self) -> None:
        """A rank other than 0: read the folder rank 0 prepared, as a resume reads it, and
        write nothing (no lock either: rank 0 holds it for the whole group)."""
        from zoo.training.distributed import share

        run_dir, resumed = share(None)
        self.run_dir = Path(run_dir)
        self.manifest = read_manifest(self.run_dir) or {}
        self.prepare_resumed()
        self.resumed = resumed

    def unlabelled_images(self) -> list[str]:
        """Images in the data folder no annotation covers (not trained on; --rank ranks them)."""
        from zoo.data.lint import unannotated_images

        root = self.dataset.root
        if root is None or not root.is_dir():
            return []
        return [p.relative_to(root).as_posix() for p in unannotated_images(self.dataset, root)]

    def rank_unlabelled(self) -> None:
        from zoo.pipeline.ranking import rank_unlabelled_of_run

        unlabelled = self.manifest.get("data", {}).get("unlabelled") or []
        if unlabelled:
            self.say(f"ranking {len(unlabelled)} unlabelled image(s) ...")
            self.ranked = rank_unlabelled_of_run(self.run_dir, self.backend, self.task, self.meta, self.spec.name,
                                                 self.dataset.root, unlabelled, top=self.opts.top)

    def prepare_resumed(self) -> None:
        from zoo.training.devices import resolve_device
        from zoo.data.split import check_split, data_hash, read_split

        opts, m = self.opts, self.manifest
        if "prepare" not in m.get("done", []):
            raise ZooError(f"--resume: {self.run_dir} stopped before its data was prepared; "
                           "there is nothing to resume, start a new run")
        import yaml

        saved = yaml.safe_load((self.run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        self.config = self.resolve_config(base=saved)
        diff = _config_diff(saved, self._config_dump())
        if diff:
            raise ZooError(f"--resume: the config differs from the interrupted run's ({'; '.join(diff)}); "
                           "drop the changed options or start a new run")
        if opts.dataset is not None:
            self.dataset, self.data_label = opts.dataset, str(opts.data or "dataset")
        else:
            recorded = m.get("data", {}).get("path")
            data = opts.data if opts.data is not None else (None if recorded == "demo" else Path(recorded))
            self.dataset, self.data_label = read_input(data, opts.fmt, opts.labels)
        self.digest = data_hash(self.dataset)
        if self.digest != m.get("data", {}).get("hash"):
            raise ZooError(f"--resume: the data changed since {self.run_dir} started; start a new run")
        self.split = read_split(self.run_dir / "split.json")
        check_split(self.split, self.dataset, self.task, self.digest, str(self.run_dir / "split.json"))
        self.protocol = self.asked_protocol(m.get("selection", {}).get("protocol") or {})
        self.device = resolve_device(self.config.device)
        m["device"] = self.device
        m["status"] = "running"
        self.make_subsets()
        self.say(f"resuming {_esc(self.run_dir)} (done: {', '.join(m.get('done', [])) or 'nothing'})")

    def _config_dump(self) -> dict:
        from zoo.config import dump_config

        return dump_config(self.config)

    def make_subsets(self) -> None:
        self.train = self.dataset.subset(self.split.train)
        self.selection_data = self.dataset.subset(self.split.selection)
        self.val = self.dataset.subset(self.split.val)
        # test is predicted and scored once, after the model is chosen; fit never sees it
        self.test = self.dataset.subset(self.split.test) if self.split.test else None
        self.meta = self.dataset.meta()

    def write_ground_truth(self) -> None:
        # The ground truth exactly as the evaluator scores it (zoo-filled polygons as RLE, a
        # COCO file's own annotations as given): pycocotools on this file and
        # predictions/coco_results.json gives metrics.json.
        from zoo.evaluation.coco import evaluation_ground_truth

        m = self.meta
        write_json(self.run_dir / "data" / "meta.json", {
            "categories": m.categories, "classes": m.classes, "keypoint_names": m.keypoint_names,
            "skeleton": [list(s) for s in m.skeleton], "oks_sigmas": m.oks_sigmas,
            "pixel_spacing": m.pixel_spacing,
        })
        write_json(self.run_dir / "data" / "val_coco.json", evaluation_ground_truth(self.val, "segm"))
        if self.test is not None:
            write_json(self.run_dir / "data" / "test_coco.json", evaluation_ground_truth(self.test, "segm"))

    def phase_done(self, phase: str, seconds: float | None = None) -> None:
        done = self.manifest.setdefault("done", [])
        if phase not in done:
            done.append(phase)
        if seconds is not None:
            self.manifest.setdefault("timings", {})[phase] = round(seconds, 3)
        write_json(self.run_dir / "manifest.json", self.manifest)

    # fit / predict / evaluate -------------------------------------------------------------------

    def save_progress(self) -> None:
        """The manifest after a checkpoint was written: its sha256, and the training time
        so far (what a resume after a crash adds its own part to)."""
        if self.fit_started is not None:
            self.manifest["timings"]["fit_parts"][-1] = round(time.perf_counter() - self.fit_started, 3)
        write_json(self.run_dir / "manifest.json", self.manifest)

    def make_context(self):
        from zoo.backend import RunContext

        if self.ledger is None and not self.world.main:
            from zoo.checksums import FollowerLedger

            self.ledger = FollowerLedger(self.run_dir)
        if self.ledger is None:
            self.ledger = checkpoint_ledger(self.run_dir, self.manifest, save=self.save_progress)
            if not self.ledger.tracked:
                log.warning("%s was written before zoo recorded checkpoint checksums; they are not verified",
                            self.run_dir)
        from zoo.training.distributed import local_device

        return RunContext(run_dir=self.run_dir.resolve(), device=local_device(self.device), log=log, resume=self.resumed,
                          trust_weights=self.opts.trust_weights, ledger=self.ledger)

    def backend_config(self):
        # The backend gets the device resolved; config.yaml keeps what the user asked ("auto").
        # Under a launcher each rank trains on its own GPU (cuda:LOCAL_RANK).
        from zoo.training.distributed import local_device

        return self.config.model_copy(update={"device": local_device(self.device)})

    def fit(self) -> None:
        from zoo.training import fetch
        from zoo.selection import Selection

        ctx = self.make_context()
        seed_everything(self.config.seed)
        if "fit" in self.manifest.get("done", []):
            ctx.ledger.verify_all("checkpoint")
            self.backend = self.cls.load(self.task, self.meta, self.backend_config(), ctx)
        elif not self.world.main:
            # train along (zoo.training.fit shares the epochs and gradients); rank 0 records
            self.backend = self.cls(self.task, self.meta, self.backend_config(), ctx)
            self.backend.fit(self.train, Selection(self.protocol, self.selection_data, self.task))
        else:
            ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            ctx.work_dir.mkdir(parents=True, exist_ok=True)
            self.backend = self.cls(self.task, self.meta, self.backend_config(), ctx)
            budget = self.config.budget
            self.say(f"training {self.spec.name} for "
                     + (f"a budget of {budget / 60:.1f} min ..." if budget else f"{self.config.epochs} epoch(s) ..."))
            # Training time is the sum of its parts: an interrupted part counts up to its
            # last checkpoint (what the resumed part continues from), then this one.
            parts = self.manifest["timings"].setdefault("fit_parts", [])
            parts.append(0.0)
            self.fit_started = t0 = time.perf_counter()
            selection = Selection(self.protocol, self.selection_data, self.task)
            fetched = fetch.mark()
            own = dict(self.backend.fit(self.train, selection) or {})
            # the published weights training started from: file, URL, sha256 (zoo.training.fetch)
            if fetch.records_since(fetched):
                self.manifest["weights"] = fetch.records_since(fetched)
            self.fit_started = None
            parts[-1] = round(time.perf_counter() - t0, 3)
            # every file the backend left in checkpoint/, whether or not it recorded it itself
            ctx.ledger.record(*sorted(p for p in ctx.checkpoint_dir.rglob("*") if p.is_file()))
            self.manifest["selection"] = selection.summary()
            if selection.active and not selection.scored:
                log.warning("%s scored nothing on the selection split: its weights are not chosen by "
                            "the protocol (%s)", self.spec.name, self.protocol.describe())
            # What a self-configuring framework chose (patch size, batch, topology): the
            # report shows it as the backend's plan, not as scores.
            plan = own.pop("plan", None)
            if plan:
                self.manifest["plan"] = plan
            # Per-epoch rows ({"epoch": n, "loss": ...}) a backend reports: for --track.
            history = own.pop("history", None)
            if history:
                self.manifest["history"] = history
            self.manifest["framework_metrics"] = {
                "note": f"{self.spec.name}'s own numbers, for the log only; ranked scores are in metrics.json",
                **own,
            }
            self.manifest["versions"].update(self.backend.versions() or {})
            self.manifest["parameters"] = self.backend.num_parameters()
            self.record_budget(sum(parts))
            self.phase_done("fit", sum(parts))

    def record_budget(self, fit_seconds: float) -> None:
        """The budget and what training took, in the manifest; an overrun is a warning (a
        backend whose framework has its own loop may not honour the budget)."""
        budget = self.config.budget
        if not budget:
            return
        self.manifest["budget"] = {"seconds": budget, "fit_seconds": round(fit_seconds, 3)}
        if fit_seconds > 1.25 * budget:
            log.warning("%s trained for %.0f s against a budget of %.0f s", self.spec.name, fit_seconds, budget)

    def predict(self) -> list:
        from zoo.progress import track

        images = strip_annotations(self.val)
        t0 = time.perf_counter()
        preds = list(track(self.backend.predict(images), "predicting", total=len(images)))
        seconds = time.perf_counter() - t0
        check_predictions(self.task, self.spec.name, images, preds, self.meta)
        t_save = time.perf_counter()
        pred_dir = self.run_dir / "predictions"
        save_predictions(pred_dir, self.task, preds, self.val)
        from zoo.pipeline.predict import write_labelme_predictions

        # For viewing in labelme: the same --conf cut as `zoo predict`; coco_results keeps all.
        write_labelme_predictions(pred_dir / "labelme", self.val, preds, conf=0.25,
                                  copy_images=False)
        self.manifest["timings"]["predict_per_image_ms"] = round(1000 * seconds / max(1, len(images)), 3)
        self.manifest["timings"]["save_predictions"] = round(time.perf_counter() - t_save, 3)
        self.phase_done("predict", seconds)
        return preds

    def predict_test(self) -> list | None:
        """The chosen model's predictions on the test split (None without one), saved under
        predictions/test/ in the same formats as val's."""
        from zoo.progress import track

        if self.test is None:
            return None
        images = strip_annotations(self.test)
        t0 = time.perf_counter()
        preds = list(track(self.backend.predict(images), "predicting test", total=len(images)))
        check_predictions(self.task, self.spec.name, images, preds, self.meta)
        save_predictions(self.run_dir / "predictions" / "test", self.task, preds, self.test)
        self.manifest["timings"]["predict_test"] = round(time.perf_counter() - t0, 3)
        return preds

    def score(self, dataset: Dataset, preds: list, plots: Path) -> dict:
        from zoo.evaluation import evaluate
        from zoo.selection import statement

        plots.mkdir(parents=True, exist_ok=True)
        metrics = evaluate(self.task, dataset, preds, plots_dir=plots)
        metrics.setdefault("conventions", {})["model selection"] = statement(self.manifest.get("selection"))
        if isinstance(metrics.get("plots"), list):  # relative: a run folder may be moved or shared
            metrics["plots"] = [_relative(p, self.run_dir) for p in metrics["plots"]]
        return metrics

    def evaluate(self, preds: list, test_preds: list | None = None) -> dict:
        """val scores; with test predictions, the same evaluator on test under ``"test"``."""
        t0 = time.perf_counter()
        metrics = self.score(self.val, preds, self.run_dir / "plots")
        if test_preds is not None:
            metrics["test"] = self.score(self.test, test_preds, self.run_dir / "plots" / "test")
        write_json(self.run_dir / "metrics.json", metrics)
        self.phase_done("evaluate", time.perf_counter() - t0)
        return metrics

    def report(self, metrics: dict, preds: list) -> None:
        from zoo.pipeline.report import write_report

        t0 = time.perf_counter()
        self.manifest["status"] = "finished"
        self.manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.manifest["timings"]["report"] = 0.0
        self.write_html(metrics, preds)  # first: report.md lists plots/samples.png
        write_report(self.run_dir, manifest=self.manifest, metrics=metrics, split=self.split,
                     dataset=self.dataset, config=self._config_dump(), task=self.task)
        self.manifest["timings"]["report"] = round(time.perf_counter() - t0, 3)
        self.phase_done("report")

    def write_html(self, metrics: dict, preds: list) -> None:
        """plots/samples.png (the hardest val images, overlays) and report.html; a drawing
        that fails costs the pictures, never the run."""
        from zoo.pipeline.failures import failures_figure
        from zoo.pipeline.report_html import write_run_html

        try:
            failures = failures_figure(self.task, self.val, {self.spec.name: {p.image_id: p for p in preds}},
                                       path=self.run_dir / "plots" / "samples.png")
        except Exception as e:  # noqa: BLE001 - a picture must not cost the scores
            log.warning("plots/samples.png failed: %s", e, exc_info=True)
            failures = (None, [])
        write_run_html(self.run_dir, manifest=self.manifest, metrics=metrics, failures=failures)

    def start_tracking(self) -> None:
        from zoo.pipeline.tracking import flat_params, open_tracker

        self.tracker = open_tracker(self.opts.track, Path(self.opts.out))
        m = self.manifest
        self.tracker.start(self.run_dir, self.run_dir.name, params=flat_params(self._config_dump()),
                           tags={"backend": self.spec.name, "task": self.task.name,
                                 "data_hash": m["data"]["hash"], "split": m["split"]["key"],
                                 **{f"split.{k}": m["split"].get(k) for k in ("train", "selection", "val", "test")},
                                 **({"fold": self.opts.fold} if self.opts.fold is not None else {}),
                                 "seed": self.config.seed},
                           parent=self.opts.track_parent)

    def track_results(self, metrics: dict) -> None:
        from zoo.pipeline.tracking import history_metrics, score_metrics

        self.tracker.history(history_metrics(self.manifest))
        self.tracker.final(score_metrics(metrics))
        self.tracker.artifacts([self.run_dir / n for n in ("report.md", "report.html", "metrics.json",
                                                           "config.yaml", "split.json", "plots")])

    def fail(self, err: BaseException) -> None:
        if not self.world.main:
            return
        if not self.manifest or not getattr(self, "run_dir", None) or not self.run_dir.is_dir():
            return
        self.manifest["status"] = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        self.manifest["error"] = f"{type(err).__name__}: {err}"
        try:
            write_json(self.run_dir / "manifest.json", self.manifest)
        except (OSError, ZooError):  # a full disk: the error that got us here says so
            pass


def check_pixels(dataset, label: str) -> None:
    """Training and predicting need every image's pixels (a COCO file's ground truth is
    scored without them, ``zoo eval``)."""
    missing = [r.id for r in dataset.images if not r.has_pixels]
    if missing:
        raise ZooError(f"{label}: {len(missing)} image(s) have no image file (e.g. '{missing[0]}'): "
                       "training needs the pixels; `zoo eval` scores predictions without them")


def _finished_result(run_dir: Path, backend: str, task: str) -> RunResult:
    from zoo.atomic import read_json

    return RunResult(run_dir, backend, task, read_json(run_dir / "metrics.json"),
                     read_manifest(run_dir) or {}, resumed=True)


def execute(opts: RunOptions) -> RunResult:
    """Run the whole pipeline; returns where it went and what it scored."""
    from zoo.training import distributed

    run = _Run(opts)
    run.cls = None
    run.tracker = None
    try:
        distributed.join()
        run.prepare()
        if run.resumed and is_finished(run.run_dir):
            run.say(f"{run.run_dir} already finished; nothing to resume")
            return _finished_result(run.run_dir, run.spec.name, run.task.name)
        if not run.world.main:
            run.fit()  # trains along; prediction and scores are rank 0's, once
            return RunResult(run.run_dir, run.spec.name, run.task.name, {}, run.manifest, run.resumed)
        with _log_to(run.run_dir / "log.txt"):
            run.start_tracking()
            run.fit()
            preds = run.predict()
            metrics = run.evaluate(preds, run.predict_test())
            if opts.rank:
                run.rank_unlabelled()
            run.report(metrics, preds)
            run.track_results(metrics)
            run.tracker.end(ok=True)
    except BaseException as e:
        if getattr(run, "tracker", None) is not None:
            run.tracker.end(ok=False)
        run.fail(e)
        if run.manifest and getattr(run, "run_dir", None) is not None and run.run_dir.is_dir() and not opts.quiet:
            run.console.print(
                f"[yellow]run folder kept: {_esc(run.run_dir)}[/] (done: {', '.join(run.manifest.get('done', [])) or 'nothing'}); "
                f"continue it with: zoo run --task {run.task.name} --backend {run.spec.name} "
                f"--out {_esc(opts.out)} --name {_esc(run.run_dir.name)} --resume", markup=True, highlight=False)
        raise
    finally:
        run.release()
        distributed.leave()
    return RunResult(run.run_dir, run.spec.name, run.task.name, metrics, run.manifest, run.resumed, run.ranked)


def run_and_report(opts: RunOptions) -> RunResult:
    """``zoo run``: execute, then print the summary table."""
    from zoo.training.distributed import world

    result = execute(opts)
    if not opts.quiet and world().main:  # under a launcher, one summary: rank 0's
        from rich.console import Console

        from zoo.pipeline.report import summary_table

        Console().print(summary_table(result))
        if result.ranked:
            from zoo.pipeline.ranking import ranking_table

            Console().print(ranking_table(result.ranked, opts.top))
        _console().print(f"report: {_esc(result.run_dir / 'report.md')}")
    return result
