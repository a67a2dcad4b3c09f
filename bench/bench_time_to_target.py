"""Time to a target quality on the demo: the training seconds (wall and CPU) a shared-loop
backend needs before its score on held-out demo images first reaches the target, for this
checkout against an earlier one, in one run.

    .venv/bin/python bench/bench_time_to_target.py --before /tmp/old-checkout \\
        [--targets unet:semantic-seg:mIoU:0.9,faster-rcnn:detect:AP50:0.8] [--seeds 0]

``--before`` is a checkout of an earlier commit (``git archive <commit> | tar -x -C DIR``);
its arm runs with this venv's editable install of zoo pointed at that folder (a
``sitecustomize`` in a temporary folder rewrites the finder's mapping), so both arms use the
same frameworks and data. Without it only this checkout runs.

Each (arm, backend, seed) trains in a fresh process on the demo's first 96 images at the demo
preset (160 px, its epochs, from scratch) and is scored after every epoch on the last 24 with
zoo's shared evaluator, through the backend's own ``predict`` (the selection protocol's
hook). Training stops at the first epoch that reaches the target. The seconds spent scoring
are not counted. CPU seconds are those of the process and its workers (the schedstat sampler
of bench_cpu_use.py): on a machine shared with other jobs, read those; wall seconds move
with the other jobs' load. Metrics: ``mIoU``; ``AP50`` (detect: boxes; instance-seg: masks,
its main metrics); ``bbox.AP50`` (instance-seg's boxes).

yolov8 trains in ultralytics' loop, not zoo's: :class:`UltralyticsClock` times its epochs
and reads its validator's mAP50 on the same held-out images (ultralytics' AP, close to but
not zoo's evaluator's), e.g. ``--targets yolov8:detect:AP50:0.9``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_cpu_use import TreeCpu

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("unet:semantic-seg:mIoU:0.9,faster-rcnn:detect:AP50:0.8,mask-rcnn:instance-seg:AP50:0.8")


class Reached(Exception):
    """Raised from the scorer once the target is reached: training stops there."""


def metric(metrics: dict, name: str) -> float:
    """``name`` (``AP50``, ``bbox.AP50``) in the evaluator's metrics."""
    value = metrics
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{name} not in the metrics (keys: {sorted(metrics)})")
        value = value[part]
    return float(value)


class TargetClock:
    """The scorer a backend's ``fit`` gets (through its selection, protocol ``best``): after
    each epoch, ``predict`` on the held-out images, scored; the training seconds so far
    (scoring not counted) noted with the score; :class:`Reached` raised at the target."""

    def __init__(self, task, held, name: str, target: float):
        self.task, self.held, self.name, self.target = task, held, name, target
        self.curve: list[dict] = []
        self.cpu = TreeCpu().__enter__()
        self.t0 = time.perf_counter()
        self.scoring_wall = self.scoring_cpu = 0.0

    def selection(self):
        from zoo.selection import Protocol, Selection

        clock = self

        class Timed(Selection):
            def scorer(self, predict):
                return lambda _model: clock.score(predict)

        return Timed(Protocol(rule="best"), self.held, self.task)

    def score(self, predict) -> float:
        from zoo.predictions import score_predictions

        wall, cpu = time.perf_counter(), self.cpu.now()
        value = metric(score_predictions(self.task, self.held, predict(self.held.images))[0], self.name)
        self.scoring_wall += time.perf_counter() - wall
        self.scoring_cpu += self.cpu.now() - cpu
        self.curve.append({"epoch": len(self.curve) + 1, self.name: round(value, 4),
                           "train_wall_s": round(time.perf_counter() - self.t0 - self.scoring_wall, 1),
                           "train_cpu_s": round(self.cpu.now() - self.scoring_cpu, 1)})
        print("EPOCH " + json.dumps(self.curve[-1]), flush=True)
        if value >= self.target:
            raise Reached
        return value


