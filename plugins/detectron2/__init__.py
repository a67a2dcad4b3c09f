"""detectron2's model zoo: Faster / Mask / Keypoint / Cascade R-CNN and RetinaNet.

Specs only (no torch or detectron2 import). detectron2 is not on PyPI under its own name:
``zoo install detectron2`` installs it (see :mod:`.install`), and ``zoo list`` says so
while it is missing.
"""

from zoo import hookimpl
from zoo.specs import BackendSpec, InstallerSpec

_REQ = ("torch", "torchvision", "detectron2")
_HERE = "zoo.plugins.detectron2"


def _spec(name, tasks, model, description):
    # one class for the five; `model` picks the model-zoo config (settings.DEFAULT_CONFIGS)
    return BackendSpec(
        name=name, tasks=tasks, entry=f"{_HERE}.backend:D2Backend", requires=_REQ, extra="detectron2",
        install="zoo install detectron2", framework="detectron2", description=description, options={"model": model},
    )


@hookimpl
def zoo_backends():
    return [
        _spec("d2-faster-rcnn", ("detect",), "faster", "Faster R-CNN R50-FPN (detectron2 model zoo)"),
        _spec("d2-mask-rcnn", ("instance-seg", "detect"), "mask", "Mask R-CNN R50-FPN (detectron2 model zoo)"),
        _spec("d2-keypoint-rcnn", ("keypoint",), "keypoint",
              "Keypoint R-CNN R50-FPN, any number of keypoints (detectron2 model zoo)"),
        _spec("d2-retinanet", ("detect",), "retinanet", "RetinaNet R50-FPN (detectron2 model zoo)"),
        _spec("d2-cascade-rcnn", ("detect", "instance-seg"), "cascade",
              "Cascade R-CNN R50-FPN, with a mask head for instance-seg (detectron2 model zoo)"),
    ]


@hookimpl
def zoo_installers():
    return [
        InstallerSpec(
            name="detectron2", entry=f"{_HERE}.install:install",
            description="detectron2 from PyPI's sal-detectron2 wheel (its compiled ops need CPython 3.10)",
        )
    ]
