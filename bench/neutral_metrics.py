"""Is a change to the metrics code behaviour-neutral? Run the same runs and compares on two
versions of zoo and diff what they wrote.

    # on the old code (e.g. a checkout of main before the change)
    .venv/bin/python bench/neutral_metrics.py make /tmp/before
    # on the new code
    .venv/bin/python bench/neutral_metrics.py make /tmp/after
    .venv/bin/python bench/neutral_metrics.py diff /tmp/before /tmp/after

``make`` writes the demo data (40 images, 128 px) and, through the real ``zoo`` CLI with the
framework-free toy backends of ``tests/toy_backend.py``, runs every task (``zoo run``,
whose summary table is kept from stdout), re-scores the detect run's predictions on all images (``zoo eval``) and compares
toy against oracle on four tasks (``zoo compare``, one with two folds). ``diff`` compares
metrics.json, report.md, report.html, leaderboard.md/.csv, compare.json and the CLI
tables byte for byte after masking what differs between any two runs of the same code:
the output folder's path, timings, versions.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("classify", "detect", "semantic-seg", "instance-seg", "keypoint")
COMPARES = (("detect", ()), ("semantic-seg", ()), ("classify", ()), ("keypoint", ("--folds", "2")))
COMPARED = ("metrics.json", "report.md", "report.html", "leaderboard.md", "leaderboard.csv", "compare.json",
            ".txt")
#: What two runs of the same code write differently: durations, speeds, library versions.
_MASKS = [
    (re.compile(r"\d+(\.\d+)? (s|min|ms)\b"), "T"),
    (re.compile(r"\d+(\.\d+)? ms/img"), "T"),
    (re.compile(r'"(fit|predict|read|evaluate|predict_per_image_ms|seconds|started|finished)": [^,}\n]+'),
     r'"\1": T'),
    (re.compile(r"(ms/img|ms per image)[^|\n]*"), "T"),
    (re.compile(r"\bT +\d+\.\d\b"), "T T"),  # the CLI leaderboard's ms/img column
    (re.compile(r"\b\d{12,}\b"), "ID"),  # the toy backend's framework: an object id
]
#: leaderboard.csv's columns of times
_TIMED = ("train_s", "predict_ms_per_image")


def _cli(argv: list[str]) -> None:
    """``zoo ARGV`` with the toy backends registered (as tests/test_checkpoints.py does)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import toy_backend

    import zoo.registry
    from zoo.cli import main

    reg = toy_backend.registry()
    zoo.registry.get_registry = lambda: reg
    sys.exit(main(argv))


def _zoo(out: Path, name: str, *argv: str) -> None:
    done = subprocess.run([sys.executable, __file__, "_cli", *argv], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(out)}, cwd=out)
    if done.returncode:
        raise SystemExit(f"zoo {' '.join(argv)} failed:\n{done.stderr}")
    (out / "cli" / f"{name}.txt").write_text(done.stdout)


def make(out: Path) -> None:
    from zoo.data.demo import write_demo

    out.mkdir(parents=True)
    (out / "cli").mkdir()
    data = out / "data"
    write_demo(data, images=40, size=128, seed=0)
    runs = out / "runs"
    common = ["--data", str(data), "--out", str(runs), "--device", "cpu"]
    for task in TASKS:
        _zoo(out, f"run-{task}", "run", "--task", task, "--backend", "toy", *common)
    _zoo(out, "eval-detect", "eval", "--task", "detect", "--gt", str(data), "--out", str(out / "eval" / "metrics.json"),
         "--pred", str(runs / "toy-detect" / "predictions" / "coco_results.json"))
    for task, extra in COMPARES:
        _zoo(out, f"compare-{task}", "compare", "--task", task, "--backends", "toy,oracle", *common, *extra)


def _masked(path: Path, root: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").replace(str(root), "OUT")
    if path.suffix == ".csv":
        text = _csv_masked(text)
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


def _csv_masked(text: str) -> str:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    timed = [k for k, name in enumerate(rows[0]) if name in _TIMED] if rows else []
    for row in rows[1:]:
        for k in timed:
            row[k] = "T"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def diff(a: Path, b: Path) -> int:
    import difflib

    files = sorted(p.relative_to(a) for p in a.rglob("*")
                   if p.is_file() and p.name.endswith(COMPARED) and p.name != "log.txt")
    differ = 0
    for rel in files:
        if not (b / rel).is_file():
            print(f"missing in {b}: {rel}")
            differ += 1
            continue
        x, y = _masked(a / rel, a), _masked(b / rel, b)
        if x != y:
            differ += 1
            print(f"differs: {rel}")
            sys.stdout.writelines(list(difflib.unified_diff(x.splitlines(True), y.splitlines(True), str(a / rel),
                                                            str(b / rel), n=1))[:40])
    print(f"{len(files)} files compared, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "_cli":
        _cli(args)
    elif cmd == "make":
        make(Path(args[0]).resolve())
    elif cmd == "diff":
        sys.exit(diff(Path(args[0]).resolve(), Path(args[1]).resolve()))
    else:
        raise SystemExit(__doc__)
