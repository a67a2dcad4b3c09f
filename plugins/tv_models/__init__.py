"""torchvision models: Faster / Mask / Keypoint R-CNN and classic classifiers."""

from zoo import hookimpl
from zoo.specs import BackendSpec

_REQ = ("torch", "torchvision")


@hookimpl
def zoo_backends():
    return []
