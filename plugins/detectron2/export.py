"""ONNX export of the detectron2 backends through detectron2's own tracing export
(:class:`detectron2.export.TracingAdapter`, as its ``tools/deploy/export_model.py`` does): the
graph takes one image as the test-time mapper gives it (resized to ``min_size``, uint8, the
channel order of ``INPUT.FORMAT``) and returns the ``Instances`` fields flattened, before
detectron2's ``detector_postprocess``. That step (boxes and keypoints scaled back to the
image, masks pasted into it and thresholded) stays outside the graph: :class:`OnnxD2Model`
runs it on onnxruntime's outputs, so the backend's ``predict`` runs unchanged on either engine.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.training.onnx import DEFAULT_OPSET, OnnxNetwork, StandIn, raw_parity, require_onnx

#: the graph's input name
INPUT = "image"
#: what each output field means (detectron2's Instances fields, in the graph's order)
FIELDS = {
    "pred_boxes": "(N, 4) x0, y0, x1, y1 in input pixels",
    "pred_classes": "(N,) category index (0-based, the order of 'categories')",
    "scores": "(N,) confidence",
    "pred_masks": "(N, 1, M, M) mask probabilities inside each box",
    "pred_keypoints": "(N, K, 3) x, y (input pixels), score",
    "pred_keypoint_heatmaps": "(N, K, M, M) keypoint logits inside each box",
    "image_size": "(2,) the input's height and width",
}


def export_d2(backend, out_dir: Path, *, opset: int | None, inputs: list[dict]) -> dict[str, Any]:
    """Trace ``backend``'s model on the first of ``inputs`` (the mapper's test-time dicts of
    a few val images), write ``out_dir/model.onnx``, compare onnxruntime with torch on the
    last of them, and describe the graph for ``model.json``."""
    import numpy as np
    import torch
    from detectron2.export import TracingAdapter


    onnx, _ = require_onnx()
    opset = opset or DEFAULT_OPSET
    model = backend.model.to("cpu").eval()
    image = inputs[0]["image"]
    # TracingAdapter is a new module, in training mode until told: the model would follow it
    adapter = TracingAdapter(model, [{"image": image}], _inference_of(model)).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes are torch's and detectron2's business
            adapter(image)  # builds adapter.outputs_schema, which names the outputs
            names = output_names(adapter.outputs_schema)
            torch.onnx.export(adapter, (image,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT],
                              output_names=names, dynamic_axes={INPUT: {1: "height", 2: "width"},
                                                                **{n: {0: "detections"} for n in names[:-1]}})
            compared = inputs[-1]["image"]
            expected = [t.numpy() for t in adapter(compared)]
    except (RuntimeError, AssertionError, torch.onnx.errors.OnnxExporterError) as e:
        path.unlink(missing_ok=True)
        raise ZooError(f"detectron2's tracing export failed: {(str(e).strip().splitlines() or [type(e).__name__])[0]}") \
            from None
    onnx.checker.check_model(str(path))
    got = OnnxNetwork(path).session.run(None, {INPUT: compared.numpy()})
    same_count = all(np.shape(e) == np.shape(g) for e, g in zip(expected, got))
    cfg = backend.cfg
    return {
        "opset": opset,
        "exporter": "detectron2.export.TracingAdapter + torch.onnx.export (TorchScript-based), as detectron2's "
                    "tools/deploy/export_model.py --export-method tracing",
        "input": {"name": INPUT, "shape": [3, "height", "width"], "dtype": str(image.dtype).replace("torch.", ""),
                  "colour": f"{cfg.INPUT.FORMAT}, channels first", "imgsz": backend.config.imgsz,
                  "fit": f"resized so that the shorter side is {cfg.INPUT.MIN_SIZE_TEST} and the longer at most "
                         f"{cfg.INPUT.MAX_SIZE_TEST} (detectron2's ResizeShortestEdge, aspect kept); one image per run",
                  "intensity": "uint8 pixels; the graph normalises with PIXEL_MEAN / PIXEL_STD inside",
                  "mean": [float(v) for v in cfg.MODEL.PIXEL_MEAN], "std": [float(v) for v in cfg.MODEL.PIXEL_STD]},
        "output": {"names": names, "meaning": {n: FIELDS.get(n, "a field of detectron2's Instances") for n in names}},
        "postprocess": "outside the graph: detectron2's detector_postprocess: boxes and keypoints scaled from the "
                       "input to the image, boxes clipped, empty boxes dropped, masks pasted into the image and "
                       "thresholded at 0.5",
        "raw_parity": raw_parity(expected, got).to_dict() if same_count else {
            "max_abs_diff": float("nan"), "max_abs_torch": 0.0, "tolerance": 0.0, "ok": False,
            "rule": "the graph found another number of detections than torch"},
    }


def _inference_of(model):
    """A GeneralizedRCNN is traced up to its Instances before postprocessing (as detectron2's
    export_model.py does); any other meta-architecture (RetinaNet) through its own forward,
    whose postprocessing to the input's own size changes nothing."""
    from detectron2.modeling import GeneralizedRCNN

    if not isinstance(model, GeneralizedRCNN):
        return None

    def inference(model, inputs):
        return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]

    return inference


def output_names(schema) -> list[str]:
    """The flattened outputs of one image's ``Instances``: its fields in the schema's order,
    then its image size (detectron2's InstancesSchema puts it last)."""
    from detectron2.export.flatten import InstancesSchema

    instances = schema.schemas[0].schemas[0]  # [ {"instances": Instances} ]
    if not isinstance(instances, InstancesSchema) or any(n != 1 for n in instances.sizes):
        raise AssertionError(f"unexpected outputs {schema}")
    return [*instances.keys, "image_size"]


class OnnxD2Model(StandIn):
    """An exported detectron2 model called as detectron2's: a list of the mapper's dicts in,
    ``[{"instances": Instances}]`` out, at each image's own size (``detector_postprocess``)."""

    def __init__(self, path: Path, device: str = "cpu"):
        self.graph = OnnxNetwork(path, device)
        self.names = [o.name for o in self.graph.session.get_outputs()]

    def __call__(self, inputs: list[dict]) -> list[dict]:
        return [{"instances": self._one(x)} for x in inputs]

    def _one(self, x: dict):
        import torch
        from detectron2.modeling.postprocessing import detector_postprocess
        from detectron2.structures import Boxes, Instances

        got = dict(zip(self.names, self.graph.session.run(None, {INPUT: x["image"].cpu().numpy()})))
        size = got.pop("image_size")
        fields = {k: torch.from_numpy(v) for k, v in got.items()}
        if "pred_boxes" in fields:
            fields["pred_boxes"] = Boxes(fields["pred_boxes"])
        instances = Instances((int(size[0]), int(size[1])), **fields)
        return detector_postprocess(instances, x.get("height", instances.image_size[0]),
                                    x.get("width", instances.image_size[1]))
