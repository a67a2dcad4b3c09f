"""ONNX export of ``yolact`` (no deformable convolutions, no mask re-scoring): the network up
to its raw outputs is the graph; decoding the boxes against the anchors, Fast NMS, mask
assembly ``sigmoid(P C^T)``, cropping and scaling back stay outside it, in the backend's own
``predict`` (:func:`zoo.plugins.yolact.inference.detect`), which runs unchanged on
onnxruntime through :class:`OnnxYolact`: only the network is swapped, so the two engines'
predictions differ only by the graph's raw parity.

The anchors are a constant output of the graph (they depend only on ``imgsz`` and the
anchor sizes the checkpoint carries), so a user without zoo has everything to decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.training.onnx import StandIn

#: the graph's outputs, in order (anchors: a constant of the graph)
OUTPUTS = ["conf", "loc", "coef", "proto", "anchors"]
INPUT = "images"


def export_yolact(backend, out_dir: Path, *, opset: int | None, batch, mean: Sequence[float],
                  std: Sequence[float]) -> dict[str, Any]:
    """Write ``backend``'s trained network as ``out_dir/model.onnx`` (traced and compared on
    ``batch``: a few val images stretched and normalised as ``predict`` feeds them) and
    describe it for ``model.json``."""
    import warnings

    import torch

    from zoo.errors import ZooError
    from zoo.training.onnx import DEFAULT_OPSET, OnnxNetwork, raw_parity, require_onnx

    onnx, _ = require_onnx()
    opset = opset or DEFAULT_OPSET
    c = backend.config
    x = batch
    wrapped = _RawOutputs(backend.model.to("cpu").eval(), x)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    batch_axes = {INPUT: {0: "batch"}, **{n: {0: "batch"} for n in OUTPUTS[:4]}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes are torch's business, not the user's
            torch.onnx.export(wrapped, (x,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT],
                              output_names=OUTPUTS, dynamic_axes=batch_axes)
            expected = [t.numpy() for t in wrapped(x)]
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:  # an op ONNX cannot hold
        path.unlink(missing_ok=True)
        raise ZooError(f"ONNX export failed: {str(e).strip().splitlines()[0]}") from None
    onnx.checker.check_model(str(path))
    got = OnnxNetwork(path).run_all(x.numpy())
    net = backend.model
    return {
        "opset": opset,
        "input": {"name": INPUT, "shape": ["batch", 3, c.imgsz, c.imgsz], "colour": "RGB, channels first",
                  "imgsz": c.imgsz, "fit": f"stretched to {c.imgsz} x {c.imgsz} (bilinear; aspect not kept)",
                  "intensity": "x = (pixel / 255 - mean) / std per channel",
                  "mean": list(mean), "std": list(std)},
        "output": {"names": OUTPUTS, "meaning": (
            "per anchor N: conf (batch, N, classes + 1) logits, background first; loc (batch, N, 4) SSD offsets "
            "(dx, dy, dw, dh); coef (batch, N, k) mask coefficients (after tanh); proto (batch, h, w, k) "
            "prototypes; anchors (N, 4) normalised (cx, cy, w, h), a constant")},
        "anchors": {"sizes_px": [round(float(s), 3) for s in net.anchor_sizes.tolist()], "scales": list(net.scales),
                    "aspect_ratios": list(net.ratios), "order": "level P3..P7, row, column, anchor"},
        "postprocess": (
            "outside the graph (zoo's yolact inference, the same code as torch's): softmax over conf, drop "
            "background; boxes = decode(loc, anchors) with variances (0.1, 0.2): centre = a_c + 0.1 d_c a_wh, "
            "size = a_wh exp(0.2 d_wh), as normalised (x0, y0, x1, y1); candidates with a class score above "
            f"score_threshold; {c.nms} NMS per class (IoU {c.nms_iou}, top_k {c.top_k}); the best "
            f"max_detections; mask = sigmoid(proto . coef), resized bilinearly to the image, zeroed outside its "
            f"box, kept above mask_threshold; boxes times the image's width and height"),
        "thresholds": {"score_threshold": c.score_threshold, "nms": c.nms, "nms_iou": c.nms_iou, "top_k": c.top_k,
                       "max_detections": c.max_detections, "mask_threshold": c.mask_threshold},
        "raw_parity": raw_parity(expected, got).to_dict(),
    }


def _RawOutputs(net, example):
    """``net`` returning its raw outputs as a tuple, with the anchors for ``example``'s size
    as a constant last output (a module built here: torch is imported only when exporting)."""
    import torch

    with torch.no_grad():
        anchors = net.anchors(net(example)).detach().clone()

    class RawOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("anchors", anchors)

        def forward(self, images):
            out = self.net(images)
            return out["conf"], out["loc"], out["coef"], out["proto"], self.anchors

    return RawOutputs().eval()


class OnnxYolact(StandIn):
    """The exported graph called as :class:`~zoo.plugins.yolact.model.YolactNet` is by
    ``predict``: ``net(x)`` -> the dict of raw outputs, ``net.anchors(out)``, no re-scoring."""

    maskiou = None  # the export refuses a model with mask re-scoring

    def __init__(self, path: Path, device: str = "cpu"):
        from zoo.training.onnx import OnnxNetwork

        self.graph = OnnxNetwork(path, device)

    def __call__(self, x) -> dict:
        import torch

        got = self.graph.run_all(x.detach().cpu().float().numpy())
        return {name: torch.from_numpy(v).to(x.device) for name, v in zip(OUTPUTS, got)}

    def anchors(self, out: dict):
        return out["anchors"]
