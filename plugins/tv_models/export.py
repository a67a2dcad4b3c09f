"""ONNX export of the torchvision classifiers: the network is the graph; resizing and
ImageNet normalisation before it, and the softmax after it, stay in the backend's
``predict``, which runs unchanged on onnxruntime (:class:`zoo.training.onnx.OnnxNetwork`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.dataset import ImageRecord


def export_classifier(backend, out_dir: Path, *, opset: int | None, dynamic: bool,
                      sample: Sequence[ImageRecord]) -> dict[str, Any]:
    import torch

    from zoo.plugins.tv_models.classifiers import MEAN, STD, transforms
    from zoo.training.onnx import export_module

    c = backend.config
    tf = transforms(c, train=False)
    batch = torch.stack([tf(r.open()) for r in sample]) if sample else torch.zeros(1, 3, c.imgsz, c.imgsz)
    info = export_module(backend.model, batch, out_dir / "model.onnx", opset=opset, dynamic=dynamic)
    info["input"].update({
        "colour": "RGB, channels first", "imgsz": c.imgsz,
        "fit": f"resized to {c.imgsz} x {c.imgsz} (bilinear, antialiased; aspect not kept)",
        "intensity": "x = (pixel / 255 - mean) / std per channel",
        "mean": list(MEAN), "std": list(STD),
    })
    info["output"]["meaning"] = "logits per class, in the order of 'classes'"
    info["postprocess"] = "outside the graph: softmax over the logits; the label is the argmax"
    return info
