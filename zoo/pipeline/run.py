"""``zoo run``: annotation folder (or the demo data) -> split -> train -> predict -> shared scores.

The pipeline, backend-agnostic (a backend only ever sees canonical data)::

    prepare   read the folder, report its problems, task.check, split (split.json; the
              selection split carved from train when the protocol scores, zoo.selection),
              resolve the config (config.yaml), ground truth scored (data/val_coco.json)
              -> a Prepared run (zoo.pipeline.prepare)
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
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.atomic import write_text
from zoo.backend import RunContext
from zoo.checksums import FollowerLedger
from zoo.config import dump_config
from zoo.dataset import Dataset, strip_annotations
from zoo.evaluation import evaluate
from zoo.pipeline.failures import failures_figure, nothing_wrong
from zoo.pipeline.options import RunOptions
from zoo.pipeline.predict import prediction_writers, write_prediction_files
from zoo.pipeline.prepare import Prepared, Preparer, Setup
from zoo.pipeline.ranking import rank_unlabelled_of_run
from zoo.pipeline.report import write_report
from zoo.pipeline.report_html import write_run_html
from zoo.pipeline.runfolder import Manifest
from zoo.pipeline.tracking import flat_params, history_metrics, open_tracker, score_metrics
from zoo.predictions import check_predictions
from zoo.selection import Selection, statement
from zoo.training import cache, cpu, distributed, fetch
from zoo.training.budget import describe_budget
from zoo.training.distributed import local_device
from zoo.training.seeding import seed_everything

log = logging.getLogger("zoo")


@dataclass
class RunResult:
    run_dir: Path
    backend: str
    task: str
    metrics: dict[str, Any]
    manifest: Manifest
    resumed: bool = False
    ranked: list | None = None  # --rank: zoo.pipeline.ranking.Ranked, most useful first


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


# -- fit ---------------------------------------------------------------------------------------------


class _Fit:
    """The fit phase of a prepared run: the backend built (or restored when an earlier part
    of the run finished fit), trained, and what training took and chose recorded."""

    def __init__(self, setup: Setup, prepared: Prepared):
        self.setup, self.run = setup, prepared
        self.manifest = prepared.manifest
        self.ledger = self._ledger()  # the checkpoints' sha256 (zoo.checksums)
        self.started: float | None = None  # perf_counter at the start of this fit part

    def _ledger(self):
        if not self.setup.world.main:
            return FollowerLedger(self.run.folder.path)
        return self.run.folder.ledger(self.manifest, save=self.save_progress)

    def save_progress(self) -> None:
        """The manifest after a checkpoint was written: its sha256, and the training time
        so far (what a resume after a crash adds its own part to)."""
        if self.started is not None:
            self.manifest.timings.fit_parts[-1] = round(time.perf_counter() - self.started, 3)
        self.run.save()

    def context(self):
        return RunContext(run_dir=self.run.folder.path.resolve(), device=local_device(self.run.device), log=log,
                          resume=self.run.resumed, trust_weights=self.setup.opts.training.trust_weights, ledger=self.ledger)

    def backend_config(self):
        # The backend gets the device resolved; config.yaml keeps what the user asked ("auto").
        # Under a launcher each rank trains on its own GPU (cuda:LOCAL_RANK).
        return self.run.config.model_copy(update={"device": local_device(self.run.device)})

    def __call__(self):
        """The trained backend."""
        setup, run = self.setup, self.run
        ctx = self.context()
        seed_everything(run.config.seed)
        if self.manifest.trained:
            ctx.ledger.verify_all("checkpoint")
            return setup.cls.load(setup.task, run.data.meta, self.backend_config(), ctx)
        backend = setup.cls(setup.task, run.data.meta, self.backend_config(), ctx)
        selection = Selection(run.protocol, run.data.selection, setup.task)
        if not setup.world.main:
            # train along (zoo.training.fit shares the epochs and gradients); rank 0 records
            backend.fit(run.data.train, selection)
            return backend
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        budget = run.config.budget
        setup.reporter.say(f"training {setup.spec.name} for "
                           + (f"a budget of {budget / 60:.1f} min ..." if budget else f"{run.config.epochs} epoch(s) ..."))
        own = self._timed_fit(backend, selection)
        # every file the backend left in checkpoint/, whether or not it recorded it itself
        ctx.ledger.record(*sorted(p for p in ctx.checkpoint_dir.rglob("*") if p.is_file()))
        self._record(backend, selection, own)
        fit_seconds = sum(self.manifest.timings.fit_parts)
        self._record_budget(fit_seconds)
        run.phase_done("fit", fit_seconds)
        return backend

    def _timed_fit(self, backend, selection) -> dict:
        """``backend.fit``, its time a new part of ``timings.fit_parts``: training time is the
        sum of its parts, an interrupted part counting up to its last checkpoint (what the
        resumed part continues from); the published weights it fetched, recorded."""
        timings = self.manifest.timings
        if timings.fit_parts is None:
            timings.fit_parts = []
        timings.fit_parts.append(0.0)
        self.started = t0 = time.perf_counter()
        fetched, computed, cached = fetch.mark(), cpu.mark(), cache.mark()
        own = dict(backend.fit(self.run.data.train, selection) or {})
        if cpu.records_since(computed):  # the shared loop's precision, layout and threads
            self.manifest.compute = cpu.records_since(computed)[-1]
        if cache.records_since(cached):  # the pixels decoded once: how many, how big, where
            self.manifest.compute = {**(self.manifest.compute or {}), "pixels": cache.records_since(cached)[-1]}
        # the published weights training started from: file, URL, sha256 (zoo.training.fetch)
        if fetch.records_since(fetched):
            self.manifest.weights = fetch.records_since(fetched)
        self.started = None
        timings.fit_parts[-1] = round(time.perf_counter() - t0, 3)
        return own

    def _record(self, backend, selection, own: dict) -> None:
        """What training chose and reported, in the manifest."""
        m, name = self.manifest, self.setup.spec.name
        m.selection = selection.summary()
        if selection.active and not selection.scored:
            log.warning("%s scored nothing on the selection split: its weights are not chosen by "
                        "the protocol (%s)", name, self.run.protocol.describe())
        # What a self-configuring framework chose (patch size, batch, topology): the report
        # shows it as the backend's plan, not as scores.
        m.plan = own.pop("plan", None) or m.plan
        # Per-epoch rows ({"epoch": n, "loss": ...}) a backend reports: for --track.
        m.history = own.pop("history", None) or m.history
        m.framework_metrics = {"note": f"{name}'s own numbers, for the log only; ranked scores are in metrics.json",
                               **own}
        m.versions.update(backend.versions() or {})
        m.parameters = backend.num_parameters()

    def _record_budget(self, fit_seconds: float) -> None:
        """The budget and what training took, in the manifest; an overrun is a warning (a
        backend whose framework has its own loop may not honour the budget)."""
        budget = self.run.config.budget
        if not budget:
            return
        did = (self.manifest.framework_metrics or {}).get("budget") or {}  # what the backend's loop did
        self.manifest.budget = {"seconds": budget, "fit_seconds": round(fit_seconds, 3), **did}
        self.setup.reporter.say(f"{self.setup.spec.name}: {describe_budget(self.manifest.budget)}")
        if did.get("epochs") is not None and did["epochs"] != self.run.config.epochs:
            self._config_after_budget(did["epochs"])
        if fit_seconds > 1.1 * budget:
            log.warning("%s trained for %.0f s against a budget of %.0f s", self.setup.spec.name, fit_seconds, budget)

    def _config_after_budget(self, ran: int) -> None:
        """config.yaml says the epochs that ran, the asked number beside them (a comment, so
        that the file still reads as a config)."""
        import re

        import yaml

        folder, asked = self.run.folder, self.run.config.epochs
        config = {**folder.read_config(), "epochs": ran}
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        note = f"  # asked: {asked}; --budget {self.run.config.budget:g} s ended training after {ran}"
        write_text(folder.config_file, re.sub(r"(?m)^epochs: .*$", lambda m: m.group(0) + note, text, count=1))


# -- predict, evaluate, report ---------------------------------------------------------------------


class _Run:
    """A prepared run while it trains, predicts, scores and reports (the phases read like the
    module doc)."""

    def __init__(self, setup: Setup, prepared: Prepared):
        self.setup, self.output, self.reporter = setup, setup.opts.output, setup.reporter
        self.task, self.spec = setup.task, setup.spec
        self.prepared, self.folder, self.manifest = prepared, prepared.folder, prepared.manifest
        self.data = prepared.data
        self.fit = _Fit(setup, prepared)
        self.tracker = open_tracker(self.output.track, Path(self.output.out), self.reporter)
        self.ranked: list | None = None

    def run(self) -> RunResult:
        """Fit (rank 0 and the ranks training along), then rank 0 alone predicts, scores and
        reports, with the ``zoo`` logger mirrored into log.txt."""
        self.manifest.status = "running"  # a resumed run's manifest says how it stopped
        if not self.setup.world.main:
            self.fit()  # trains along; prediction and scores are rank 0's, once
            return self._result({})
        with _log_to(self.folder.log_file):
            self.start_tracking()
            try:
                backend = self.fit()
                preds = self.predict(backend)
                metrics = self.evaluate(preds, self.predict_test(backend))
                if self.output.rank:
                    self.rank_unlabelled(backend)
                self.report(metrics, preds)
                self.track_results(metrics)
            except BaseException:
                self.tracker.end(ok=False)
                raise
            self.tracker.end(ok=True)
        return self._result(metrics)

    def _result(self, metrics: dict) -> RunResult:
        return RunResult(self.folder.path, self.spec.name, self.task.name, metrics, self.manifest,
                         self.prepared.resumed, self.ranked)

    def _predictions(self, backend, dataset: Dataset, description: str) -> list:
        """The backend's predictions on ``dataset``'s images (annotations removed), checked."""
        images = strip_annotations(dataset)
        preds = list(self.reporter.track(backend.predict(images), description, total=len(images)))
        check_predictions(self.task, self.spec.name, images, preds, self.data.meta)
        return preds

    def predict(self, backend) -> list:
        val, t = self.data.val, self.manifest.timings
        t0 = time.perf_counter()
        preds = self._predictions(backend, val, "predicting")
        seconds = time.perf_counter() - t0
        t_save = time.perf_counter()
        self.folder.save_predictions(self.task, preds, val)
        # To view and correct (labelme): the same --conf cut as `zoo predict`; coco_results keeps all.
        for writer in prediction_writers(self.setup.registry):
            write_prediction_files(self.folder.prediction_files_of(writer.name), val, preds, conf=0.25,
                                   copy_images=False, writer=writer)
        t.predict_per_image_ms = round(1000 * seconds / max(1, len(val)), 3)
        t.save_predictions = round(time.perf_counter() - t_save, 3)
        self.prepared.phase_done("predict", seconds)
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

    def score(self, dataset: Dataset, preds: list, plots: Path, truth=None) -> dict:
        plots.mkdir(parents=True, exist_ok=True)
        metrics = evaluate(self.task, dataset, preds, plots_dir=plots, ground_truth=truth)
        metrics.setdefault("conventions", {})["model selection"] = statement(self.manifest.selection)
        if isinstance(metrics.get("plots"), list):  # relative: a run folder may be moved or shared
            metrics["plots"] = [self.folder.relative(p) for p in metrics["plots"]]
        return metrics

    def evaluate(self, preds: list, test_preds: list | None = None) -> dict:
        """val scores; with test predictions, the same evaluator on test under ``"test"``."""
        t0 = time.perf_counter()
        metrics = self.score(self.data.val, preds, self.folder.plots_of("val"), self.data.val_truth)
        if test_preds is not None:
            metrics["test"] = self.score(self.data.test, test_preds, self.folder.plots_of("test"), self.data.test_truth)
        self.folder.write_metrics(metrics)
        self.prepared.phase_done("evaluate", time.perf_counter() - t0)
        return metrics

    def rank_unlabelled(self, backend) -> None:
        unlabelled = self.manifest.data.unlabelled
        if unlabelled:
            self.reporter.say(f"ranking {len(unlabelled)} unlabelled image(s) ...")
            self.ranked = rank_unlabelled_of_run(self.folder.path, backend, self.task, self.data.meta, self.spec.name,
                                                 self.data.dataset.root, unlabelled, top=self.output.top)

    def report(self, metrics: dict, preds: list) -> None:
        t0 = time.perf_counter()
        m = self.manifest
        m.status, m.finished, m.timings.report = "finished", time.strftime("%Y-%m-%dT%H:%M:%S%z"), 0.0
        self.write_html(metrics, preds)  # first: report.md lists plots/samples.png
        write_report(self.folder, manifest=m, metrics=metrics, split=self.data.split,
                     dataset=self.data.dataset, config=dump_config(self.prepared.config), task=self.task)
        m.timings.report = round(time.perf_counter() - t0, 3)
        self.prepared.phase_done("report")

    def write_html(self, metrics: dict, preds: list) -> None:
        """plots/samples.png (the hardest val images, overlays) and report.html; a drawing
        that fails costs the pictures, never the run."""
        try:
            failures = failures_figure(self.task, self.data.val, {self.spec.name: {p.image_id: p for p in preds}},
                                       path=self.folder.samples_file)
            why_not = None if failures[0] is not None else nothing_wrong(self.task, len(self.data.val.images))
        except Exception as e:  # noqa: BLE001 - a picture must not cost the scores
            log.warning("plots/samples.png failed: %s", e, exc_info=True)
            failures = (None, [])
            why_not = f"No samples.png: drawing it failed ({type(e).__name__}: {e}); log.txt has the traceback."
        note = self.folder.samples_file.with_suffix(".txt")
        if why_not:  # the folder says why the picture the README promises is not there
            write_text(note, why_not + "\n")
        else:
            note.unlink(missing_ok=True)
        write_run_html(self.folder, manifest=self.manifest, metrics=metrics, failures=failures)

    def start_tracking(self) -> None:
        m, path = self.manifest, self.folder.path
        self.tracker.start(path, path.name, params=flat_params(dump_config(self.prepared.config)),
                           tags={"backend": self.spec.name, "task": self.task.name,
                                 "data_hash": m.data.hash, "split": m.split.key,
                                 **{f"split.{k}": getattr(m.split, k) for k in ("train", "selection", "val", "test")},
                                 **({"fold": fold} if (fold := self.setup.opts.split.fold) is not None else {}),
                                 "seed": self.prepared.config.seed},
                           parent=self.output.track_parent)

    def track_results(self, metrics: dict) -> None:
        f = self.folder
        self.tracker.history(history_metrics(self.manifest))
        self.tracker.final(score_metrics(metrics, self.task.metrics_schema))
        self.tracker.artifacts([f.report_file, f.html_file, f.metrics_file, f.config_file, f.split_file, f.plots_dir])


# -- the whole pipeline ----------------------------------------------------------------------------


def execute(opts: RunOptions) -> RunResult:
    """Run the whole pipeline; returns where it went and what it scored."""
    setup = Setup.of(opts)
    preparer = Preparer(setup)
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
