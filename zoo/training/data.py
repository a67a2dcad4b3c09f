"""Training data: samples, batches, per-epoch loaders (seeded, split across ranks), and
prediction batches."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.lifetime import die_with_parent
from zoo.progress import track
from zoo.training.config import TrainConfig
from zoo.training.distributed import initialised, world


class MappedDataset:
    """A map-style dataset for ``torch.utils.data.DataLoader``: ``fn(items[i])``.

    ``fn`` turns one item (usually an :class:`~zoo.dataset.ImageRecord`) into one training
    sample, e.g. ``(image_tensor, target)``; it runs in the loader workers when
    ``workers > 0``, so it must be picklable then (a module-level function or a
    :func:`functools.partial`, not a lambda).
    """

    def __init__(self, items: Sequence[Any], fn: Callable[[Any], Any]):
        self.items = list(items)
        self.fn = fn

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.fn(self.items[index])


def collate_lists(batch: list[Any]) -> tuple:
    """Samples ``(a, b, ...)`` -> ``([a...], [b...], ...)``: for images of different sizes
    (torchvision detection models take a list of images and a list of target dicts)."""
    return tuple(list(part) for part in zip(*batch))


def to_device(obj: Any, device: Any, *, channels_last: bool = False) -> Any:
    """Tensors anywhere in nested lists / tuples / dicts moved to ``device``; with
    ``channels_last``, 4-d floating-point ones (image batches) in that memory format."""
    import torch

    if isinstance(obj, torch.Tensor):
        if channels_last and obj.ndim == 4 and obj.is_floating_point():
            return obj.to(device, memory_format=torch.channels_last, non_blocking=True)
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, channels_last=channels_last) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, channels_last=channels_last) for v in obj)
    return obj


def _is_samples(data: Any) -> bool:
    """Whether ``data`` holds samples to batch here (else it already yields batches)."""
    from torch.utils.data import Dataset as TorchDataset

    return isinstance(data, (MappedDataset, TorchDataset))


def epoch_loader(data: Any, s: TrainConfig, collate: Callable | None, epoch: int):
    """A DataLoader over ``data`` shuffled by ``seed + epoch``; other iterables as they are.

    Under a launcher with several processes (zoo.training.distributed) each rank gets its own part of
    the epoch's order (DistributedSampler, seeded the same way): the parts are disjoint and
    together the whole epoch (the last few samples repeat when the ranks don't divide it)."""
    import torch
    from torch.utils.data import DataLoader

    if not _is_samples(data):
        return data
    order: dict[str, Any] = {}
    if initialised():
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(data, shuffle=True, seed=s.seed)
        sampler.set_epoch(epoch)
        order["sampler"] = sampler
    else:
        g = torch.Generator()
        g.manual_seed(s.seed + epoch)
        order.update(shuffle=True, generator=g)
    return DataLoader(
        _SeenLog.wrap(data, epoch),
        batch_size=s.batch,
        collate_fn=collate,
        num_workers=s.workers,
        persistent_workers=False,
        # killed with zoo at once (torch's own watchdog notices a dead parent only every 5 s)
        worker_init_fn=functools.partial(_die_with, os.getpid()) if s.workers else None,
        drop_last=_drops_last(_rank_share(len(data)), s),
        **order,
    )


def _die_with(parent: int, worker_id: int) -> None:
    die_with_parent(parent=parent)


def _rank_share(n: int) -> int:
    """How many of ``n`` samples one rank sees per epoch (DistributedSampler pads to even parts)."""
    return math.ceil(n / world().size) if initialised() else n


def _drops_last(n: int, s: TrainConfig) -> bool:
    return n > s.batch and n % s.batch == 1  # a 1-sample batch breaks BatchNorm


def iters_per_epoch(data: Any, s: TrainConfig) -> int | None:
    try:
        n = len(data)
    except TypeError:
        return None
    if not _is_samples(data):
        return n
    n = _rank_share(n)
    return n // s.batch if _drops_last(n, s) else math.ceil(n / s.batch)


class _SeenLog:
    """With ``ZOO_DEBUG_SEEN=<folder>``: the ids of the samples this rank loaded, per epoch,
    appended to ``<folder>/seen-rank<R>.jsonl`` (how tests see that ranks split an epoch).
    Off (the data as it is) without the variable; in-process loading only (workers=0)."""

    def __init__(self, data: Any, epoch: int, path: Path):
        self.data, self.epoch, self.path, self.ids = data, epoch, path, []

    @classmethod
    def wrap(cls, data: Any, epoch: int) -> Any:
        folder = os.environ.get("ZOO_DEBUG_SEEN")
        if not folder:
            return data
        return cls(data, epoch, Path(folder) / f"seen-rank{world().rank}.jsonl")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        items = getattr(self.data, "items", None)
        self.ids.append(str(getattr(items[index], "id", index)) if items is not None else int(index))
        return self.data[index]

    def flush(self) -> None:
        import json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"epoch": self.epoch, "ids": self.ids}) + "\n")


def predict_batches(items: Sequence[Any], batch: int, description: str = "predict") -> Iterable[list[Any]]:
    """``items`` in consecutive lists of ``batch`` (the last may be shorter), with a progress bar."""
    chunks = [list(items[i : i + batch]) for i in range(0, len(items), max(batch, 1))]
    return track(chunks, description, total=len(chunks))
