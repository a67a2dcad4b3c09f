"""Defaults that fit the user's data: ``imgsz: auto`` and ``epochs: auto``.

A value left at ``auto`` (the default of every backend) is chosen here from the dataset, after
it is read, and recorded as a :class:`Choice` with its reason in the manifest and the report.
Anything the user set (a flag, ``--set``, a ``--config`` file) or a shipped YAML fixed wins:
this module only fills what is still ``auto``.

The rules (stated in ``zoo run --help`` and the README too):

* **imgsz** -- start from the images' median longer side, capped by the device (``Task.imgsz_caps``:
  416 px on a CPU, 1024 on a GPU for the object tasks; a CPU cannot train 1000-px detectors in a
  sitting). Then, if the 10th-percentile instance (its shorter box side) would be under
  :data:`SMALL_OBJECT_PX` at that size, raise the size until it is not, up to the task's ceiling
  (``Task.imgsz_ceilings``). Round up to the backend's stride (``Backend.stride``).
* **epochs** -- enough optimiser steps for a model from scratch to get going
  (``Backend.auto_steps``, 300 by default), i.e. ``ceil(auto_steps / steps_per_epoch)``, never
  fewer than ``Backend.auto_min_epochs`` (30) nor more than :data:`MAX_EPOCHS`. Small datasets get
  many epochs of few steps; large ones the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.dataset import Dataset

#: An instance whose shorter side is under this many pixels at the training size is hard for
#: the usual stride-8 heads to learn (YOLOv8's P3 cell is 8 px; torchvision's FPN anchors start at
#: 32 px scaled to imgsz / 800).
SMALL_OBJECT_PX = 12
#: Shorter than this at the chosen size, an instance is practically invisible: a warning per class.
VANISHING_PX = 4
MAX_EPOCHS = 300
AUTO = "auto"


@dataclass(frozen=True)
class Choice:
    """A value zoo chose for the user, and why (shown on screen, in the manifest and report)."""

    key: str
    value: int
    reason: str

    def __str__(self) -> str:
        return f"{self.key} {self.value}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason}


def round_to_stride(size: float, stride: int) -> int:
    return max(stride, int(math.ceil(size / stride)) * stride)


def median_long_side(dataset: Dataset) -> int:
    sides = [max(r.width, r.height) for r in dataset.images if r.width and r.height]
    return int(np.median(sides)) if sides else 0


def instance_scales(dataset: Dataset) -> tuple[np.ndarray, list[int]]:
    """Each labelled instance's shorter box side as a fraction of its image's longer side,
    and its category. Fractions make the size at any ``imgsz`` one multiplication away."""
    fractions, cats = [], []
    for r in dataset.images:
        long_side = max(r.width, r.height)
        if not long_side:
            continue
        for inst in r.instances:
            if inst.ignore:
                continue
            x0, y0, x1, y1 = inst.bbox
            fractions.append(max(0.0, min(x1 - x0, y1 - y0)) / long_side)
            cats.append(inst.category)
    return np.asarray(fractions, dtype=float), cats


def choose_imgsz(dataset: Dataset, *, stride: int, caps: tuple[int, int], on_gpu: bool) -> Choice:
    """The training size for this data on this device (see the module doc for the rule).

    ``caps`` is ``(cap, ceiling)`` for the device: the size used when objects allow it, and the
    most that small objects may raise it to.
    """
    cap, ceiling = caps
    device = "GPU" if on_gpu else "CPU"
    median = median_long_side(dataset)
    if median == 0:
        return Choice("imgsz", round_to_stride(cap, stride), f"no image sizes known; the {device} cap {cap}")
    size = min(median, cap)
    reason = f"median image {median} px" + (f", capped at {cap} on {device}" if median > cap else "")
    fractions, _ = instance_scales(dataset)
    if len(fractions):
        p10 = float(np.percentile(fractions, 10))
        at_size = p10 * size
        if 0 < at_size < SMALL_OBJECT_PX:
            needed = SMALL_OBJECT_PX / p10
            raised = min(needed, max(ceiling, size))
            reason += (f"; raised to {round_to_stride(raised, stride)} so the smallest 10% of "
                       f"instances ({p10 * median:.0f} px in the image) keep >= {SMALL_OBJECT_PX} px"
                       + ("" if raised >= needed else f" as far as the {device} ceiling {ceiling} allows"))
            size = raised
        else:
            reason += f", 10% of instances under {p10 * median:.0f} px"
    return Choice("imgsz", round_to_stride(size, stride), reason)


def choose_epochs(n_train: int, batch: int, *, steps: int, min_epochs: int) -> Choice:
    """Epochs giving at least ``steps`` optimiser steps (see the module doc for the rule)."""
    per_epoch = max(1, math.ceil(n_train / max(1, batch)))
    wanted = math.ceil(steps / per_epoch)
    epochs = min(MAX_EPOCHS, max(min_epochs, wanted))
    bound = " (the floor)" if epochs == min_epochs and wanted < min_epochs else (
        f" (the ceiling {MAX_EPOCHS})" if epochs == MAX_EPOCHS and wanted > MAX_EPOCHS else "")
    return Choice(
        "epochs", epochs,
        f"{n_train} training images at batch {batch} = {per_epoch} step(s) per epoch; "
        f"{steps} steps wanted, at least {min_epochs} epochs{bound}",
    )


def vanishing_instances(dataset: Dataset, imgsz: int) -> dict[str, int]:
    """Per category, how many instances fall under :data:`VANISHING_PX` at ``imgsz``."""
    fractions, cats = instance_scales(dataset)
    counts: dict[str, int] = {}
    for frac, cat in zip(fractions, cats):
        if frac * imgsz < VANISHING_PX and 0 <= cat < len(dataset.categories):
            name = dataset.categories[cat]
            counts[name] = counts.get(name, 0) + 1
    return counts


def fill_auto(config, backend_cls, task, train: Dataset, device: str):
    """``config`` with every ``auto`` value chosen from the training images, and the choices.

    Only the training split is looked at: nothing about the model's settings may depend on the
    images it is scored on. ``backend_cls`` gives the stride and the steps rule, ``task`` the
    device caps, ``device`` ("cpu", "cuda:0", ...) which caps apply.
    """
    on_gpu = not str(device).startswith("cpu")
    choices: list[Choice] = []
    if getattr(config, "imgsz", None) == AUTO and getattr(backend_cls, "uses_imgsz", True):
        caps = task.imgsz_caps["gpu" if on_gpu else "cpu"]
        choices.append(choose_imgsz(train, stride=backend_cls.stride, caps=caps, on_gpu=on_gpu))
    if getattr(config, "epochs", None) == AUTO:
        choices.append(choose_epochs(len(train), getattr(config, "batch", 16),
                                     steps=backend_cls.auto_steps, min_epochs=backend_cls.auto_min_epochs))
    update = {c.key: c.value for c in choices}
    return (config.model_copy(update=update) if update else config), choices
