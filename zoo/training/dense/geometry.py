"""Fitting any image onto the square canvas a dense network accepts, and back.

Encoders halve the resolution several times (smp's ``encoder_depth``, a MONAI network's
stages), so most networks refuse an input whose sides are not multiples of that stride
(smp's U-Net pads internally, the others raise). zoo accepts any ``--imgsz`` and any
image shape: the image is scaled so that its longer side is ``imgsz`` (aspect ratio kept),
then padded on the right and bottom to a square whose side is ``imgsz`` rounded up to a
multiple of the stride. The padding is marked *ignore* in the training target, so it never
teaches the model anything, and is cropped off the logits before they are scaled back to
the original image size.

numpy / OpenCV only; no torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

IGNORE = 255


def canvas_side(imgsz: int, stride: int, minimum: int = 0) -> int:
    """``imgsz`` rounded up to a multiple of ``stride``, and to at least ``minimum``
    (an image smaller than the canvas is padded, never enlarged beyond ``imgsz``)."""
    return math.ceil(max(imgsz, minimum, 1) / stride) * stride


@dataclass(frozen=True)
class Letterbox:
    """How one image sits on the canvas: scaled to ``(new_h, new_w)`` at the top-left."""

    height: int  # original
    width: int
    new_h: int
    new_w: int
    side: int  # the square canvas

    @classmethod
    def fit(cls, height: int, width: int, imgsz: int, side: int, keep_aspect: bool = True) -> Letterbox:
        if keep_aspect:
            scale = imgsz / max(height, width)
            new_h = min(side, max(1, round(height * scale)))
            new_w = min(side, max(1, round(width * scale)))
        else:
            new_h = new_w = imgsz
        return cls(height, width, new_h, new_w, side)

    def image(self, rgb):
        """``(H, W, 3)`` uint8 (or float32) -> ``(side, side, 3)`` of the same type, zero padded."""
        import cv2
        import numpy as np

        out = np.zeros((self.side, self.side, 3), dtype=rgb.dtype)
        interp = cv2.INTER_AREA if self.new_h < self.height else cv2.INTER_LINEAR
        out[: self.new_h, : self.new_w] = cv2.resize(rgb, (self.new_w, self.new_h), interpolation=interp)
        return out

    def labels(self, label_map):
        """``(H, W)`` uint8 label map -> ``(side, side)``; nearest neighbour, padding = ignore."""
        import cv2
        import numpy as np

        out = np.full((self.side, self.side), IGNORE, dtype=np.uint8)
        out[: self.new_h, : self.new_w] = cv2.resize(
            label_map, (self.new_w, self.new_h), interpolation=cv2.INTER_NEAREST
        )
        return out

    def crop(self, logits):
        """``(..., side, side)`` array or tensor -> the part that holds the image."""
        return logits[..., : self.new_h, : self.new_w]