class UltralyticsClock:
    """yolov8 trains in ultralytics' own loop, which never calls zoo's scorer: its epochs are
    timed from ultralytics' epoch callbacks (validation not counted) and scored by its
    validator's mAP50 on the same held-out images (zoo's selection split here, which
    ultralytics validates on after every epoch); ``trainer.stop`` ends training at the
    target. Installed in ultralytics' default callbacks before the backend builds its model."""

    KEY = {"AP50": "metrics/mAP50(B)", "AP": "metrics/mAP50-95(B)"}

    def __init__(self, name: str, target: float):
        from ultralytics.utils import callbacks

        self.key, self.target = self.KEY[name], target
        self.name, self.curve = name, []
        self.cpu = TreeCpu().__enter__()
        self.wall = self.cpu_s = 0.0
        defaults = callbacks.default_callbacks
        # plain functions: ultralytics deep-copies its defaults into each model, and a deep
        # copy of a bound method would copy this clock with it
        defaults["on_train_epoch_start"].append(lambda trainer: self.start(trainer))
        defaults["on_train_epoch_end"].append(lambda trainer: self.end(trainer))
        defaults["on_fit_epoch_end"].append(lambda trainer: self.score(trainer))

    def start(self, trainer) -> None:
        self.t0, self.c0 = time.perf_counter(), self.cpu.now()

    def end(self, trainer) -> None:
        self.wall += time.perf_counter() - self.t0
        self.cpu_s += self.cpu.now() - self.c0

    def score(self, trainer) -> None:
        value = float((trainer.metrics or {}).get(self.key, 0.0))
        self.curve.append({"epoch": len(self.curve) + 1, self.name: round(value, 4),
                           "train_wall_s": round(self.wall, 1), "train_cpu_s": round(self.cpu_s, 1)})
        print("EPOCH " + json.dumps(self.curve[-1]), flush=True)
        if value >= self.target:
            trainer.stop = True


def train_to_target(backend: str, task: str, name: str, target: float, seed: int) -> dict:
    from zoo.backend import RunContext
    from zoo.checksums import Ledger
    from zoo.config import resolve_config
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset
    from zoo.registry import get_registry
    from zoo.tasks import get_task

    with tempfile.TemporaryDirectory() as tmp:
        write_demo(Path(tmp) / "demo")
        data = read_dataset(Path(tmp) / "demo", "auto")
        t = get_task(task)
        train = data.subset([r.id for r in data.images[:96]])
        held = data.subset([r.id for r in data.images[96:]])
        cls = get_registry().backend(backend).load()
        config = resolve_config(cls.Config, backend=backend, task=task, demo=True,
                                flags={"imgsz": 160, "device": "cpu", "seed": seed})
        run_dir = Path(tmp) / "run"
        ctx = RunContext(run_dir=run_dir, device="cpu", ledger=Ledger(run_dir, {}))
        for d in (ctx.checkpoint_dir, ctx.work_dir):
            d.mkdir(parents=True, exist_ok=True)
        model = cls(t, data.meta(), config, ctx)
        clock = TargetClock(t, held, name, target)
        own_loop = UltralyticsClock(name, target) if backend.startswith("yolov8") else None
        try:
            model.fit(train, clock.selection())
        except Reached:
            pass
        curve = own_loop.curve if own_loop else clock.curve
        reached = curve[-1] if curve and curve[-1][name] >= target else None
        return {"backend": backend, "task": task, "metric": name, "target": target, "seed": seed,
                "epochs_max": config.epochs, "reached": reached, "curve": curve,
                "load": round(os.getloadavg()[0], 1)}


SITECUSTOMIZE = """\
import importlib, importlib.util, pkgutil, sys, types
from importlib.metadata import entry_points

for info in pkgutil.iter_modules():
    if info.name.startswith("__editable___zoo") and info.name.endswith("_finder"):
        finder = importlib.import_module(info.name)
        finder.MAPPING.update({k: v.replace(%(root)r, %(checkout)r) for k, v in finder.MAPPING.items()})
# this install's entry points that name a module the checkout lacks: plugins with no hooks
for point in entry_points(group="zoo"):
    if importlib.util.find_spec(point.module) is None:
        sys.modules[point.module] = types.ModuleType(point.module)
"""


def sitecustomize_for(checkout: Path, folder: Path) -> Path:
    """A folder whose ``sitecustomize.py`` points the editable install at ``checkout``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE % {"root": str(ROOT), "checkout": str(checkout)},
                                             encoding="utf-8")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default=DEFAULT, help="backend:task:metric:target, comma-separated")
    p.add_argument("--seeds", default="0")
    p.add_argument("--before", type=Path, help="a checkout of the earlier commit")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        backend, task, name, target, seed = args.one.split(":")
        print("RESULT " + json.dumps(train_to_target(backend, task, name, float(target), int(seed))), flush=True)
        return
    arms = {"now": None}
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            arms = {"before": sitecustomize_for(args.before.resolve(), Path(tmp) / "before"), **arms}
        for spec in args.targets.split(","):
            for seed in args.seeds.split(","):
                for arm, site in arms.items():
                    env = dict(os.environ, PYTHONPATH=str(site)) if site else dict(os.environ)
                    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", f"{spec}:{seed}"], env=env, cwd=tmp,
                                          capture_output=True, text=True)
                    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
                    row = json.loads(lines[-1][7:]) if lines else {"spec": spec, "error": done.stderr.strip()[-800:]}
                    print(json.dumps({"arm": arm, **row}), flush=True)


if __name__ == "__main__":
    main()
