"""CPU use while each backend trains on the demo: cores busy (CPU seconds of the training
process and its workers over the wall-clock seconds of ``fit``) and CPU seconds per
training image.

    .venv/bin/python bench/bench_cpu_use.py [--backends unet:semantic-seg,yolov8:detect]
        [--epochs 1] [--images 96] [--set workers=1] [--label after]

Each backend trains in a fresh process (frameworks set global thread counts) on the demo's
96 training images at the demo preset's size (160 px), from scratch, scoring nothing
during training (protocol ``last``), so ``fit`` is the training phase alone. A sampler
thread reads the CPU times of the process and every descendant (DataLoader and
ultralytics workers) every 0.2 s from each thread's ``/proc`` schedstat, keeping each
thread's last reading, so workers that ended before ``fit`` returned still count. The load
average before and after is recorded: on a machine shared with other jobs, ``cores_busy``
(CPU seconds over wall seconds) is capped by what the other jobs leave, so the script also
reports ``cores_wanted``: CPU seconds plus the seconds the threads stood runnable on a run
queue, over wall seconds, the cores the training would keep busy on an idle machine. CPU
seconds per image measure the work itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT = ("unet:semantic-seg,segresnet:semantic-seg,resnet18:classify,mobilenet_v3_small:classify,"
           "faster-rcnn:detect,mask-rcnn:instance-seg,yolact:instance-seg,yolov8:detect")


class TreeCpu:
    """CPU seconds of this process and all its descendants, and seconds their threads
    waited for a core, sampled in a thread from each thread's ``/proc/PID/task/TID/schedstat``
    (nanoseconds on a CPU, nanoseconds runnable but waiting on a run queue). Each thread's
    last reading is kept, so a worker that has ended still counts.

    ``cores_wanted`` = (run + wait) / wall: how many cores the training kept busy or asked
    for, what it would use on an idle machine; ``cores_busy`` = run / wall: what it got."""

    def __init__(self, every: float = 0.2):
        import psutil

        self.me, self.every = psutil.Process(), every
        self.seen: dict[tuple[int, int], tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        import psutil

        try:
            pids = [self.me.pid, *(c.pid for c in self.me.children(recursive=True))]
        except psutil.Error:
            pids = [self.me.pid]
        for pid in pids:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue  # ended: its threads' last readings stay
            for tid in tids:
                try:
                    run, wait, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
                except (OSError, ValueError):
                    continue
                with self._lock:
                    self.seen[(pid, int(tid))] = (int(run), int(wait))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> TreeCpu:
        self._sample()
        self.start = dict(self.seen)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _total(self, i: int) -> float:
        with self._lock:
            return sum(v[i] - self.start.get(k, (0, 0))[i] for k, v in self.seen.items()) / 1e9

    def now(self) -> float:
        """CPU seconds so far, read now."""
        self._sample()
        return self.seconds

    @property
    def seconds(self) -> float:
        return self._total(0)

    @property
    def waited(self) -> float:
        return self._total(1)

    @property
    def processes(self) -> int:
        return len({pid for pid, _ in self.seen})


def train_once(backend: str, task: str, epochs: int, sets: list[str], imgsz: int, images: int) -> dict:
    """Train ``backend`` for ``epochs`` on the first ``images`` of the demo; what it cost."""
    from zoo.backend import RunContext
    from zoo.checksums import Ledger
    from zoo.config import resolve_config
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset
    from zoo.registry import get_registry
    from zoo.selection import Selection
    from zoo.tasks import get_task

    with tempfile.TemporaryDirectory() as tmp:
        write_demo(Path(tmp) / "demo")
        data = read_dataset(Path(tmp) / "demo", "auto")
        t = get_task(task)
        train = data.subset([r.id for r in data.images[:images]])  # 96: the demo run's training share
        cls = get_registry().backend(backend).load()
        config = resolve_config(cls.Config, backend=backend, task=task, sets=sets, demo=True,
                                flags={"epochs": epochs, "imgsz": imgsz, "device": "cpu"})
        run_dir = Path(tmp) / "run"
        ctx = RunContext(run_dir=run_dir, device="cpu", ledger=Ledger(run_dir, {}))
        for d in (ctx.checkpoint_dir, ctx.work_dir):
            d.mkdir(parents=True, exist_ok=True)
        model = cls(t, data.meta(), config, ctx)
        load0 = os.getloadavg()[0]
        wall = time.perf_counter()
        with TreeCpu() as cpu:
            model.fit(train, Selection.of(t))
        wall = time.perf_counter() - wall
        import torch

        return {"backend": backend, "task": task, "sets": sets, "epochs": epochs, "images": len(train.images),
                "wall_s": round(wall, 1), "cpu_s": round(cpu.seconds, 1),
                "cores_busy": round(cpu.seconds / wall, 2),
                "cores_wanted": round((cpu.seconds + cpu.waited) / wall, 2),
                "cpu_s_per_image": round(cpu.seconds / (epochs * len(train.images)), 3),
                "processes": cpu.processes, "torch_threads": torch.get_num_threads(),
                "load_before": round(load0, 1), "load_after": round(os.getloadavg()[0], 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default=DEFAULT, help="backend:task pairs, comma-separated")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--images", type=int, default=96, help="training images (the demo run trains on 96)")
    p.add_argument("--set", dest="sets", action="append", default=[], help="key=value for every backend")
    p.add_argument("--label", default="", help="a name for this arm in the output")
    p.add_argument("--one", help=argparse.SUPPRESS)  # the child: one backend:task
    args = p.parse_args()
    if args.one:
        backend, task = args.one.split(":")
        print("RESULT " + json.dumps(train_once(backend, task, args.epochs, args.sets, args.imgsz, args.images)), flush=True)
        return
    rows = []
    for pair in args.backends.split(","):
        cmd = [sys.executable, __file__, "--one", pair, "--epochs", str(args.epochs), "--imgsz", str(args.imgsz),
               "--images", str(args.images)]
        for s in args.sets:
            cmd += ["--set", s]
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        row = json.loads(lines[-1][7:]) if lines else {"backend": pair, "error": done.stderr.strip()[-600:]}
        row["label"] = args.label
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
