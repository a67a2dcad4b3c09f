"""Training throughput on a CPU: zoo's shared loop (pixels decoded once, channels_last, bf16
autocast where the CPU has it natively, threads = physical cores) against a plain smp +
PyTorch script that decodes every image with PIL on every step, as smp's README trains.

    .venv/bin/python bench/bench_train_speed.py [--steps 4] [--rounds 2] [--imgsz 160]

Arms, interleaved round by round in one process (the machine may be shared: read ratios):

- ``plain``: a torch Dataset that opens the image file with PIL and draws the label map
  (zoo's rasteriser, the same work a mask PNG decode costs) in ``__getitem__``; fp32,
  contiguous memory, torch's default threads; same Unet(resnet18), AdamW, Dice + CE.
- ``zoo fp32, loop optimiser``: ``zoo.training.fit`` as the unet backend calls it, with
  ``amp=false`` and the optimiser stepping one tensor at a time (torch's CPU default, zoo's
  before its fused optimiser).
- ``zoo fp32``: the same with zoo's fused optimiser (one kernel over all parameters).
- ``zoo bf16``: the same with ``amp`` on (bf16 autocast when ``zoo.training.cpu`` finds
  native bf16, else this arm is fp32 too and says so).

images/s = steps x batch / seconds of those steps (the first step of each arm in a round is
a warm-up, not timed), in wall-clock seconds and in the process's CPU seconds (all its
threads; on a machine shared with other jobs the CPU seconds move less with their load).
zoo's one-off decoding before its first epoch is timed separately.

``--cache-scale`` instead measures the pixel cache's memory against the image count: the
process's resident memory after filling a cache of N letterboxed 48-px pairs, with the
in-memory share set to 4 MB so that larger sets go to the mapped file.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


class PlainSamples:
    """What a hand-written script does per item: decode the file, draw the labels, tensors."""

    def __init__(self, records, meta):
        self.records, self.meta = records, meta

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        import numpy as np
        import torch
        from PIL import Image

        from zoo.data.raster import semantic_label_map
        from zoo.training.dense.samples import to_tensor

        r = self.records[i]
        rgb = np.asarray(Image.open(r.file).convert("RGB"))
        labels = semantic_label_map(r, self.meta)
        return to_tensor(rgb), torch.from_numpy(labels.astype(np.int64))


class Clock:
    """Wall-clock and process CPU seconds since it was started."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _loss():
    import segmentation_models_pytorch as smp
    import torch.nn.functional as F

    dice = smp.losses.DiceLoss("multiclass", from_logits=True, ignore_index=255)
    return lambda out, y: F.cross_entropy(out, y, ignore_index=255) + dice(out, y)


