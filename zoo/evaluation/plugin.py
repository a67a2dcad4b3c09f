"""The evaluation room's registration: which evaluator scores each task, with what options,
and the schema of its metrics (:mod:`zoo.metrics`).

Registered through the ``zoo`` entry-point group (``evaluation`` in pyproject.toml) exactly as a
third party's plugin, so the contract (:meth:`zoo.tasks.Task.evaluator`) reaches the
evaluators through the registry and never names this room.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.evaluation import classify, coco, semantic
from zoo.metrics import EvaluatorSpec


@hookimpl
def zoo_evaluators() -> list[EvaluatorSpec]:
    return [
        EvaluatorSpec("classify", classify.ClassifyEvaluator, classify.SCHEMA),
        EvaluatorSpec("detect", coco.CocoEvaluator, coco.BOX_SCHEMA, {"iou_type": "bbox"}),
        EvaluatorSpec("instance-seg", coco.CocoEvaluator, coco.BOX_SCHEMA, {"iou_type": "segm"}),
        EvaluatorSpec("keypoint", coco.CocoEvaluator, coco.KEYPOINT_SCHEMA, {"iou_type": "keypoints"}),
        EvaluatorSpec("semantic-seg", semantic.SemanticEvaluator, semantic.SCHEMA),
    ]
