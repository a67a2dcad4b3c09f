"""Experiment tracking: ``--track mlflow`` and ``--track tensorboard`` on run and compare.

The pipeline calls a :class:`Tracker` at its phase boundaries (zoo.pipeline.run, zoo.pipeline.compare):
``start`` once the run folder exists, ``history`` after fit, ``final`` after evaluate,
``artifacts`` after the report, ``end``. Each tracker imports its library only when asked
for (extras ``zoo[mlflow]``, ``zoo[tensorboard]``).

- **mlflow**: to ``MLFLOW_TRACKING_URI`` when set, else a store inside the output folder
  (``<out>/mlruns/mlflow.db``), experiment ``zoo``. zoo creates that experiment with its
  artifacts in ``<out>/mlruns/artifacts`` (mlflow's default would be ``./mlruns`` of the
  current folder, outside the output folder) and says where they go; an existing ``zoo``
  experiment keeps the location it was created with, which zoo says too. Params: the
  resolved config; tags: data hash, split, backend, task; metrics: per-epoch ``history``
  when the backend reports one (``fit`` returning ``"history": [{"epoch": n, "loss": ...}]``)
  and the selection scores, then every score of metrics.json with its ``_ci95_low`` /
  ``_ci95_high``, test's as ``test/<key>``, per class as ``<class>/<key>``; artifacts: the
  report, plots, metrics, config and split. A compare is a parent run with one child per
  backend × fold × seed.
- **tensorboard**: event files in the run folder (``<run>/tensorboard``), the same scalars,
  read by ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import MissingDependency, ZooError

if TYPE_CHECKING:
    from zoo.metrics import MetricsSchema
    from zoo.pipeline.runfolder import Manifest

KINDS = ("mlflow", "tensorboard")
EXPERIMENT = "zoo"


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def metric_name(key: str) -> str:
    """A metric name both trackers accept (mlflow: letters, digits, _ - . / and spaces)."""
    return re.sub(r"[^\w\-./ ]", "_", key)


def score_metrics(metrics: dict, schema: MetricsSchema) -> dict[str, float]:
    """metrics.json as flat scalars: the schema's scores, their intervals, test's, per class."""
    out: dict[str, float] = {}
    for k, v in schema.scores_of(metrics).items():
        if v is not None:
            out[metric_name(k)] = float(v)
        ci = (metrics.get("ci95") or {}).get(k)
        if ci:
            out[metric_name(f"{k}_ci95_low")], out[metric_name(f"{k}_ci95_high")] = float(ci[0]), float(ci[1])
    for k, v in schema.scores_of(metrics.get("test") or {}).items():
        if v is not None:
            out[metric_name(f"test/{k}")] = float(v)
    for cls, row in (metrics.get("per_class") or {}).items():
        for k, v in (row.items() if isinstance(row, dict) else []):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[metric_name(f"{cls}/{k}")] = float(v)
    return out


def history_metrics(manifest: Manifest) -> list[tuple[int, dict[str, float]]]:
    """Per-epoch scalars: the backend's ``history`` and the selection split's scores."""
    rows: dict[int, dict[str, float]] = {}
    for i, row in enumerate(manifest.history or [], 1):
        step = int(row.get("epoch", i))
        rows.setdefault(step, {}).update({metric_name(f"train/{k}"): float(v) for k, v in row.items()
                                          if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)})
    for s in manifest.selection.get("scores") or []:
        rows.setdefault(int(s["epoch"]), {})["selection/score"] = float(s["score"])
    return sorted(rows.items())


class Tracker:
    """No tracking (the default); the interface the pipeline calls."""

    run_id: str | None = None

    def start(self, folder: Path, name: str, *, params: dict, tags: dict, parent: str | None = None) -> None:
        pass

    def history(self, steps: list[tuple[int, dict[str, float]]]) -> None:
        pass

    def final(self, values: dict[str, float]) -> None:
        pass

    def artifacts(self, paths: list[Path]) -> None:
        pass

    def end(self, ok: bool) -> None:
        pass


class MlflowTracker(Tracker):
    def __init__(self, out: Path, reporter=None):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as e:
            raise MissingDependency("--track mlflow needs mlflow: pip install 'zoo[mlflow]'") from e
        store = Path(out).resolve() / "mlruns"
        self.uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not self.uri:  # a sqlite store inside the output folder
            store.mkdir(parents=True, exist_ok=True)
            self.uri = f"sqlite:///{store / 'mlflow.db'}"
        self.artifacts_at = (store / "artifacts").as_uri()  # never mlflow's default, ./mlruns of the current folder
        self.client = MlflowClient(self.uri)
        self.reporter = reporter
        self._experiment: str | None = None

    def experiment_id(self) -> str:
        if self._experiment is None:
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                self._experiment = self.client.create_experiment(EXPERIMENT, artifact_location=self.artifacts_at)
                where = self.artifacts_at
            else:
                self._experiment, where = exp.experiment_id, exp.artifact_location
            if self.reporter is not None:
                self.reporter.say(f"mlflow: experiment '{EXPERIMENT}' at {self.uri}, its artifacts in {where}")
        return self._experiment

    def start(self, folder, name, *, params, tags, parent=None):
        from mlflow.entities import Param, RunTag

        run_tags = {k: str(v) for k, v in tags.items()} | {"zoo.folder": str(folder)}
        if parent:
            run_tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id(), run_name=name, tags=run_tags)
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in params.items()],
                              tags=[RunTag(k, v) for k, v in run_tags.items()])

    def _log(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):  # mlflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def history(self, steps):
        for step, values in steps:
            self._log(values, step)

    def final(self, values):
        self._log(values, 0)

    def artifacts(self, paths):
        for p in paths:
            if p.is_dir():
                self.client.log_artifacts(self.run_id, str(p), p.name)
            elif p.is_file():
                self.client.log_artifact(self.run_id, str(p))

    def end(self, ok):
        if self.run_id:
            self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


class TensorBoardTracker(Tracker):
    """Scalar summaries (``simple_value``, what every TensorBoard reads) through
    tensorboard's own event-file writer."""

    def __init__(self, out: Path):
        try:
            import tensorboard.summary.writer.event_file_writer  # noqa: F401
        except ImportError as e:
            raise MissingDependency("--track tensorboard needs tensorboard: pip install 'zoo[tensorboard]'") from e
        self.writer = None

    def start(self, folder, name, *, params, tags, parent=None):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.writer = EventFileWriter(str(Path(folder) / "tensorboard"))

    def _scalars(self, values: dict[str, float], step: int) -> None:
        import time

        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()])
        self.writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def history(self, steps):
        for step, values in steps:
            self._scalars(values, step)

    def final(self, values):
        self._scalars({f"final/{k}": v for k, v in values.items()}, 0)

    def end(self, ok):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def open_tracker(kind: str | None, out: Path, reporter=None) -> Tracker:
    """The tracker ``--track kind`` asks for (``out``: the output folder); a no-op without.
    ``reporter``: where mlflow's store and artifact location are said."""
    if not kind:
        return Tracker()
    if kind not in KINDS:
        raise ZooError(f"--track {kind}: unknown tracker (choose from {', '.join(KINDS)})")
    return MlflowTracker(out, reporter) if kind == "mlflow" else TensorBoardTracker(out)
