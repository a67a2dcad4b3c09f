"""MONAI's segmentation networks for semantic-seg, on zoo's shared training loop.

Only specs here (no torch / monai import), so ``zoo list`` stays fast. The backends are
built on the dense-network kit (:class:`zoo.training.dense.SegmentationBackend`: the
letterboxed samples, Dice + CE with 255 ignored, logits scaled back), whose Dice term is
smp's, hence smp in ``requires``; only the network differs (:mod:`zoo.plugins.monai_nets.backend`).
"""

from zoo import hookimpl
from zoo.specs import BackendSpec

_REQ = ("torch", "monai", "segmentation_models_pytorch")

#: backend name -> (class in zoo.plugins.monai_nets.backend, one line for `zoo list`).
NETWORKS = {
    "segresnet": ("SegResNet", "SegResNet (MONAI): residual encoder-decoder, group norm (Myronenko 2018)"),
    "swin-unetr": ("SwinUNETR", "Swin UNETR (MONAI, 2D): Swin transformer encoder, CNN decoder"),
    "attention-unet": ("AttentionUnet", "Attention U-Net (MONAI): U-Net with attention gates on the skips"),
    "dynunet": ("DynUNet", "DynUNet (MONAI): nnU-Net's U-Net; kernels and strides planned from --imgsz"),
}


@hookimpl
def zoo_backends():
    return [
        BackendSpec(
            name=name,
            tasks=("semantic-seg",),
            entry=f"zoo.plugins.monai_nets.backend:{cls}",
            requires=_REQ,
            extra="monai",
            framework="monai",
            description=description,
            defaults=f"zoo.plugins.monai_nets:configs/{name}",
        )
        for name, (cls, description) in NETWORKS.items()
    ]