def plain_seconds(train, meta, steps: int, batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``steps`` steps of the plain script (after one warm-up step)."""
    import torch
    from torch.utils.data import DataLoader

    from zoo.plugins.smp.models import build_model

    torch.manual_seed(0)
    model = build_model("Unet", encoder="resnet18", classes=len(meta.categories) + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = _loss()
    loader = iter(DataLoader(PlainSamples(train.images, meta), batch_size=batch, shuffle=True))
    model.train()
    clock = None
    for k in range(steps + 1):
        if k == 1:
            clock = Clock()
        x, y = next(loader)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clock.read()


def zoo_seconds(train, meta, steps: int, batch: int, imgsz: int, amp: bool,
                fused: bool = True) -> tuple[tuple[float, float], float, str]:
    """(wall, CPU) seconds of ``steps`` steps of zoo's shared loop as the unet backend runs it (the
    one-off decoding and a warm-up step not counted), the decoding's seconds, the precision.
    ``fused=False``: the optimiser as before issue 30's second part, torch's per-tensor loop."""
    import torch

    from zoo.training import optim
    from zoo.training.dense.samples import SegmentationSamples
    from zoo.training.dense.loss import SegmentationLoss
    from zoo.plugins.smp.models import build_model
    from zoo.training import MappedDataset, TrainConfig, fit
    from zoo.training.cpu import compute_plan

    torch.manual_seed(0)
    model = build_model("Unet", encoder="resnet18", classes=len(meta.categories) + 1)
    samples = SegmentationSamples(meta, imgsz, imgsz, True, flip=True)
    t = time.perf_counter()
    samples.decode_once(train.images, None)
    decode = time.perf_counter() - t
    criterion = SegmentationLoss("dice+ce")
    cfg = TrainConfig(epochs=1, batch=batch, lr=3e-3, optimizer="adamw", warmup_iters=0, amp=amp)

    def loss_fn(m, b):
        return criterion(m(b[0]), b[1])

    data = MappedDataset(train.images, samples)
    kw = dict(config=cfg, loss_fn=loss_fn, bf16=True, channels_last=True, resume=False)
    unfused, optim._fused = optim._fused, (optim._fused if fused else lambda params: {})
    try:
        fit(model, data, max_iters=1, **kw)  # warm-up: oneDNN's kernels for this layout and precision
        clock = Clock()
        fit(model, data, max_iters=steps, **kw)
    finally:
        optim._fused = unfused
    precision = compute_plan("cpu", amp=amp, bf16=True).precision
    return clock.read(), decode, precision


def throughput(args) -> dict:
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    with tempfile.TemporaryDirectory() as tmp:
        write_demo(Path(tmp) / "demo")
        data = read_dataset(Path(tmp) / "demo", "auto")
        train = data.subset([r.id for r in data.images[:96]])  # the demo run's training share
        rows: dict[str, list[tuple[float, float]]] = {"plain": [], "zoo fp32, loop optimiser": [], "zoo fp32": [],
                                                      "zoo bf16": []}
        decode, precision = [], ""
        for r in range(args.rounds):
            rows["plain"].append(plain_seconds(train, data, args.steps, args.batch))
            s, _, _ = zoo_seconds(train, data, args.steps, args.batch, args.imgsz, amp=False, fused=False)
            rows["zoo fp32, loop optimiser"].append(s)
            s, d, _ = zoo_seconds(train, data, args.steps, args.batch, args.imgsz, amp=False)
            rows["zoo fp32"].append(s)
            s, d, precision = zoo_seconds(train, data, args.steps, args.batch, args.imgsz, amp=True)
            rows["zoo bf16"].append(s)
            decode.append(d)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.1f} s ({v[-1][1]:.1f} CPU s)"
                                                  for k, v in rows.items()), flush=True)
    n = args.steps * args.batch
    out: dict = {"zoo bf16 precision": precision, "decode_once_s": round(sum(decode) / len(decode), 2)}
    for i, clock in enumerate(("wall", "cpu")):
        ips = {k: n * len(v) / sum(x[i] for x in v) for k, v in rows.items()}
        out[f"images_per_{clock}_s"] = {k: round(v, 3) for k, v in ips.items()}
        out[f"ratio_vs_plain_{clock}"] = {k: round(v / ips["plain"], 2) for k, v in ips.items()}
    out["seconds"] = {k: [[round(a, 2), round(b, 2)] for a, b in v] for k, v in rows.items()}
    return out


def cache_scale(args) -> dict:
    """Resident memory after filling a cache of N letterboxed 48-px pairs (4 MB in memory)."""
    import gc

    import numpy as np

    from zoo.training.cache import PixelCache

    class Record:
        def __init__(self, i):
            self.id, self.file = f"im{i}", None

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

    def make(record):
        k = int(record.id[2:])
        return np.full((48, 48, 3), k % 251, np.uint8), np.full((48, 48), k % 4, np.uint8)

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (250, 1000, 4000, 16000):
            gc.collect()
            before = rss()
            cache = PixelCache(f"n{n}", Path(tmp), {"n": n}, memory_bytes=4 << 20).fill(
                [Record(i) for i in range(n)], make)
            for i in range(0, n, 7):
                cache.get(f"im{i}")  # touch it as an epoch does
            out[n] = {"where": cache.summary()["where"], "cache_bytes": cache.nbytes,
                      "rss_growth_mb": round((rss() - before) / 2**20, 1)}
            print(n, out[n], flush=True)
            del cache
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for every arm (0: zoo's own choice, torch's default for plain); "
                        "1 keeps OpenMP from spinning on a machine shared with other jobs")
    p.add_argument("--cache-scale", action="store_true")
    args = p.parse_args()
    import os

    import torch

    if args.threads:
        os.environ["ZOO_THREADS"] = str(args.threads)  # zoo.training.cpu: this process's share
        torch.set_num_threads(args.threads)

    result = cache_scale(args) if args.cache_scale else throughput(args)
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                         "threads": torch.get_num_threads()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
