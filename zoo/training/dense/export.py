"""ONNX export of the letterboxed dense networks (every :class:`SegmentationBackend`: smp's,
MONAI's): the network alone is the graph; letterboxing, normalisation, cropping and
scaling the logits back and the argmax stay outside it, in :class:`SegmentationBackend`'s
``predict``, which runs unchanged on onnxruntime (:class:`zoo.training.onnx.OnnxNetwork`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.dataset import ImageRecord
from zoo.training.dense.samples import MEAN, STD, on_canvas
from zoo.training.onnx import export_module


def sample_batch(backend, sample: Sequence[ImageRecord]):
    """``sample``'s images letterboxed and normalised as ``predict`` feeds them (a blank
    canvas when there is none): what the graph is traced on and compared on."""
    import torch

    c = backend.config
    tensors = [on_canvas(r, c.imgsz, backend.side, c.keep_aspect, backend.deep_pixels)[1] for r in sample]
    return torch.stack(tensors) if tensors else torch.zeros(1, 3, backend.side, backend.side)


def export_segmentation(backend, out_dir: Path, *, opset: int | None, dynamic: bool,
                        sample: Sequence[ImageRecord]) -> dict[str, Any]:
    c = backend.config
    info = export_module(backend.model, sample_batch(backend, sample), out_dir / "model.onnx", opset=opset,
                         dynamic=dynamic)
    fit = ("scaled so that the longer side is imgsz (aspect kept), placed top-left on a zero canvas "
           f"of {backend.side} x {backend.side}" if c.keep_aspect else
           f"stretched to {c.imgsz} x {c.imgsz}, placed on a zero canvas of {backend.side} x {backend.side}")
    info["input"].update({
        "colour": "RGB, channels first", "imgsz": c.imgsz, "canvas": backend.side, "fit": fit,
        "intensity": "uint8 pixels (0-255); x = (pixel - mean) / std per channel",
        "mean": [round(float(v), 4) for v in MEAN], "std": [round(float(v), 4) for v in STD],
        **({"dynamic": f"height and width free: multiples of the network's stride, {backend._canvas()[0]}"}
           if dynamic else {}),
    })
    info["output"]["meaning"] = "logits per class, background first (class i at channel i + 1)"
    info["postprocess"] = ("outside the graph: crop the canvas to the scaled image, resize the logits bilinearly "
                           "(align_corners=False) to the original size, argmax over channels")
    return info
