"""YOLACT's training losses (paper sections 3.3 and 4, YOLACT++ section 6.2) with the
paper's weights, and the anchor matching they rest on.

Targets, one dict per image, in network coordinates (the ``imgsz x imgsz`` input):
``boxes (n, 4)`` normalised xyxy, ``labels (n,)`` 0-based categories, ``masks (n, S, S)``,
``ignore_boxes (m, 4)`` and ``ignore (S, S)`` for regions marked ignored (COCO crowd).
Ignored regions add nothing: an anchor mostly inside one is neither object nor background,
and their pixels are left out of the mask and semantic losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo.plugins.yolact.boxes import coverage, encode, to_corners
from zoo.plugins.yolact.masks import crop


@dataclass
class LossWeights:
    """The paper's: confidence 1, box 1.5, mask 6.125, semantic 1, mask IoU 25 (YOLACT++)."""

    conf: float = 1.0
    box: float = 1.5
    mask: float = 6.125
    semantic: float = 1.0
    maskiou: float = 25.0


NEUTRAL = -1  # an anchor that is neither object nor background: no confidence loss


def match(gt_boxes, gt_labels, anchors, ignore_boxes=None, pos_iou: float = 0.5, neg_iou: float = 0.4, ignore_cover: float = 0.5):
    """Assign every anchor a class target and an object (SSD's matching, as YOLACT does).

    An anchor is positive (label + 1) when its best IoU with an object is >= ``pos_iou``,
    background (0) below ``neg_iou``, neutral (-1) between. Each object also claims its
    single best anchor, so no object goes unmatched. A background anchor with more than
    ``ignore_cover`` of its area inside an ignored region becomes neutral.

    Returns ``(conf_t (N,) long, gt_index (N,) long)``.
    """
    from torchvision.ops import box_iou

    n_anchors = anchors.shape[0]
    corners = to_corners(anchors)
    conf_t = torch.zeros(n_anchors, dtype=torch.long, device=anchors.device)
    index = torch.zeros(n_anchors, dtype=torch.long, device=anchors.device)
    if len(gt_boxes):
        iou = box_iou(gt_boxes, corners)  # (n, N)
        best_iou, index = iou.max(0)
        best_anchor = iou.argmax(1)
        best_iou[best_anchor] = 2.0
        index[best_anchor] = torch.arange(len(gt_boxes), device=anchors.device)
        conf_t = gt_labels[index] + 1
        conf_t[best_iou < pos_iou] = NEUTRAL
        conf_t[best_iou < neg_iou] = 0
    if ignore_boxes is not None and len(ignore_boxes):
        inside = coverage(corners, ignore_boxes).max(1).values > ignore_cover
        conf_t[(conf_t == 0) & inside] = NEUTRAL
    return conf_t, index


def hard_negatives(conf, conf_t, ratio: float = 3.0):
    """Online hard example mining (SSD; YOLACT section 4): of the background anchors, the
    ``ratio`` x (number of positives) with the highest background loss
    ``-log softmax(conf)[0]``, per image. conf ``(B, N, c+1)``, conf_t ``(B, N)`` -> bool ``(B, N)``."""
    with torch.no_grad():
        bg_loss = torch.logsumexp(conf, -1) - conf[..., 0]
        bg_loss = bg_loss.masked_fill(conf_t != 0, -float("inf"))
        n_pos = (conf_t > 0).sum(1)
        n_neg = torch.minimum((ratio * n_pos).long(), (conf_t == 0).sum(1))
        rank = bg_loss.argsort(1, descending=True).argsort(1)
        return rank < n_neg[:, None]


def mask_loss(proto, coef, gt_masks, gt_boxes, keep=None):
    """Section 3.3: per-pixel BCE between the assembled mask ``sigma(P c)`` and the object's
    mask, cropped to the object's box and divided by the box's area (in prototype pixels),
    so small objects weigh as much as large ones. Summed over the ``n`` positives.

    proto ``(h, w, k)``, coef ``(n, k)``, gt_masks ``(n, h, w)`` in {0, 1}, gt_boxes ``(n, 4)``
    normalised; ``keep`` ``(h, w)``: 0 where pixels are ignored.
    """
    h, w, _ = proto.shape
    logits = (proto @ coef.t()).permute(2, 0, 1)  # log-odds of equation 1, stable BCE
    bce = F.binary_cross_entropy_with_logits(logits, gt_masks, reduction="none")
    if keep is not None:
        bce = bce * keep
    bce = crop(bce, gt_boxes)
    area = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * w * (gt_boxes[:, 3] - gt_boxes[:, 1]) * h).clamp(min=1.0)
    return (bce.sum((1, 2)) / area).sum()


def semantic_loss(seg, targets_seg, keep):
    """Section 4's auxiliary loss: a 1x1 conv on P3 gives ``c`` maps trained with per-pixel
    sigmoid BCE against each class's union of masks (not softmax: classes may overlap),
    averaged over pixels. seg, targets_seg ``(B, c, h, w)``; keep ``(B, 1, h, w)``."""
    bce = F.binary_cross_entropy_with_logits(seg, targets_seg, reduction="none") * keep
    return bce.sum() / (seg.shape[-2] * seg.shape[-1])


