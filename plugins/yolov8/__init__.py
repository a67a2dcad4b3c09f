"""YOLOv8 through ultralytics: detect, instance-seg, keypoint, classify, and semantic-seg
derived from the instance-seg model. Kept light: the backend is imported only when used."""

from zoo import hookimpl
from zoo.specs import BackendSpec


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name="yolov8",
            tasks=("detect", "instance-seg", "keypoint", "classify", "semantic-seg"),
            entry="zoo.plugins.yolov8.backend:YoloV8",
            requires=("torch", "ultralytics"),
            extra="yolo",
            framework="ultralytics",
            description="YOLOv8 (ultralytics), from scratch unless weights are given",
            defaults="zoo.plugins.yolov8:configs/yolov8",
        )
    ]
