"""ONNX export of the torchvision classifiers: the network is the graph; resizing and
ImageNet normalisation before it, and the softmax after it, stay in the backend's
``predict``, which runs unchanged on onnxruntime (:class:`zoo.training.onnx.OnnxNetwork`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any



def export_classifier(backend, out_dir: Path, *, opset: int | None, dynamic: bool, batch,
                      mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """``batch``: a few val images as the backend's ``predict`` feeds them (traced, compared)."""
    from zoo.training.onnx import export_module

    c = backend.config
    info = export_module(backend.model, batch, out_dir / "model.onnx", opset=opset, dynamic=dynamic)
    info["input"].update({
        "colour": "RGB, channels first", "imgsz": c.imgsz,
        "fit": f"resized to {c.imgsz} x {c.imgsz} (bilinear, antialiased; aspect not kept)",
        "intensity": "x = (pixel / 255 - mean) / std per channel",
        "mean": list(mean), "std": list(std),
    })
    info["output"]["meaning"] = "logits per class, in the order of 'classes'"
    info["postprocess"] = "outside the graph: softmax over the logits; the label is the argmax"
    return info
