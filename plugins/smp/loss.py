"""Dice + cross-entropy over a label map, with 255 ignored by both terms.

Cross-entropy learns every pixel; Dice keeps small structures (platelets, nuclei) from
drowning in background. Both skip ignored pixels (labelme ``__ignore__``, the letterbox
padding), so such a region can hold anything without changing the loss or its gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.plugins.smp.geometry import IGNORE

KINDS = ("dice+ce", "ce", "dice")


class SegmentationLoss(torch.nn.Module):
    """``loss(logits (N, C, H, W), target (N, H, W) int64) -> {"ce": ..., "dice": ...}``."""

    def __init__(self, kind: str = "dice+ce"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"loss {kind!r}: expected one of {', '.join(KINDS)}")
        self.terms = kind.split("+")  # not substring tests: "ce" is inside "dice"
        self.dice = None
        if "dice" in self.terms:
            from zoo.plugins.smp.models import import_smp

            smp = import_smp()
            self.dice = smp.losses.DiceLoss("multiclass", from_logits=True, ignore_index=IGNORE)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        parts: dict[str, torch.Tensor] = {}
        if not bool((target != IGNORE).any()):
            # Nothing to learn here: a zero that still belongs to the graph (cross-entropy
            # would be 0/0 = nan).
            zero = logits.sum() * 0.0
            return {k: zero for k in self.terms}
        if "ce" in self.terms:
            parts["ce"] = F.cross_entropy(logits, target, ignore_index=IGNORE)
        if self.dice is not None:
            parts["dice"] = self.dice(logits, target)
        return parts

    def total(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self(logits, target).values())
