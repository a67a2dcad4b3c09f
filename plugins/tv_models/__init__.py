"""torchvision models: Faster / Mask / Keypoint R-CNN and classic classifiers.

Specs only (no torch import): the backends live in :mod:`.rcnn` and :mod:`.classifiers`
and are imported when used.
"""

from zoo import hookimpl
from zoo.specs import BackendSpec

_REQ = ("torch", "torchvision")
_HERE = "zoo.plugins.tv_models"

#: classify backends: name -> one-line description
CLASSIFIERS = {
    "resnet18": "ResNet-18 image classifier (torchvision)",
    "resnet50": "ResNet-50 image classifier (torchvision)",
    "vgg16": "VGG-16 image classifier (torchvision; 138 M parameters, slow on CPU)",
    "alexnet": "AlexNet image classifier (torchvision)",
    "efficientnet_b0": "EfficientNet-B0 image classifier (torchvision)",
    "mobilenet_v3_small": "MobileNetV3-Small image classifier (torchvision; fastest on CPU)",
}


def _spec(name, tasks, entry, description):
    return BackendSpec(
        name=name, tasks=tasks, entry=f"{_HERE}.{entry}", requires=_REQ, extra="torchvision", framework="torchvision",
        description=description, defaults=f"{_HERE}:configs/{name}",
    )


@hookimpl
def zoo_backends():
    return [
        _spec("faster-rcnn", ("detect",), "rcnn:FasterRCNN", "Faster R-CNN with an FPN backbone (torchvision)"),
        _spec(
            "mask-rcnn", ("instance-seg", "detect"), "rcnn:MaskRCNN",
            "Mask R-CNN with an FPN backbone (torchvision)",
        ),
        _spec(
            "keypoint-rcnn", ("keypoint",), "rcnn:KeypointRCNN",
            "Keypoint R-CNN, any number of keypoints (torchvision)",
        ),
        *(
            _spec(name, ("classify",), f"classifiers:{_class_name(name)}", text)
            for name, text in CLASSIFIERS.items()
        ),
    ]


def _class_name(arch: str) -> str:
    return "".join(part.capitalize() for part in arch.split("_"))
