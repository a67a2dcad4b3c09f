"""YOLOv8 through zoo: wrapper overhead and what the defaults learn on the demo data.

1. overhead: the training time of ``zoo run --task detect --backend yolov8`` (its ``fit``
   phase: data conversion, training, checkpoint copy) against calling ultralytics directly
   on the same converted data with the same arguments, in this one process, alternating
   zoo / direct / direct / zoo so drift in the machine's load hits both sides alike. Both
   wall time and the process's CPU time (user + sys; less sensitive to other processes on a
   shared machine) are reported. Target: <= 1.03x.
2. learning: ``zoo run`` with the shipped defaults (plugins/yolov8/configs/yolov8/<task>.yaml) on the demo
   data for detect and instance-seg: the shared evaluator's AP / AP50 and the times.

Usage: .venv/bin/python bench/bench_yolov8.py [--epochs 10] [--skip-overhead] [--skip-learning]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from zoo.pipeline.options import Output, Training


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _zoo_run(out: Path, name: str, task: str, flags: dict | None = None):
    from zoo.pipeline.run import RunOptions, execute

    opts = RunOptions(
        task=task,
        backend="yolov8",
        quiet=True,
        training=Training(flags=flags or {}),
        output=Output(out=out, name=name),
    )
    return execute(opts)


_FIT_CPU: list[float] = []


def _instrument_fit() -> None:
    """Record the CPU time of the backend's fit (the phase zoo's manifest times as "fit")."""
    from zoo.plugins.yolov8.backend import YoloV8

    plain = YoloV8.fit

    def fit(self, train, selection):
        c0 = _cpu()
        try:
            return plain(self, train, selection)
        finally:
            _FIT_CPU.append(_cpu() - c0)

    YoloV8.fit = fit


_INNER: list[float] = []
_INNER_CPU: list[float] = []


def _timed_zoo(out: Path, name: str, epochs: int) -> tuple[float, float, Path]:
    result = _zoo_run(out, name, "detect", {"epochs": epochs, "device": "cpu"})
    # the part of zoo's fit spent inside ultralytics' train(): the rest is zoo's own work
    own = result.manifest.framework_metrics or {}
    _INNER.append(own.get("ultralytics_train_s", float("nan")))
    _INNER_CPU.append(own.get("ultralytics_train_cpu_s", float("nan")))
    return result.manifest.timings.fit, _FIT_CPU[-1], result.run_dir


def _timed_direct(run_dir: Path, scratch: Path, name: str) -> tuple[float, float]:
    """ultralytics alone: the data zoo converted and the arguments zoo passed."""
    from ultralytics import YOLO

    args = json.loads((run_dir / "work" / "train_args.json").read_text())
    # zoo's run scanned freshly written labels; the direct call must too, not reuse its cache
    for cache in (run_dir / "work" / "data").rglob("*.cache"):
        cache.unlink()
    args.update(project=str(scratch), name=name, exist_ok=True)
    c0, t0 = _cpu(), time.perf_counter()
    YOLO("yolov8n.yaml", task="detect").train(**args)
    return time.perf_counter() - t0, _cpu() - c0


def overhead(epochs: int, out: Path) -> dict:
    scratch = out / "direct"
    _instrument_fit()
    # untimed warm-up: imports, the demo cache, ultralytics' first-use set-up
    _timed_zoo(out, "warm-up", 1)
    zoo_wall, zoo_cpu, direct_wall, direct_cpu = [], [], [], []
    order = ["zoo", "direct", "direct", "zoo"]
    run_dir = None
    for k, who in enumerate(order):
        if who == "zoo":
            w, c, run_dir = _timed_zoo(out, f"overhead-{k}", epochs)
            zoo_wall.append(w)
            zoo_cpu.append(c)
        else:
            if run_dir is None:
                raise RuntimeError("zoo must run first: the direct call reuses its converted data")
            w, c = _timed_direct(run_dir, scratch, f"direct-{k}")
            direct_wall.append(w)
            direct_cpu.append(c)
        inner = f"  (in ultralytics' train: {_INNER[-1]:.1f} s wall {_INNER_CPU[-1]:.1f} s cpu)" if who == "zoo" else ""
        print(f"  {who:6s} {w:7.1f} s wall {c:7.1f} s cpu{inner}", flush=True)
    return {
        "epochs": epochs,
        "zoo_wall_s": zoo_wall,
        "direct_wall_s": direct_wall,
        "zoo_cpu_s": zoo_cpu,
        "direct_cpu_s": direct_cpu,
        "zoo_inside_ultralytics_train_s": _INNER[1:],
        "zoo_inside_ultralytics_train_cpu_s": _INNER_CPU[1:],
        "zoo_own_work_s": [w - i for w, i in zip(zoo_wall, _INNER[1:])],
        "ratio_wall": statistics.mean(zoo_wall) / statistics.mean(direct_wall),
        "ratio_cpu": statistics.mean(zoo_cpu) / statistics.mean(direct_cpu),
    }


def learning(out: Path) -> dict:
    import yaml

    rows = {}
    for task in ("detect", "instance-seg"):
        t0 = time.perf_counter()
        result = _zoo_run(out, f"learn-{task}", task)
        total = time.perf_counter() - t0
        m = result.metrics
        rows[task] = {
            "AP": m.get("AP"),
            "AP50": m.get("AP50"),
            "per_class_AP": {c: v.get("AP") for c, v in m.get("per_class", {}).items()},
            "fit_s": result.manifest.timings.fit,
            "total_s": total,
            "epochs": yaml.safe_load((result.run_dir / "config.yaml").read_text()).get("epochs"),
        }
        print(f"  {task:12s} AP {m.get('AP'):.3f} AP50 {m.get('AP50'):.3f} fit {rows[task]['fit_s']:.0f} s, whole run {total:.0f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10, help="epochs of each overhead training")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-learning", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    a = ap.parse_args()

    out = Path(tempfile.mkdtemp(prefix="bench-yolov8-"))
    os.environ.setdefault("ZOO_HOME", str(out / "zoo-home"))  # the demo cache, private to the bench
    report = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}",
        "torch_threads": None,
    }
    try:
        import torch

        report["torch_threads"] = torch.get_num_threads()
        if not a.skip_overhead:
            print(f"overhead ({a.epochs} epochs each, detect on the demo):", flush=True)
            report["overhead"] = overhead(a.epochs, out)
            o = report["overhead"]
            print(f"  zoo / direct: {o['ratio_wall']:.3f}x wall, {o['ratio_cpu']:.3f}x cpu (target <= 1.03x)", flush=True)
        if not a.skip_learning:
            print("learning (shipped defaults, demo data):", flush=True)
            report["learning"] = learning(out)
        report["load_after"] = round(os.getloadavg()[0], 1)
        print(json.dumps(report, indent=2))
    finally:
        if a.keep:
            print(f"run folders kept in {out}")
        else:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
