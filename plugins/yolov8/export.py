"""ONNX export of yolov8 through ultralytics' own exporter (``YOLO.export(format="onnx")``),
and prediction from that file through ultralytics' own ONNX runtime path (``YOLO("model.onnx")``:
its AutoBackend runs onnxruntime), so letterboxing, NMS and mask pasting are ultralytics'
on both engines.

The graph is the network up to its raw head outputs (``nms=False``): boxes, class scores,
mask coefficients and prototypes, keypoints; NMS and everything after it run outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.dataset import ImageRecord

_POST = {
    "detect": "outside the graph: confidence filter, NMS (ultralytics' non_max_suppression), boxes scaled back "
              "from the letterbox to the image",
    "instance-seg": "outside the graph: confidence filter, NMS, mask = sigmoid(coefficients . prototypes) cropped "
                    "to the box and scaled back to the image",
    "semantic-seg": "outside the graph: as instance-seg, then the confident masks painted into a label map "
                    "(semantic_conf)",
    "keypoint": "outside the graph: confidence filter, NMS, boxes and keypoints scaled back to the image",
    "classify": "outside the graph: none (the graph ends in the softmax); the label is the argmax, class order "
                "of ultralytics' class folders (names in the ONNX metadata)",
}


def letterboxed_sample(sample: Sequence[ImageRecord], imgsz: int):
    """``sample`` as ultralytics' ONNX predictor feeds it: letterboxed to ``imgsz`` square
    (grey 114 padding), RGB, 0-1, channels first (a grey canvas when there is none)."""
    import numpy as np
    import torch
    from ultralytics.data.augment import LetterBox

    box = LetterBox((imgsz, imgsz), auto=False)
    arrays = [box(image=r.load_rgb()) for r in sample] or [
        np.full((imgsz, imgsz, 3), 114, np.uint8)]
    x = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / 255
    return torch.from_numpy(np.ascontiguousarray(x))


def export_yolo(backend, out_dir: Path, *, opset: int | None, dynamic: bool,
                sample: Sequence[ImageRecord]) -> dict[str, Any]:
    import torch

    from zoo.errors import ZooError
    from zoo.training.onnx import OnnxNetwork, raw_parity, require_onnx

    require_onnx()
    c = backend.config
    model = backend._loaded()
    out_dir.mkdir(parents=True, exist_ok=True)
    # ultralytics writes the .onnx beside the file the network came from: here, zoo's out_dir
    model.model.pt_path = str(out_dir / "model.pt")
    try:
        written = Path(model.export(format="onnx", imgsz=c.imgsz, opset=opset, dynamic=dynamic, simplify=False,
                                    nms=False, half=False, device="cpu", batch=1))
    except (AssertionError, RuntimeError, ValueError) as e:
        raise ZooError(f"ultralytics' ONNX export failed: {str(e).strip().splitlines()[0]}") from None
    if written != out_dir / "model.onnx":
        written.replace(out_dir / "model.onnx")
    x = letterboxed_sample(sample, c.imgsz)
    with torch.no_grad():
        y = model.model.float().eval()(x)
    # eval mode returns (what the graph outputs, the head's internals): output0, and for
    # instance-seg output0 with the mask prototypes (output1)
    first = y[0] if isinstance(y, (list, tuple)) else y
    expected = [t.numpy() for t in (first if isinstance(first, (list, tuple)) else [first])]
    got = OnnxNetwork(out_dir / "model.onnx").run_all(x.numpy())
    graph_in = ["batch" if dynamic else 1, 3, "height" if dynamic else c.imgsz, "width" if dynamic else c.imgsz]
    return {
        "opset": opset or "ultralytics' choice",
        "exporter": "ultralytics YOLO.export(format='onnx', nms=False, simplify=False)",
        "input": {"name": "images", "shape": graph_in, "colour": "RGB, channels first", "imgsz": c.imgsz,
                  "fit": f"letterboxed to {c.imgsz} x {c.imgsz} (aspect kept, centred, grey 114 padding)",
                  "intensity": "x = pixel / 255", "mean": [0, 0, 0], "std": [1, 1, 1]},
        "output": {"name": "output0", "meaning": "ultralytics' raw head output (first output; instance-seg: "
                   "output1 holds the mask prototypes)"},
        "postprocess": _POST[backend.task.name],
        "thresholds": {"conf": c.conf, "iou": c.iou, "max_det": c.max_det},
        "raw_parity": raw_parity(expected, got).to_dict(),
    }
