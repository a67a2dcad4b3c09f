"""segmentation-models-pytorch: U-Net and the other smp architectures for semantic-seg.

Only specs here (no torch / smp import), so ``zoo list`` stays fast. Each architecture is
its own backend name, all served by one class, :class:`zoo.plugins.smp.backend.SmpBackend`,
which reads the smp class to build from the spec's ``architecture`` option.
"""

from zoo import hookimpl
from zoo.specs import BackendSpec

_REQ = ("torch", "segmentation_models_pytorch")

#: backend name -> (the smp class it builds, one line for `zoo list`).
#: Names with "+" are used as they are, also as folder names of their defaults (configs/unet++/).
ARCHITECTURES = {
    "unet": ("Unet", "U-Net (smp): encoder-decoder with skip connections; resnet18 encoder"),
    "unet++": ("UnetPlusPlus", "U-Net++ (smp): U-Net with nested dense skip pathways"),
    "fpn": ("FPN", "Feature Pyramid Network (smp), output at 1/4 scale, upsampled"),
    "deeplabv3": ("DeepLabV3", "DeepLabV3 (smp): atrous spatial pyramid pooling, output stride 8"),
    "deeplabv3+": ("DeepLabV3Plus", "DeepLabV3+ (smp): ASPP with a light decoder, output stride 16"),
    "pspnet": ("PSPNet", "PSPNet (smp): pyramid pooling on a 3-stage encoder, very light"),
    "linknet": ("Linknet", "LinkNet (smp): U-Net-like with additive skips, light decoder"),
    "manet": ("MAnet", "MA-Net (smp): U-Net with position and channel attention blocks"),
    "pan": ("PAN", "Pyramid Attention Network (smp)"),
    "segformer": ("Segformer", "SegFormer decoder (smp) on any smp encoder (mit_b0..b5 for the original)"),
    "upernet": ("UPerNet", "UPerNet (smp): pyramid pooling + FPN decoder"),
}


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name=name,
            tasks=("semantic-seg",),
            entry="zoo.plugins.smp.backend:SmpBackend",
            requires=_REQ,
            extra="smp",
            framework="segmentation-models-pytorch",
            description=description,
            defaults=f"zoo.plugins.smp:configs/{name}",
            options={"architecture": architecture},
        )
        for name, (architecture, description) in ARCHITECTURES.items()
    ]
