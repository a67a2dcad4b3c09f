"""The metrics schema: what an evaluator's metrics dict holds and how it is shown, declared by
the evaluator instead of read off the dict's key order.

An evaluator family registers, per task, an :class:`EvaluatorSpec` (its factory, its options
and its :class:`MetricsSchema`) through the ``zoo_evaluators`` hook (:mod:`zoo.hookspecs`);
zoo's own are in :mod:`zoo.evaluation.plugin`. Everything that shows scores -- report.md,
report.html, the leaderboard, the CLI tables, experiment tracking -- asks the task's schema
(:attr:`zoo.tasks.Task.metrics_schema`) which keys are the headline, which is the main
metric, which per-class value stands for it, which carry an interval, and how each is
written. A new metric is one line in its evaluator's schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError


@dataclass(frozen=True)
class Metric:
    """One top-level score of a metrics dict."""

    key: str
    #: False for a distance or an error (HD95, ASSD): smaller is better
    higher_is_better: bool = True
    #: None: a fraction in [0, 1]; else what the number counts ("pixels or mm")
    unit: str | None = None
    #: decimals shown in reports and tables
    digits: int = 3


@dataclass(frozen=True)
class MetricsSchema:
    """The shape of one task's metrics dict (metrics.json).

    ``scores``: every top-level score, in the order tables list them. ``headline``: the ones a
    reader compares first (leaderboard and summary columns), the main metric first. ``per_class``:
    the per-class values ``zoo eval`` shows; ``per_class_main`` (default: the first of them) stands
    for the main metric per class (the leaderboard's per-class columns; classify's F1, as accuracy
    has no per-class form). ``per_class_count``: the count shown beside them.
    ``intervals``: the scores that get a bootstrap interval (``ci95``) -- exactly the keys of
    the evaluator's ``resampled(weights)``.
    """

    scores: tuple[Metric, ...]
    headline: tuple[str, ...]
    per_class: tuple[str, ...]
    per_class_count: str
    intervals: tuple[str, ...] = ()
    per_class_main: str = ""

    def __post_init__(self) -> None:
        if not self.per_class_main and self.per_class:
            object.__setattr__(self, "per_class_main", self.per_class[0])
        keys = [m.key for m in self.scores]
        unknown = [k for k in (*self.headline, *self.intervals) if k not in keys]
        if (not self.headline or self.per_class_main not in self.per_class or unknown
                or len(set(keys)) != len(keys)):
            raise ValueError(f"inconsistent metrics schema: headline {self.headline}, intervals {self.intervals}, "
                             f"per_class {self.per_class}, scores {keys}")
        if not self.metric(self.main).higher_is_better:
            # runs are ranked, weights selected and backends weighed by the main metric's largest value
            raise ValueError(f"the main metric {self.main} must be higher-is-better")
        if self.intervals and self.main not in self.intervals:
            # the paired verdict (zoo.pipeline.verdict) resamples the main metric
            raise ValueError(f"the main metric {self.main} must be among the intervals {self.intervals}")

    @property
    def main(self) -> str:
        """The metric runs are ranked by (metrics.json's ``main``)."""
        return self.headline[0]

    def metric(self, key: str) -> Metric:
        for m in self.scores:
            if m.key == key:
                return m
        raise KeyError(key)

    def scores_of(self, metrics: dict[str, Any]) -> dict[str, float | None]:
        """Every declared score ``metrics`` holds, in the schema's order."""
        return {m.key: metrics[m.key] for m in self.scores if m.key in metrics}

    def headline_of(self, metrics: dict[str, Any], n: int = 4) -> dict[str, float | None]:
        """The first ``n`` headline scores ``metrics`` holds, the main metric first."""
        return {k: metrics[k] for k in [k for k in self.headline if k in metrics][:n]}

    def per_class_scores(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """``{class: value}`` of :attr:`per_class_main` for every class of ``metrics``."""
        rows = metrics.get("per_class") or {}
        return {name: row.get(self.per_class_main) for name, row in rows.items() if isinstance(row, dict)}

    def per_class_columns(self, metrics: dict[str, Any]) -> list[str]:
        """Every per-class value the rows hold (first seen first), :attr:`per_class_main` first."""
        cols: list[str] = []
        for row in (metrics.get("per_class") or {}).values():
            cols += [k for k in (row if isinstance(row, dict) else {}) if k not in cols]
        return sorted(cols, key=lambda k: k != self.per_class_main)  # stable: the evaluator's order otherwise

    def problems(self, metrics: dict[str, Any]) -> list[str]:
        """How an evaluator's ``metrics`` differ from this schema (empty when they match): the
        main metric, a declared score missing, a top-level number not declared (it would never
        be shown), interval keys other than :attr:`intervals`."""
        declared = {m.key for m in self.scores}
        found = []
        if metrics.get("main") != self.main:
            found.append(f"main is {metrics.get('main')!r}, the schema's {self.main!r}")
        found += [f"declared score {k!r} missing" for k in sorted(declared - set(metrics))]
        found += [f"score {k!r} not declared" for k, v in metrics.items()
                  if isinstance(v, float) and k not in declared]
        if "ci95" in metrics and set(metrics["ci95"] or {}) != set(self.intervals):
            found.append(f"intervals of {sorted(metrics['ci95'] or {})}, declared {sorted(self.intervals)}")
        return found

    def fmt(self, metrics: dict[str, Any], key: str) -> str:
        """``key``'s value, with its bootstrap interval when it has one: ``0.757 (0.70–0.81)``;
        a mean over several runs (zoo.data.folds) with its standard deviation: ``0.757 ± 0.021``."""
        return fmt_ci(metrics, key, self.metric(key).digits)


def fmt(v: Any, digits: int = 3) -> str:
    """A score as reports and tables write it (``–`` where it is undefined)."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def fmt_ci(metrics: dict[str, Any], key: str, digits: int = 3) -> str:
    """``metrics[key]`` with its ``ci95`` interval, or ``± std`` for a mean over runs."""
    v = metrics.get(key)
    std = (metrics.get("std") or {}).get(key)
    if v is not None and std is not None:
        return f"{fmt(v, digits)} ± {fmt(std, digits)}"
    ci = (metrics.get("ci95") or {}).get(key)
    if v is None or not ci:
        return fmt(v, digits)
    return f"{fmt(v, digits)} ({ci[0]:.2f}–{ci[1]:.2f})"


@dataclass(frozen=True)
class EvaluatorSpec:
    """One task's evaluator, as the ``zoo_evaluators`` hook returns it.

    ``factory(meta, task=task, **options)`` builds a :class:`zoo.evaluation.base.Evaluator`;
    its ``evaluate()`` returns a dict shaped as ``schema`` says, with ``main`` = ``schema.main``.
    """

    #: the task it scores (zoo.tasks.TASKS); one evaluator per task across all plugins
    name: str
    factory: Callable[..., Any]
    schema: MetricsSchema
    options: dict[str, Any] = field(default_factory=dict)
    #: the plugin that provided it (set by the registry)
    plugin: str = ""


def no_evaluator(task: str) -> ZooError:
    """The error for a task no installed plugin scores."""
    return ZooError(f"no evaluator is registered for task '{task}': zoo's own come from the entry point "
                    "'evaluation' of the 'zoo' group (zoo.evaluation.plugin); an install made before it existed "
                    "lacks it: reinstall zoo (pip install -e .)")
