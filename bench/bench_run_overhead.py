"""What the run pipeline itself costs: `zoo run` with an instant backend against the work any
scoring must do anyway (read the folder + shared evaluator on the same predictions).

The backend here trains nothing and predicts each image's ground truth, so everything that
is timed is zoo's: reading, hashing, splitting, config, ground truth to COCO, validating and
saving predictions (COCO results / masks + labelme JSON), evaluation, plots, report.

    ratio = zoo run wall time / (read_dataset + evaluate) wall time, measured in the same run

Usage: .venv/bin/python bench/bench_run_overhead.py [--images 120] [--size 160]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from zoo import hookimpl
from zoo.backend import Backend
from zoo.predictions import ClassPrediction, Detection, InstancePredictions, SemanticPrediction
from zoo.specs import BackendSpec
from zoo.pipeline.options import Output, Source, Training


#: Every image's annotations by id, read before anything is timed: fit never gets the scored
#: split (zoo's selection protocol), so the instant backend peeks here to predict it back.
ANSWERS: dict = {}


class Instant(Backend):
    """Predicts each image's ground truth (from :data:`ANSWERS`); trains nothing."""

    def fit(self, train, selection):
        self.memory = ANSWERS
        (self.ctx.checkpoint_dir / "none").write_text("")
        return {}

    @classmethod
    def load(cls, task, meta, config, ctx):
        raise NotImplementedError

    def predict(self, images):
        from zoo.data.raster import instance_mask, mask_to_rle, semantic_label_map

        for r in images:
            gt = self.memory[r.id]
            if self.task.name == "classify":
                yield ClassPrediction(r.id, gt.labels[0])
            elif self.task.name == "semantic-seg":
                yield SemanticPrediction(r.id, semantic_label_map(gt, self.meta))
            else:
                dets = []
                for i in gt.instances:
                    if i.ignore:
                        continue
                    mask = mask_to_rle(instance_mask(i, r.height, r.width)) if self.task.name == "instance-seg" else None
                    kps = [(x, y, 1.0) for x, y, _ in i.keypoints] if self.task.name == "keypoint" and i.keypoints else None
                    dets.append(Detection(i.category, 1.0, i.bbox, mask=mask, keypoints=kps))
                yield InstancePredictions(r.id, dets)


class Plugin:
    @hookimpl
    def zoo_backends(self):
        return [BackendSpec(name="instant", tasks=("classify", "detect", "semantic-seg", "instance-seg", "keypoint"),
                            entry="__main__:Instant")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--size", type=int, default=160)
    args = ap.parse_args()

    from zoo.data.demo import write_demo
    from zoo.evaluation import evaluate
    from zoo.data.reading import read_dataset
    from zoo.registry import Registry
    from zoo.pipeline.run import RunOptions, execute
    from zoo.data.split import read_split
    from zoo.tasks import get_task

    registry = Registry(plugins=[Plugin()])
    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-run-"))
    write_demo(tmp / "demo", images=args.images, size=args.size)
    ANSWERS.update({r.id: r for r in read_dataset(tmp / "demo").images})
    print(f"demo: {args.images} images of {args.size} px; {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    # warm-up: first imports (torch for seeding, faster-coco-eval, matplotlib) are not overhead per run
    def options(task: str, out: Path) -> RunOptions:
        return RunOptions(task=task, backend="instant", registry=registry, quiet=True, source=Source(path=tmp / "demo"),
                          training=Training(flags={"device": "cpu"}), output=Output(out=out))

    execute(options("detect", tmp / "warmup"))
    print(f"{'task':<14}{'anchor s':>10}{'zoo run s':>11}{'added s':>9}{'ratio':>7}   zoo phases (s)")
    for task in ("detect", "instance-seg", "semantic-seg", "keypoint", "classify"):
        t0 = time.perf_counter()
        result = execute(options(task, tmp / "runs"))
        t_zoo = time.perf_counter() - t0
        main_metric = result.metrics["main"]
        assert abs(result.metrics[main_metric] - 1.0) < 1e-9, (task, result.metrics[main_metric])

        # anchor: read the folder, score the same predictions with the same evaluator
        t0 = time.perf_counter()
        ds = read_dataset(tmp / "demo")
        val = ds.subset(read_split(result.run_dir / "split.json").val)
        backend = Instant(get_task(task), ds, None, None)
        backend.memory = {r.id: r for r in val.images}
        preds = list(backend.predict(val.images))  # zoo's predict phase makes these too
        evaluate(task, val, preds)
        t_anchor = time.perf_counter() - t0
        timings = result.manifest.timings.model_dump(exclude_none=True)
        phases = {k: v for k, v in timings.items() if k not in ("predict_per_image_ms", "fit_parts")}
        print(f"{task:<14}{t_anchor:>10.2f}{t_zoo:>11.2f}{t_zoo - t_anchor:>9.2f}{t_zoo / t_anchor:>7.2f}   "
              + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    print(f"(run folders in {tmp})", file=sys.stderr)


if __name__ == "__main__":
    main()
