"""torchvision models: Faster / Mask / Keypoint R-CNN and classic classifiers.

Specs only (no torch import): one class per idea, imported when used: every R-CNN name is
:class:`.rcnn.RCNNBackend` with its ``head`` option, every classifier name
:class:`.classifiers.TvClassifier` with its torchvision ``architecture``.
"""

from zoo import hookimpl
from zoo.specs import BackendSpec

_REQ = ("torch", "torchvision")
_HERE = "zoo.plugins.tv_models"
_RCNN = "rcnn:RCNNBackend"

#: classify backends: name (torchvision's model name, its ``architecture``) -> one-line description
CLASSIFIERS = {
    "resnet18": "ResNet-18 image classifier (torchvision)",
    "resnet50": "ResNet-50 image classifier (torchvision)",
    "vgg16": "VGG-16 image classifier (torchvision; 138 M parameters, slow on CPU)",
    "alexnet": "AlexNet image classifier (torchvision)",
    "efficientnet_b0": "EfficientNet-B0 image classifier (torchvision)",
    "mobilenet_v3_small": "MobileNetV3-Small image classifier (torchvision; fastest on CPU)",
}


def _spec(name, tasks, entry, description, **options):
    return BackendSpec(
        name=name, tasks=tasks, entry=f"{_HERE}.{entry}", requires=_REQ, extra="torchvision", framework="torchvision",
        description=description, defaults=f"{_HERE}:configs/{name}", options=options,
    )


@hookimpl
def zoo_backends():
    return [
        _spec("faster-rcnn", ("detect",), _RCNN, "Faster R-CNN with an FPN backbone (torchvision)", head="faster"),
        _spec("mask-rcnn", ("instance-seg", "detect"), _RCNN, "Mask R-CNN with an FPN backbone (torchvision)",
              head="mask"),
        _spec("keypoint-rcnn", ("keypoint",), _RCNN, "Keypoint R-CNN, any number of keypoints (torchvision)",
              head="keypoint"),
        *(_spec(name, ("classify",), "classifiers:TvClassifier", text, architecture=name)
          for name, text in CLASSIFIERS.items()),
    ]
