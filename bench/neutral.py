"""Is a refactor behaviour-neutral? One-epoch runs of each backend, same seed, on an 8-image
prefix of the demo data; the sha256 of each run's ``metrics.json`` and ``config.yaml``.

Run it once on the commit before the change and once after, then compare::

    python bench/neutral.py run before.json --work /tmp/neutral          # on the old commit
    python bench/neutral.py run after.json --work /tmp/neutral           # on the new one
    python bench/neutral.py compare before.json after.json

The same ``--work`` folder both times: the demo prefix is written there once, so both runs
read the same paths. ``--backends name[:task],...`` picks the runs (default: a representative
of each code path the class-per-idea refactor touched, :data:`DEFAULT_RUNS`). Each run is
``zoo run`` in a subprocess, as a user runs it; a failed run is recorded with its last
lines. Exit 1 from ``compare`` when any hash differs or a run is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

#: (backend, task): the dense kit under smp (plain, the depth-3 PSPNet, PAN's 128-px minimum)
#: and MONAI (deep pixels; DynUNet's planned topology), two torchvision classifiers, the three
#: R-CNNs (mask-rcnn with and without masks), detectron2's five, and yolact's two (masks or
#: boxes by the task). Each class's spec options are checked per name by the unit tests.
DEFAULT_RUNS = [
    ("unet", "semantic-seg"), ("pspnet", "semantic-seg"), ("pan", "semantic-seg"), ("segresnet", "semantic-seg"),
    ("dynunet", "semantic-seg"), ("resnet18", "classify"), ("alexnet", "classify"),
    ("faster-rcnn", "detect"), ("mask-rcnn", "instance-seg"), ("mask-rcnn", "detect"), ("keypoint-rcnn", "keypoint"),
    ("d2-faster-rcnn", "detect"), ("d2-mask-rcnn", "instance-seg"), ("d2-keypoint-rcnn", "keypoint"),
    ("d2-retinanet", "detect"), ("d2-cascade-rcnn", "instance-seg"),
    ("yolact", "instance-seg"), ("yolact++", "detect"),
]
DEMO_IMAGES = 8  # a prefix of the demo: image i is the same whatever the count
FILES = ("metrics.json", "config.yaml")


def _runs(spec: str | None) -> list[tuple[str, str]]:
    if not spec:
        return DEFAULT_RUNS
    known = dict(DEFAULT_RUNS)
    out = []
    for item in spec.split(","):
        backend, _, task = item.partition(":")
        out.append((backend, task or known[backend]))
    return out


def _demo(work: Path) -> Path:
    data = work / "demo"
    if not data.is_dir():
        from zoo.data.demo import write_demo

        write_demo(data, images=DEMO_IMAGES)
    return data


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def run(out: Path, work: Path, runs: list[tuple[str, str]], imgsz: int) -> None:
    data = _demo(work)
    found = json.loads(out.read_text()) if out.is_file() else {}
    for backend, task in runs:
        key = f"{backend}:{task}"
        name = f"{backend}-{task}".replace("+", "p")
        folder = work / "runs" / name
        cmd = [sys.executable, "-m", "zoo", "run", "-t", task, "-b", backend, "--data", str(data), "--epochs", "1",
               "--imgsz", str(imgsz), "--seed", "0", "--out", str(work / "runs"), "--name", name]
        shutil.rmtree(folder, ignore_errors=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        found[key] = {f: _sha(folder / f) for f in FILES}
        if done.returncode:
            found[key]["error"] = (done.stdout + done.stderr).strip().splitlines()[-3:]
        print(key, found[key], flush=True)
        out.write_text(json.dumps(found, indent=1, sort_keys=True))  # after each run: partial results survive


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    bad = 0
    for key in sorted(set(a) | set(b)):
        same = key in a and key in b and a[key] == b[key] and "error" not in a[key]
        bad += not same
        print(f"{'same' if same else 'DIFFERS'}  {key}" + ("" if same else f"  {a.get(key)} -> {b.get(key)}"))
    print(f"{len(set(a) | set(b)) - bad} identical, {bad} differ or failed")
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--backends")
    r.add_argument("--imgsz", type=int, default=64)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = p.parse_args()
    if args.cmd == "compare":
        return compare(args.before, args.after)
    args.work.mkdir(parents=True, exist_ok=True)
    run(args.out, args.work, _runs(args.backends), args.imgsz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
