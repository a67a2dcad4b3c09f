"""YOLOv8 through ultralytics: detect, instance-seg, keypoint, classify."""

from zoo import hookimpl
from zoo.specs import BackendSpec


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name="yolov8",
            tasks=("detect", "instance-seg", "keypoint", "classify"),
            entry="zoo.plugins.yolov8.backend:YoloV8",
            requires=("torch", "ultralytics"),
            extra="yolo",
            description="YOLOv8 (ultralytics), from scratch unless weights are given",
        )
    ]
