"""Defaults that fit the data (issue 19): the old demo-tuned defaults against ``auto`` against
``--budget``, on a real VOC folder and on the demo, each scored by zoo's evaluator on the same
split.

Settings compared, per backend and dataset:

* ``demo-tuned`` -- what zoo 0.1.0 shipped for every dataset: ``imgsz 160`` and the demo's epochs
  (``configs/demo.yaml``);
* ``auto`` -- no flags: ``imgsz`` / ``epochs`` chosen from the training images (zoo.training.autoconfig);
* ``budget`` -- ``--budget`` (``--minutes``, default 10): the epochs set to fit that time.

Usage::

    .venv/bin/python bench/bench_defaults.py [--data voc|demo|both] [--backends yolov8,faster-rcnn,unet]
        [--settings demo-tuned,auto,budget] [--minutes 10]

The VOC folder is ``../shared/fixtures/real/voc/Tony607_object_detection_demo`` (18 800x600
photos, its own train/test split). unet runs on the demo only (the VOC folder has boxes, no
masks). Prints one JSON line per run and a markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from zoo.pipeline.options import Output, Source, Training

REPO = Path(__file__).resolve().parents[1]
VOC = REPO.parent / "shared" / "fixtures" / "real" / "voc" / "Tony607_object_detection_demo"
TASK = {"yolov8": "detect", "faster-rcnn": "detect", "unet": "semantic-seg"}


def _flags(setting: str, backend: str, task: str, minutes: float) -> dict:
    from zoo.config import demo_preset

    if setting == "demo-tuned":
        return {k: v for k, v in demo_preset(backend, task).items() if k in ("imgsz", "epochs")}
    if setting == "budget":
        return {"budget": f"{minutes:g}m"}
    return {}


def run_one(backend: str, data: str, setting: str, minutes: float, out: Path) -> dict:
    from zoo.pipeline.run import RunOptions, execute

    import yaml

    from zoo.data.demo import ensure_demo

    task = TASK[backend]
    # the demo is passed as a folder, like anyone's data: its preset must not apply to the
    # 'auto' and 'budget' rows, which measure the data-derived rules
    result = execute(RunOptions(
        task=task,
        backend=backend,
        quiet=True,
        source=Source(path=VOC if data == "voc" else ensure_demo()),
        training=Training(flags=_flags(setting, backend, task, minutes)),
        output=Output(out=out, name=f"{backend}-{data}-{setting}"),
    ))
    m, man = result.metrics, result.manifest
    cfg = yaml.safe_load((result.run_dir / "config.yaml").read_text(encoding="utf-8"))
    epochs_run = (man.get("framework_metrics") or {}).get("epochs")
    return {
        "backend": backend, "data": data, "setting": setting, "main": m.get("main"),
        "score": m.get(m.get("main")), "AP50": m.get("AP50"), "imgsz": cfg.get("imgsz"),
        "epochs": epochs_run or cfg.get("epochs"), "fit_s": round(man.get("timings", {}).get("fit", 0.0), 1),
        "budget": man.get("budget"),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="both", choices=["voc", "demo", "both"])
    p.add_argument("--backends", default="yolov8,faster-rcnn,unet")
    p.add_argument("--settings", default="demo-tuned,auto,budget")
    p.add_argument("--minutes", type=float, default=10.0)
    args = p.parse_args()
    datasets = ["voc", "demo"] if args.data == "both" else [args.data]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for data in datasets:
            for backend in args.backends.split(","):
                if data == "voc" and TASK[backend] != "detect":
                    continue
                for setting in args.settings.split(","):
                    row = run_one(backend, data, setting, args.minutes, Path(tmp))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    print("\n| data | backend | setting | imgsz | epochs | main | AP50 | fit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        score = f"{r['main']} {r['score']:.3f}" if isinstance(r["score"], float) else "–"
        ap50 = f"{r['AP50']:.3f}" if isinstance(r["AP50"], float) else "–"
        print(f"| {r['data']} | {r['backend']} | {r['setting']} | {r['imgsz']} | "
              f"{r['epochs']} | {score} | {ap50} | {r['fit_s']} s |")


if __name__ == "__main__":
    main()
