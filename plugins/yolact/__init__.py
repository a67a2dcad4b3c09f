"""YOLACT and YOLACT++ (Bolya et al., ICCV 2019 / TPAMI 2020), written by zoo: real-time
instance segmentation from k prototype masks and per-anchor mask coefficients.

Specs only (no torch import): the backend lives in :mod:`.backend` and is imported when used.
"""

from zoo import hookimpl
from zoo.specs import BackendSpec

_REQ = ("torch", "torchvision")


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name="yolact", tasks=("instance-seg", "detect"), entry="zoo.plugins.yolact.backend:Yolact",
            requires=_REQ, extra="torchvision", framework="zoo (torch)",
            description="YOLACT: prototypes x mask coefficients, Fast NMS (zoo's own, torch)",
            defaults="zoo.plugins.yolact:configs/yolact",
        ),
        BackendSpec(
            name="yolact++", tasks=("instance-seg", "detect"), entry="zoo.plugins.yolact.backend:YolactPlusPlus",
            requires=_REQ, extra="torchvision", framework="zoo (torch)",
            description="YOLACT++: YOLACT with deformable convs and mask re-scoring (zoo's own, torch)",
            defaults="zoo.plugins.yolact:configs/yolact++",
        ),
    ]
