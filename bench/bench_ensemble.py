"""What the fold ensemble gains over its single fold models, on the held-out test split.

    .venv/bin/python bench/bench_ensemble.py [--cases demo:unet,demo:yolov8,tony:yolov8]
        [--folds 3] [--seeds 0,1,2] [--epochs N] [--imgsz N] [--demo-images N] [--out DIR]

Each case is `zoo compare --folds K --test 0.2 --ensemble` of one backend, repeated with each
seed (the seed draws the test split, deals the folds and seeds training). Per seed: the
ensemble's main metric on the test split, the mean of the K single fold models on the same
test images (the anchor), and the best of them; the gain is ensemble - mean of singles (and
ensemble - best single), averaged over the seeds. The paired verdict's P(ensemble better than
the best fold) is reported per seed.

Datasets: `demo` is zoo's demo data (120 synthetic smears); `tony` is the Pascal VOC fixture
`../shared/fixtures/real/voc/Tony607_object_detection_demo` (18 photos, 164 boxes), read from
where it is (never copied).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = {"demo": None, "tony": ROOT.parent / "shared" / "fixtures" / "real" / "voc" / "Tony607_object_detection_demo"}
#: backend -> (task, imgsz, epochs): small enough for a shared 2-core machine
SETTINGS = {"unet": ("semantic-seg", 128, 10), "yolov8": ("detect", 160, 10), "resnet18": ("classify", 64, 10)}


def one(data: str, backend: str, seed: int, folds: int, epochs: int | None, out: Path,
        imgsz: int | None = None) -> dict:
    from zoo.pipeline.compare import CompareOptions, compare
    from zoo.pipeline.options import Output, Source, SplitPlan, Training

    task, default_imgsz, default_epochs = SETTINGS[backend]
    imgsz = imgsz or default_imgsz
    t0 = time.perf_counter()
    result = compare(CompareOptions(
        task=task, backends=[backend], source=Source(DATA[data]), output=Output(out / data / str(seed)),
        split=SplitPlan(folds=folds, test=0.2), ensemble=True, samples=0,
        training=Training(flags={"epochs": epochs or default_epochs, "imgsz": imgsz, "device": "cpu", "seed": seed})))
    (e,) = result.ensembles
    s = e.summary()
    return {"data": data, "backend": backend, "seed": seed, "k": s["k"], "metric": s["main"],
            "ensemble": s["ensemble"], "singles_mean": s["singles_mean"], "best_single": s["best_single"],
            "p_better_than_best": (s["verdict"] or {}).get("p_ensemble_better"),
            "seconds": round(time.perf_counter() - t0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="demo:unet,demo:yolov8,tony:yolov8")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--imgsz", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--demo-images", type=int, default=None,
                    help="`demo`: this many 160-px smears instead of the built-in 120 (a loaded machine)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-ensemble-"))
    if args.demo_images:
        from zoo.data.demo import write_demo

        DATA["demo"] = out / "demo-data"
        write_demo(DATA["demo"], images=args.demo_images, size=160, seed=0)
    seeds = [int(s) for s in args.seeds.split(",")]
    table = []
    for case in args.cases.split(","):
        data, backend = case.split(":")
        rows = [one(data, backend, seed, args.folds, args.epochs, out, args.imgsz) for seed in seeds]
        for r in rows:
            print(json.dumps(r), flush=True)
        mean = lambda k: statistics.fmean(r[k] for r in rows)  # noqa: E731
        table.append((data, backend, rows[0]["metric"], rows[0]["k"], mean("ensemble"), mean("singles_mean"),
                      mean("best_single"), [r["p_better_than_best"] for r in rows]))
    print(f"\n{args.folds} folds, test 0.2, seeds {args.seeds}, epochs {args.epochs or 'per backend'}, "
          f"imgsz {args.imgsz or 'per backend'}")
    print("| data | backend | metric (test) | ensemble of K | single folds (anchor) | best single | "
          "gain vs singles | gain vs best | P(ens > best) per seed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for data, backend, metric, k, ens, singles, best, ps in table:
        print(f"| {data} | {backend} | {metric} | {ens:.3f} (K={k}) | {singles:.3f} | {best:.3f} | "
              f"{ens - singles:+.3f} | {ens - best:+.3f} | {', '.join(f'{p:.2f}' for p in ps if p is not None)} |")


if __name__ == "__main__":
    main()
