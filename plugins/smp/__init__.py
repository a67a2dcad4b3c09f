"""segmentation-models-pytorch: U-Net and the other smp architectures for semantic-seg."""

from zoo import hookimpl
from zoo.specs import BackendSpec

_REQ = ("torch", "segmentation_models_pytorch")


@hookimpl
def zoo_backends():
    return []
