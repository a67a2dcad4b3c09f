"""Does the labelling loop pay? ``zoo run --rank`` picks vs random picks on the demo data.

The demo's 120 images are split once: a fixed evaluation set (``--val-images``, 30) and a
pool (the other 90). Per seed: 20 pool images start labelled (seeded draw); each round
trains yolov8 detect with the demo's preset (YOLOv8n, 30 epochs, imgsz 160; batch 4
rather than 16, so 20 images get 5 optimiser steps an epoch, not 2) on the labelled
ones, scores it on the fixed evaluation set with zoo's evaluator, then labels 20 more —
either the top 20 of the run's own ``--rank`` ranking of the still-unlabelled pool images,
or 20 drawn at random. "Labelling" copies the image's demo annotation back (an oracle
annotator). The first round is shared by both strategies.

Each round's data folder is what a user would have: ``train/`` holding every pool image, a
labelme JSON beside only the labelled ones, and ``val/`` the evaluation images; ``zoo run``
trains on the annotated ones and ranks the rest.

Usage: .venv/bin/python bench/bench_active.py --seeds 0 1 --rounds 3 [--batch 4] [--out /tmp/active]
Prints one JSON line per run and a markdown table; writes active.json and active.png to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import time
from pathlib import Path

START = 20
STEP = 20


def build_round(src: Path, folder: Path, pool: list[str], labelled: set[str], val: list[str]) -> Path:
    """train/ (every pool image, JSON only for the labelled) and val/ under ``folder``."""
    for sub, names in (("train", pool), ("val", val)):
        (folder / sub).mkdir(parents=True)
        for name in names:
            shutil.copyfile(src / f"{name}.jpg", folder / sub / f"{name}.jpg")
            if sub == "val" or name in labelled:
                shutil.copyfile(src / f"{name}.json", folder / sub / f"{name}.json")
    if (src / "zoo.yaml").is_file():
        shutil.copyfile(src / "zoo.yaml", folder / "zoo.yaml")
    return folder


def train_and_score(data: Path, runs: Path, name: str, seed: int, rank: bool, epochs: int,
                    batch: int) -> tuple[float, float, list[str], float]:
    """AP, AP50, the unlabelled pool images most useful first (when ``rank``), fit seconds."""
    from zoo.pipeline.options import Output, Source, Training
    from zoo.pipeline.run import RunOptions, execute

    result = execute(RunOptions(task="detect", backend="yolov8", source=Source(data), quiet=True,
                                output=Output(out=runs, name=name, rank=rank, top=0),
                                # the demo preset, pinned (a copy of the demo gets no demo preset)
                                training=Training(flags={"device": "cpu", "epochs": epochs, "imgsz": 160, "batch": batch,
                                                         "seed": seed},
                                                  # one optimiser step per batch, as the preset does at its batch of 16
                                                  sets=["model=n", f"nbs={batch}"])))
    order = []
    if rank:
        with (result.run_dir / "ranking" / "ranking.csv").open(newline="") as f:
            order = [Path(row["image"]).stem for row in csv.DictReader(f)]
    fit = result.manifest.timings.fit or 0.0
    return result.metrics["AP"], result.metrics["AP50"], order, fit


def run_seed(src: Path, work: Path, seed: int, rounds: int, n_val: int, epochs: int,
             batch: int) -> list[dict]:
    names = sorted(p.stem for p in src.glob("*.json"))
    rng = random.Random(seed)
    shuffled = names[:]
    random.Random(1234).shuffle(shuffled)  # the evaluation set is the same for every seed
    val, pool = sorted(shuffled[:n_val]), sorted(shuffled[n_val:])
    start = set(rng.sample(pool, START))
    rows = []
    labelled = {"rank": set(start), "random": set(start)}
    rank_order: list[str] = []
    for k in range(rounds):
        for strategy in ("rank", "random"):
            if k == 0 and strategy == "random":  # the first round is shared
                rows.append({**rows[-1], "strategy": "random"})
                continue
            chosen = labelled[strategy]
            tag = f"s{seed}-{strategy}-{len(chosen)}"
            data = build_round(src, work / tag / "data", pool, chosen, val)
            t0 = time.perf_counter()
            ap, ap50, order, fit = train_and_score(data, work / tag / "runs", tag, seed, rank=(strategy == "rank"),
                                                   epochs=epochs, batch=batch)
            row = {"seed": seed, "strategy": strategy, "labelled": len(chosen), "AP": round(ap, 4),
                   "AP50": round(ap50, 4), "fit_s": round(fit, 1), "wall_s": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
            if strategy == "rank":
                rank_order = order
            shutil.rmtree(work / tag)  # keep the disk small: the numbers are in rows
        # label the next 20 of each strategy
        rest = {s: [n for n in pool if n not in labelled[s]] for s in labelled}
        labelled["rank"] |= set(rank_order[:STEP])
        labelled["random"] |= set(random.Random(seed * 1000 + k).sample(rest["random"], min(STEP, len(rest["random"]))))
    return rows


def table(rows: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    counts = sorted({r["labelled"] for r in rows})
    lines = ["| labelled | " + " | ".join(f"rank AP s{s}" for s in seeds) + " | rank mean | "
             + " | ".join(f"random AP s{s}" for s in seeds) + " | random mean |",
             "|---" * (2 * len(seeds) + 3) + "|"]
    for n in counts:
        cells = [str(n)]
        for strategy in ("rank", "random"):
            aps = [r["AP"] for r in rows if r["labelled"] == n and r["strategy"] == strategy]
            by_seed = {r["seed"]: r["AP"] for r in rows if r["labelled"] == n and r["strategy"] == strategy}
            cells += [f"{by_seed[s]:.3f}" if s in by_seed else "-" for s in seeds]
            cells.append(f"**{sum(aps) / len(aps):.3f}**" if aps else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for strategy, colour in (("rank", "tab:blue"), ("random", "tab:orange")):
        for s in sorted({r["seed"] for r in rows}):
            pts = sorted((r["labelled"], r["AP"]) for r in rows if r["strategy"] == strategy and r["seed"] == s)
            ax.plot(*zip(*pts), color=colour, alpha=0.35, marker=".")
        counts = sorted({r["labelled"] for r in rows})
        means = [sum(r["AP"] for r in rows if r["strategy"] == strategy and r["labelled"] == n)
                 / max(1, sum(1 for r in rows if r["strategy"] == strategy and r["labelled"] == n)) for n in counts]
        ax.plot(counts, means, color=colour, marker="o", label=f"{strategy} (mean)")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("AP (fixed evaluation set)")
    ax.set_title("yolov8 detect on the demo: --rank vs random")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--rounds", type=int, default=3, help="training rounds: 20, 40, 60, ... labelled images")
    ap.add_argument("--val-images", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("/tmp/zoo-bench-active"))
    ap.add_argument("--epochs", type=int, default=30, help="the demo preset's 30")
    ap.add_argument("--batch", type=int, default=4,
                    help="4 (the preset: 16): 20 images make 5 optimiser steps an epoch, not 2 (nbs follows)")
    args = ap.parse_args()
    from zoo.data.demo import write_demo

    args.out.mkdir(parents=True, exist_ok=True)
    src = args.out / "demo"
    if not src.is_dir():
        write_demo(src)
    rows = []
    results = args.out / "active.json"
    for seed in args.seeds:
        rows += run_seed(src, args.out / "work", seed, args.rounds, args.val_images, args.epochs, args.batch)
        results.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    plot(rows, args.out / "active.png")


if __name__ == "__main__":
    main()
