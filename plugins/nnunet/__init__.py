"""nnU-Net (nnunetv2) for 2-D semantic-seg, used as it is meant to be used.

Only the spec here (no torch / nnunetv2 import), so ``zoo list`` stays fast; the backend is
:mod:`zoo.plugins.nnunet.backend`.
"""

from zoo import hookimpl
from zoo.specs import BackendSpec


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name="nnunet",
            tasks=("semantic-seg",),
            entry="zoo.plugins.nnunet.backend:NnUNet",
            requires=("torch", "nnunetv2"),
            extra="nnunet",
            framework="nnunetv2",
            description="nnU-Net 2d (nnunetv2): self-configuring U-Net; its own planning, trainer and predictor",
        )
    ]
