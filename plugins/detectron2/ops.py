"""What detectron2 can do here: its compiled ops (``detectron2/_C``) may be missing.

The PyPI wheel ``zoo install detectron2`` uses carries an extension built for CPython 3.10,
which no other Python loads. detectron2 already runs its common ops on torchvision's
(``ROIAlign`` -> ``torchvision.ops.roi_align``, NMS -> ``torchvision.ops.batched_nms``), so
Faster / Mask / Keypoint / Cascade R-CNN and RetinaNet train and predict without ``_C``.
Only these need it (``torch.ops.detectron2.*`` or ``_C`` calls), and configs using them are
refused before training instead of failing deep inside a forward pass:

* rotated boxes: ``nms_rotated``, ``box_iou_rotated``, ``ROIAlignRotated`` (RRPN, RROIHeads);
* deformable convolution: ``DeformConv`` / ``ModulatedDeformConv`` (``DEFORM_ON_PER_STAGE``).

detectron2's fast COCO evaluator is also compiled; zoo never uses it (its own evaluator
scores every backend).
"""

from __future__ import annotations

import functools

from zoo.errors import ConfigError


@functools.lru_cache(maxsize=1)
def compiled_ops_available() -> bool:
    try:
        from detectron2 import _C  # noqa: F401
    except (ImportError, OSError):  # not built for this Python, or against another torch
        return False
    return True


def needs_compiled_ops(cfg) -> list[str]:
    """The parts of a detectron2 config that only run with ``detectron2/_C``."""
    m = cfg.MODEL
    found = []
    if m.PROPOSAL_GENERATOR.NAME == "RRPN":
        found.append("MODEL.PROPOSAL_GENERATOR.NAME=RRPN (rotated proposals)")
    if "Rotated" in m.ROI_HEADS.NAME or m.ROI_HEADS.NAME.startswith("RROI"):
        found.append(f"MODEL.ROI_HEADS.NAME={m.ROI_HEADS.NAME} (rotated boxes)")
    for key in ("ROI_BOX_HEAD", "ROI_MASK_HEAD", "ROI_KEYPOINT_HEAD"):
        pooler = getattr(m, key).POOLER_TYPE
        if "Rotated" in pooler:
            found.append(f"MODEL.{key}.POOLER_TYPE={pooler} (rotated boxes)")
    if m.ANCHOR_GENERATOR.NAME == "RotatedAnchorGenerator":
        found.append("MODEL.ANCHOR_GENERATOR.NAME=RotatedAnchorGenerator (rotated boxes)")
    if any(m.RESNETS.DEFORM_ON_PER_STAGE):
        found.append("MODEL.RESNETS.DEFORM_ON_PER_STAGE (deformable convolution)")
    return found


def refuse_unavailable(cfg, where: str) -> None:
    """A clear error when ``cfg`` needs compiled ops this installation does not have."""
    needs = needs_compiled_ops(cfg)
    if needs and not compiled_ops_available():
        raise ConfigError(
            f"{where}: needs detectron2's compiled ops, which this installation lacks "
            f"({'; '.join(needs)}); the PyPI wheel's ops are built for CPython 3.10 only: "
            "pick another config, or build detectron2 from its repository"
        )
