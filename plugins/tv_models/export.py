"""ONNX export of the torchvision classifiers: the network is the graph; resizing and
ImageNet normalisation before it, and the softmax after it, stay in the backend's
``predict``, which runs unchanged on onnxruntime (:class:`zoo.training.onnx.OnnxNetwork`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.training.onnx import StandIn



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


#: the outputs of one image, in the graph's order, per model kind (torchvision's dict keys)
RCNN_OUTPUTS = {"faster": ["boxes", "labels", "scores"], "mask": ["boxes", "labels", "scores", "masks"],
                "keypoint": ["boxes", "labels", "scores", "keypoints", "keypoints_scores"]}


def export_rcnn(backend, out_dir: Path, *, opset: int | None, dynamic: bool, images) -> dict[str, Any]:
    """torchvision's R-CNN as one graph per image: the resize to ``min_size`` / ``max_size``,
    normalisation, RPN, RoI heads and NMS inside (torchvision's own ONNX support, opset 11+);
    ``images``: one or two val images as ``predict`` feeds them (``(3, H, W)`` 0-1 tensors).
    Height and width are always free (the R-CNN resizes inside)."""
    import warnings

    import torch

    from zoo.errors import ZooError
    from zoo.training.onnx import OnnxNetwork, raw_parity, require_onnx

    onnx, _ = require_onnx()
    opset = opset or 17
    if opset < 11:
        raise ZooError(f"--opset {opset}: torchvision's R-CNNs export from opset 11")
    names = RCNN_OUTPUTS[backend._model_kind()]
    model = backend.model.to("cpu").eval()

    class OneImage(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            out = self.net([image])[0]
            return tuple(out[k] for k in names)

    wrapped = OneImage(model).eval()
    path = out_dir / "model.onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    example = images[0]
    axes = {"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in names}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=names, dynamic_axes=axes)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:
        path.unlink(missing_ok=True)
        raise ZooError(f"ONNX export failed: {str(e).strip().splitlines()[0]}") from None
    onnx.checker.check_model(str(path))
    graph = OnnxNetwork(path)
    compared = images[1] if len(images) > 1 else example  # another size than the traced one
    with torch.no_grad():
        expected = [t.numpy() for t in wrapped(compared)]
    got = graph.session.run(None, {"image": compared.numpy()})
    c = backend.config
    return {
        "opset": opset,
        "input": {"name": "image", "shape": [3, "height", "width"], "colour": "RGB, channels first",
                  "imgsz": c.imgsz, "fit": f"the image scaled by {c.imgsz} / its longer side (aspect kept); the "
                  "graph resizes again to the model's min_size / max_size", "intensity": "x = pixel / 255 (the "
                  "graph then normalises with ImageNet's mean and std inside)", "mean": [0, 0, 0], "std": [1, 1, 1]},
        "output": {"names": names, "meaning": "one image's detections after NMS: boxes (x0, y0, x1, y1) in input "
                   "pixels, labels (category i + 1; 0 background), scores, masks (N, 1, h, w) probabilities, "
                   "keypoints (N, K, 3) and their logits"},
        "postprocess": "outside the graph: boxes and keypoints divided by the input scale, masks resized to the "
                       "image and thresholded (mask_threshold), keypoint scores through a sigmoid",
        "raw_parity": raw_parity(expected, got).to_dict() if len(expected) == len(got) and all(
            np.shape(e) == np.shape(g) for e, g in zip(expected, got)) else {
            "max_abs_diff": float("nan"), "max_abs_torch": 0.0, "tolerance": 0.0, "ok": False,
            "rule": "the graph found another number of detections than torch"},
    }


class OnnxRCNN(StandIn):
    """An exported R-CNN called as torchvision's: a list of ``(3, H, W)`` tensors in, a list
    of dicts of tensors out, one image per session run."""

    def __init__(self, path: Path, device: str, names: list[str]):
        from zoo.training.onnx import OnnxNetwork

        self.graph = OnnxNetwork(path, device)
        self.names = names

    def __call__(self, images):
        import torch

        outs = []
        for image in images:
            got = self.graph.session.run(None, {"image": image.detach().cpu().float().numpy()})
            outs.append({k: torch.from_numpy(v) for k, v in zip(self.names, got)})
        return outs
