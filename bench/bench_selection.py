"""What choosing the epoch on the scored split overstated: faster-rcnn on the demo data.

One training of zoo's ``faster-rcnn`` (shipped defaults, fewer epochs) on the demo's
training images less a selection split (``carve_selection``, 10%); after every epoch zoo's
evaluator scores the model on the selection split, on val and on an untouched test split
(seeded split: val 0.2, test 0.2). From that one trajectory, three protocols pick an epoch:

* ``old default``: the epoch with the best **val** AP, reported on val (what
  ``best_on_val`` did before issue 18);
* ``--select best``: the epoch with the best **selection** AP;
* ``--select last``: the final epoch.

Each is then scored on the untouched test split. The old default's val AP minus its test AP
is what scoring the split it was chosen on overstated. (All three share one training so
that only the choice differs; the old default trained on the selection images too, and
scored val every 5 epochs, not every one.)

Usage: .venv/bin/python bench/bench_selection.py [--epochs 8] [--threads 1] [--device cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def _splits(seed: int):
    from zoo.data.demo import ensure_demo
    from zoo.data.reading import read_dataset
    from zoo.data.split import carve_selection, make_split
    from zoo.tasks import get_task

    task = get_task("detect")
    dataset = read_dataset(ensure_demo())
    split = carve_selection(make_split(dataset, task, val=0.2, test=0.2, seed=seed), dataset, task, 0.1)
    parts = {name: dataset.subset(getattr(split, name)) for name in ("train", "selection", "val", "test")}
    return task, dataset, parts


def _scorer(task, data):
    from zoo.selection import Protocol, Selection

    return Selection(Protocol("best"), data, task)


def trajectory(epochs: int, device: str, seed: int) -> dict:
    """Train once; zoo's AP on selection, val and test after every epoch."""
    from zoo.backend import RunContext
    from zoo.config import resolve_config
    from zoo.registry import get_registry
    from zoo.dataset import strip_annotations
    from zoo.selection import Protocol, Selection

    task, dataset, parts = _splits(seed)
    watched = {name: _scorer(task, parts[name]) for name in ("val", "test")}
    trace: dict[str, list[float]] = {"val": [], "test": []}

    class Watching(Selection):
        """The protocol's selection, which also scores val and test each time (for the
        benchmark only: a real run never looks at them during training)."""

        def scorer(self, predict):
            inner = super().scorer(predict)

            def val_fn(model=None):
                for name, sel in watched.items():
                    trace[name].append(sel.score(list(predict(strip_annotations(sel.data)))))
                return inner(model)

            return val_fn

    FasterRCNN = get_registry().backend("faster-rcnn").load()
    cfg = resolve_config(FasterRCNN.Config, backend="faster-rcnn", task="detect",
                         flags={"epochs": epochs, "device": device, "seed": seed}, demo=True)
    selection = Watching(Protocol("best"), parts["selection"], task)
    with tempfile.TemporaryDirectory() as tmp:
        b = FasterRCNN(task, dataset.meta(), cfg, RunContext(run_dir=Path(tmp), device=device))
        t0 = time.perf_counter()
        b.fit(parts["train"], selection)
        seconds = time.perf_counter() - t0
    return {
        "images": {k: len(v) for k, v in parts.items()}, "epochs": epochs, "seconds": round(seconds, 1),
        "selection_AP": [round(s["score"], 4) for s in sorted(selection.scored, key=lambda s: s["epoch"])],
        "val_AP": [round(v, 4) for v in trace["val"]], "test_AP": [round(v, 4) for v in trace["test"]],
    }


def _argmax(values: list[float]) -> int:
    """Index of the best value; ties go to the later epoch, as zoo's loop does."""
    return max(range(len(values)), key=lambda i: (values[i], i))


def protocols(t: dict) -> list[dict]:
    val, test, sel = t["val_AP"], t["test_AP"], t["selection_AP"]
    rows = []
    for name, epoch, reported in (
        ("old default: best val epoch, reported on val", _argmax(val), "val"),
        ("--select best (selection split)", _argmax(sel), "test"),
        ("--select last", len(test) - 1, "test"),
    ):
        rows.append({"protocol": name, "epoch": epoch + 1, "val_AP": val[epoch], "test_AP": test[epoch],
                     "reported_AP": val[epoch] if reported == "val" else test[epoch]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t = trajectory(args.epochs, args.device, args.seed)
    rows = protocols(t)
    print(f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s); images {t['images']}; "
          f"{t['epochs']} epochs in {t['seconds']:.0f} s")
    for k in ("selection_AP", "val_AP", "test_AP"):
        print(f"  {k:<13}" + " ".join(f"{v:.3f}" for v in t[k]))
    print(f"{'protocol':<48}{'epoch':>6}{'reported':>10}{'val AP':>8}{'test AP':>9}")
    for r in rows:
        print(f"{r['protocol']:<48}{r['epoch']:>6}{r['reported_AP']:>10.3f}{r['val_AP']:>8.3f}{r['test_AP']:>9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"trajectory": t, "protocols": rows}, indent=1))


if __name__ == "__main__":
    main()