def mask_iou(pred, gt):
    """IoU of binary masks ``(n, h, w)`` with ``(n, h, w)``, pairwise by index."""
    inter = (pred * gt).sum((1, 2))
    union = pred.sum((1, 2)) + gt.sum((1, 2)) - inter
    return inter / union.clamp(min=1.0)


def resize_masks(masks, size):
    """Masks ``(n, S, S)`` -> ``(n, h, w)`` in {0, 1}: area-averaged, a pixel is in when half is."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *size), dtype=torch.float32)
    return (F.interpolate(masks[None].float(), size=size, mode="area")[0] >= 0.5).float()


class YolactLoss:
    """All of YOLACT's losses for one batch, normalised as the authors do: confidence, box,
    mask and mask-IoU sums by the number of positives, the semantic loss by the batch size."""

    def __init__(self, weights: LossWeights, pos_iou=0.5, neg_iou=0.4, neg_pos=3.0, masks_to_train=100, min_mask_pixels=4):
        self.w, self.pos_iou, self.neg_iou = weights, pos_iou, neg_iou
        self.neg_pos, self.masks_to_train, self.min_mask_pixels = neg_pos, masks_to_train, min_mask_pixels

    def __call__(self, out: dict, targets: list[dict], anchors, maskiou_net=None) -> dict:
        conf, loc, coef, proto = out["conf"], out["loc"], out["coef"], out["proto"]
        batch = conf.shape[0]
        matched = [
            match(t["boxes"], t["labels"], anchors, t.get("ignore_boxes"), self.pos_iou, self.neg_iou) for t in targets
        ]
        conf_t = torch.stack([c for c, _ in matched])
        pos = conf_t > 0
        n_pos = max(int(pos.sum()), 1)

        chosen = pos | hard_negatives(conf, conf_t, self.neg_pos)
        losses = {"conf": F.cross_entropy(conf[chosen], conf_t[chosen], reduction="sum") * self.w.conf / n_pos}

        box_sum = conf.new_zeros(())
        mask_sum = conf.new_zeros(())
        iou_sum = conf.new_zeros(())
        h, w = proto.shape[1:3]
        for b, (t, (c_t, index)) in enumerate(zip(targets, matched)):
            p = pos[b].nonzero().squeeze(1)
            if p.numel() == 0:
                continue
            gt_boxes = t["boxes"][index[p]]
            box_sum = box_sum + F.smooth_l1_loss(loc[b, p], encode(gt_boxes, anchors[p]), reduction="sum")
            if p.numel() > self.masks_to_train:  # the authors' cap on mask work per image
                p = p[torch.randperm(p.numel(), device=p.device)[: self.masks_to_train]]
            objects = index[p]
            gt_small = resize_masks(t["masks"], (h, w))
            keep = 1.0 - resize_masks(t["ignore"][None], (h, w))[0] if "ignore" in t else None
            mask_sum = mask_sum + mask_loss(proto[b], coef[b, p], gt_small[objects], t["boxes"][objects], keep)
            if maskiou_net is not None:
                iou_sum = iou_sum + self._maskiou(maskiou_net, proto[b], coef[b, p], gt_small[objects], t["boxes"][objects], t["labels"][objects])
        losses["box"] = box_sum * self.w.box / n_pos
        losses["mask"] = mask_sum * self.w.mask / n_pos
        if maskiou_net is not None:
            losses["maskiou"] = iou_sum * self.w.maskiou / n_pos
        if "seg" in out:
            losses["semantic"] = self._semantic(out["seg"], targets) * self.w.semantic / batch
        return losses

    def _semantic(self, seg, targets):
        c, h, w = seg.shape[1:]
        maps, keeps = [], []
        for t in targets:
            small = resize_masks(t["masks"], (h, w))
            m = seg.new_zeros((c, h, w))
            for label in t["labels"].unique():
                m[label] = small[t["labels"] == label].amax(0)
            maps.append(m)
            keeps.append(1.0 - resize_masks(t["ignore"][None], (h, w)) if "ignore" in t else seg.new_ones((1, h, w)))
        return semantic_loss(seg, torch.stack(maps), torch.stack(keeps))

    def _maskiou(self, net, proto, coef, gt_masks, gt_boxes, labels):
        """YOLACT++ section 6.2: the re-scoring net sees the predicted mask (cropped, not
        back-propagated into) and regresses its IoU with the object's mask (smooth L1);
        objects under ``min_mask_pixels`` are skipped, as the authors skip tiny ones."""
        from zoo.plugins.yolact.masks import assemble

        with torch.no_grad():
            pred = crop(assemble(proto, coef), gt_boxes)
            target = mask_iou((pred > 0.5).float(), gt_masks)
            big = gt_masks.sum((1, 2)) >= self.min_mask_pixels
        if not bool(big.any()):
            return proto.new_zeros(())
        iou = net(pred[big])[torch.arange(int(big.sum()), device=proto.device), labels[big]]
        return F.smooth_l1_loss(iou, target[big], reduction="sum")
