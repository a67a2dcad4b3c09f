"""The pictures of ``zoo compare``: ``scores.png`` (the headline scores of every backend),
``pr_curves.png`` (every backend's precision-recall curve, tasks scored the COCO way) and
``samples.png`` (a few val images: ground truth and each backend's answer side by side).
What a task draws is the Task's (:mod:`zoo.pipeline.drawing`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo.atomic import read_json
from zoo.errors import ZooError
from zoo.evaluation.coco import GroundTruth, oks_sigmas, run_cocoeval
from zoo.metrics import MetricsSchema
from zoo.pipeline.drawing import draw_answer, legend_of_categories, pyplot
from zoo.pipeline.runfolder import RunFolder, load_predictions
from zoo.progress import Reporter
from zoo.tasks import Task

log = logging.getLogger("zoo")


def write_plots(board, reporter: Reporter) -> None:
    """The compare's plots from its scored rows (zoo.pipeline.leaderboard.Board); a plot that
    fails is a warning, never the end of the leaderboard."""
    s = board.plan.settings
    ok = [r for r in board.rows if r.ok and r.metrics]
    for name in ("scores.png", "pr_curves.png", "samples.png"):
        (s.folder / name).unlink(missing_ok=True)
    if not ok:
        return
    truth = board.truths[0]
    plots = [(bar_chart, (ok, s.folder / "scores.png", f"{s.task.title} · {s.name}", s.task.metrics_schema))]
    if s.task.pr_curve_overlap is not None:
        plots.append((pr_overlay, (ok, s.task, truth.dataset, s.folder / "pr_curves.png", truth)))
    plots.append((samples_grid, (ok, s.task, truth.dataset, s.folder / "samples.png", s.opts.samples)))
    for fn, args in plots:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a plot must not cost the leaderboard
            log.warning("%s failed: %s", fn.__name__, e, exc_info=True)
            reporter.warn(f"{fn.__name__} failed: {e}")


def charted(schema: MetricsSchema, metrics: dict) -> list[str]:
    """The scores ``scores.png`` shows: the first three headline fractions (a distance, such as
    HD95 in pixels, has no place on its 0-1 axis)."""
    fractions = [k for k in schema.headline_of(metrics, n=len(schema.headline)) if schema.metric(k).unit is None]
    return fractions[:3]


def bar_chart(rows: list, path: Path, title: str, schema: MetricsSchema) -> Path:
    """The headline metrics of every backend, grouped bars."""
    import numpy as np

    plt = pyplot()
    metrics = charted(schema, rows[0].metrics)
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


def pr_curve_points(run_dir: Path, task: Task, val, truth=None):
    """(recall, precision) at IoU 0.50, averaged over categories with ground truth, for a run:
    the shared evaluator's ground truth and COCOeval, on the run's saved results. ``truth``:
    ``val``'s :class:`zoo.evaluation.coco.GroundTruth` (a compare converts it once for all its
    backends), else converted here."""
    import numpy as np

    iou_type = task.evaluator_spec.options["iou_type"]
    gt = (truth or GroundTruth(val)).coco(iou_type)
    results = read_json(RunFolder(run_dir).prediction_path(task, "val"))
    sigmas = oks_sigmas(val.meta())[0] if iou_type == "keypoints" else None
    ev = run_cocoeval(gt, list(results), iou_type, sigmas=sigmas, cat_ids=[c["id"] for c in gt["categories"]])
    p = ev.eval["precision"][0, :, :, 0, -1]  # [R, K] at IoU .50, all areas, most detections
    cols = [k for k in range(p.shape[1]) if (p[:, k] > -1).all()]
    if not cols:
        return None
    return np.asarray(ev.params.recThrs), p[:, cols].mean(1)


def pr_overlay(rows: list, task: Task, val, path: Path, truth=None) -> Path | None:
    """Every backend's PR curve on one plot (``truth``: ``val``'s GroundTruth, shared by all)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    drawn = 0
    for r in rows:
        try:
            pts = pr_curve_points(r.run_dir, task, val, truth)
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
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision",
           title=f"Precision-recall, all backends ({task.pr_curve_overlap} IoU 0.50, mean over classes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def samples_grid(rows: list, task: Task, val, path: Path, n: int = 3) -> Path | None:
    """A few val images: ground truth, then each backend's predictions, side by side."""
    if n <= 0 or not val.images:
        return None
    plt = pyplot()
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
            draw_answer(ax, rec, rec if j == 0 else preds[col].get(rec.id), task, meta)
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(rec.id, fontsize=7)
    handles = legend_of_categories(task, meta)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
