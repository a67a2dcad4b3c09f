"""Reading and the ground truth as COCO: what a reader, ``to_coco``, the polygon rasteriser and
the streaming labelme -> COCO writer cost, for a before / after comparison of their code.

Generates N labelme files (``bench_convert.generate``: 3-12 polygons of 6-20 vertices each,
640x480), then times, in this process, each step R times (process CPU time: the machine is
shared, wall time would measure the neighbours):

* ``read_dataset(folder)`` (labelme, detection of the format included), and of the same
  annotations as one COCO file (its images not found: sized from the JSON);
* ``to_coco(dataset)`` (the evaluator's ground truth, ``zoo.evaluation.ground_truth``);
* ``rasterise_polygons_rles`` of every polygon (segm scoring's slowest step);
* ``convert_folder(folder, to="coco", copy_images=False)`` (streams: labelme records in,
  annotations.json out);

and prints best and median. Run it once with this zoo and once with another checkout's zoo
first on ``sys.path`` (``--zoo DIR``) to compare two versions of the code on the same files.

Usage: ``python bench/bench_read.py [N] [--rounds R] [--zoo DIR]`` (default 3000 files, 7 rounds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _timed(fn, rounds: int) -> tuple[float, float]:
    fn()  # warm: imports, caches
    ts = []
    for _ in range(rounds):
        t = time.process_time()
        fn()
        ts.append(time.process_time() - t)
    return min(ts), statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--zoo", help="a zoo checkout to import instead of the installed one")
    args = ap.parse_args()
    if args.zoo:
        sys.path.insert(0, args.zoo)
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_convert import generate

    import zoo
    from zoo.data import raster
    from zoo.data.reading import read_dataset

    try:
        from zoo.evaluation.ground_truth import to_coco
    except ImportError:  # before issue 15
        from zoo.adapters.coco import to_coco
    try:
        from zoo.pipeline.convert import convert_folder
    except ImportError:
        from zoo.adapters.convert import convert_folder

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "lm"
        generate(src, args.n)
        ds = read_dataset(src)
        items = [(i.polygons, r.height, r.width) for r in ds.images for i in r.instances]
        import inspect
        import itertools

        outs = (Path(tmp) / f"out{k}" for k in itertools.count())  # a new --out each time
        quiet = {"quiet": True} if "quiet" in inspect.signature(convert_folder).parameters else {}
        coco_file = Path(tmp) / "coco.json"  # the same annotations as one COCO file (images not beside it)
        convert_folder(src, to="coco", out=next(outs), copy_images=False, **quiet)
        (Path(tmp) / "out0" / "annotations.json").rename(coco_file)
        steps = {
            "read_dataset": lambda: read_dataset(src),
            "read COCO file": lambda: read_dataset(coco_file),
            "to_coco": lambda: to_coco(ds),
            "rasterise polygons": lambda: raster.rasterise_polygons_rles(items),
            "convert (stream)": lambda: convert_folder(src, to="coco", out=next(outs), copy_images=False, **quiet),
        }
        print(f"zoo from {Path(zoo.__file__).parent}; {len(ds.images)} files, {len(items)} polygons, "
              f"{args.rounds} rounds, process CPU time")
        for name, fn in steps.items():
            best, median = _timed(fn, args.rounds)
            print(f"  {name:20s} best {best * 1000:7.0f} ms   median {median * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
