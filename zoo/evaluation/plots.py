"""Evaluation plots: per-class precision-recall curves and confusion matrices (matplotlib, Agg).

matplotlib is imported inside the functions so that importing zoo.evaluation stays cheap.
"""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def pr_curves(precision, rec_thrs, names: list[str], out_dir: Path, label: str = "box") -> list[Path]:
    """PR curves from pycocotools' accumulated ``precision`` [T, R, K, A, M].

    One figure with a curve per class at IoU 0.50 (area all, the largest maxDets), the
    legend carrying each class's AP50 and AP@[.50:.95]; written as ``pr_curve.png``.
    """
    import numpy as np

    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    drawn = 0
    for k, name in enumerate(names[: precision.shape[2]]):
        p50 = precision[0, :, k, 0, -1]
        if (p50 < 0).all():
            continue  # no ground truth of this class: no curve to draw
        p_all = precision[:, :, k, 0, -1]
        ap = p_all[p_all > -1].mean()
        ax.plot(rec_thrs, np.clip(p50, 0, None), lw=1.5, label=f"{name}  AP50 {p50.mean():.3f}  AP {ap:.3f}")
        drawn += 1
    valid = precision[0, :, :, 0, -1]
    if drawn > 1:
        cols = [c for c in range(valid.shape[1]) if (valid[:, c] > -1).all()]
        ax.plot(rec_thrs, valid[:, cols].mean(1), "k--", lw=2, label=f"all classes  AP50 {valid[:, cols].mean():.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision",
           title=f"Precision-recall ({label} IoU 0.50, 101-point interpolated)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="lower left", fontsize=8)
    path = out_dir / "pr_curve.png"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return [path]


def confusion_matrix_plot(conf, names: list[str], path: Path, title: str = "Confusion matrix") -> Path:
    """A row-normalised confusion matrix heat map (rows truth, columns prediction) with counts."""
    import numpy as np

    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conf = np.asarray(conf, dtype=np.float64)
    rows = conf.sum(1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    n = len(names)
    size = min(4 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=120)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set(xlabel="Predicted", ylabel="True", title=title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}\n{_count(conf[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _count(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:.1f}{unit}"
    return str(int(v))
