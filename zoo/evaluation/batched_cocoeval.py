"""faster-coco-eval's ``COCOeval_faster`` with its IoU step done for all (image, category)
pairs at once, instead of one Python call per pair.

``COCOeval_faster.computeIoU`` fetches a pair's annotations from its C++ index, sorts the
detections by score and calls the C IoU: ~25 us of Python per pair, 16,000 pairs in the
5,000-image benchmark (bench/bench_evaluator.py). Here the pairs are formed once with numpy
from the same annotations in the same order -- ground truth in annotation order, detections
stably sorted by descending score and cut at ``maxDets[-1]``: ``computeIoU``'s order, which
the C++ matching relies on. Box IoUs are then computed in one vectorised pass with
pycocotools' ``bbIou`` arithmetic (same operations in the same order, so the same doubles:
tests/test_eval_fast_paths.py compares every matrix), mask IoUs with the same C call per pair,
without the per-pair lookups. Matching and accumulation stay faster-coco-eval's own.

This overrides faster-coco-eval's private ``_prepare`` (mirroring ``COCOeval._prepare`` step
for step): the version is pinned in pyproject.toml and tests/test_eval_private_api.py fails
loudly when what is mirrored changes. faster-coco-eval is imported only when
:func:`batched_cocoeval` is first called (heavy, and ``zoo --help`` must not pay for it).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any


@functools.cache
def batched_cocoeval() -> type:
    """The ``COCOeval_faster`` subclass with :class:`BatchedIoUs` mixed in."""
    from faster_coco_eval import COCOeval_faster

    return type("BatchedIoUCOCOeval", (BatchedIoUs, COCOeval_faster), {})


def images_only_coco(dataset: dict):
    """A faster-coco-eval ``COCO`` over ``dataset`` with only its image and category index
    (what ``COCOeval.__init__`` and the batched ``_prepare`` read); marked, so that any other
    path builds the full index first (:func:`full_index`)."""
    from faster_coco_eval import COCO

    coco = COCO()
    coco.dataset = dataset
    coco.imgs = {img["id"]: img for img in dataset["images"]}
    coco.cats = {cat["id"]: cat for cat in dataset["categories"]}
    coco._zoo_images_only = True
    return coco


def full_index(coco) -> None:
    """Index the annotations of a ``COCO`` made by :func:`images_only_coco` (no-op otherwise)."""
    if getattr(coco, "_zoo_images_only", False):
        coco.createIndex()
        coco._zoo_images_only = False


class BatchedIoUs:
    """The batched ``_prepare`` / ``computeIoU`` (mixed in before ``COCOeval_faster``).

    Batched: box and mask IoU with categories (the evaluator's case). LVIS, boundary IoU,
    keypoints and ``useCats=0`` take faster-coco-eval's own path.
    """

    def _prepare(self):
        self._pair_ious = None
        if not self._batchable():
            full_index(self.cocoGt)
            full_index(self.cocoDt)
            return super()._prepare()
        # COCOeval._prepare for this case, step for step, except that the annotations are
        # taken from the dataset lists in one pass instead of through getAnnIds / loadAnns
        # (same annotations, same order within each pair: the only order the C++ index keeps)
        self.gt_dataset.clean()
        self.dt_dataset.clean()
        gts, dts = selected_annotations(self.cocoGt, self.params), selected_annotations(self.cocoDt, self.params)
        for gt in gts:
            gt["ignore"] = int(gt.get("iscrowd", 0))  # iscrowd wins over a given ignore flag
        self._compute_rles(gts, dts)
        for anns, index in ((gts, self.gt_dataset), (dts, self.dt_dataset)):
            for a in anns:
                index.append_ref(a["image_id"], a["category_id"], a)
        self._pair_ious = pair_ious(gts, dts, self.params)
        # the pairs with both ground truth and detections: exactly those with an IoU matrix
        # (COCOeval_faster.evaluate reads this)
        self._nonempty_iou_pairs = set(self._pair_ious)

    def computeIoU(self, imgId, catId):  # noqa: N802, N803 - COCOeval's names
        if self._pair_ious is None:
            return super().computeIoU(imgId, catId)
        return self._pair_ious.get((imgId, catId), [])

    def _batchable(self) -> bool:
        p = self.params
        return not self.lvis_style and bool(p.useCats) and p.iouType in ("bbox", "segm") and not p.compute_boundary

    def _compute_rles(self, gts: list[dict], dts: list[dict]) -> None:
        """faster-coco-eval's RLE of every annotation, ground truth first (as ``_prepare``);
        image sizes are looked up only when masks are compared."""
        from faster_coco_eval.core import mask as mask_utils

        p = self.params
        sizes: dict[int, tuple[int, int]] = {}
        for anns, coco in ((gts, self.cocoGt), (dts, self.cocoDt)):
            if p.compute_rle:
                for a in anns:
                    if a["image_id"] not in sizes:
                        img = coco.imgs[a["image_id"]]
                        sizes[a["image_id"]] = img["height"], img["width"]
            mask_utils.calculateRleForAllAnnotations(anns, sizes, p.compute_rle, False, self.boundary_dilation_ratio,
                                                     self.boundary_cpu_count)


def selected_annotations(coco, params) -> list[dict]:
    """The annotations ``getAnnIds(imgIds, catIds)`` would give, in annotation order."""
    anns = coco.dataset["annotations"]
    imgs = set(params.imgIds) if len(params.imgIds) else None  # empty: no filter, as in getAnnIds
    cats = set(params.catIds) if len(params.catIds) else None
    if (imgs is None or imgs.issuperset({a["image_id"] for a in anns})) and (
        cats is None or cats.issuperset({a["category_id"] for a in anns})
    ):
        return list(anns)  # every annotation passes (the usual case)
    return [a for a in anns if (imgs is None or a["image_id"] in imgs) and (cats is None or a["category_id"] in cats)]


def pair_ious(gts: list[dict], dts: list[dict], params) -> dict[tuple[int, int], Any]:
    """``computeIoU(image, category)`` of every pair with both ground truth and detections."""
    pairs = Pairs.of(gts, dts, params.catIds, params.maxDets[-1])
    if pairs is None:
        return {}
    if params.iouType == "bbox":
        return _box_pair_ious(gts, dts, pairs)
    return _mask_pair_ious(gts, dts, pairs)


@dataclass
class Pairs:
    """The (image, category) pairs that have ground truth and detections, laid out as
    ``computeIoU`` orders them.

    ``g_order`` / ``d_order`` index ``gts`` / ``dts``, grouped by pair; pair ``k`` of ``keys``
    is ``g_order[g_start[k]:][:g_count[k]]`` against ``d_order[d_start[k]:][:d_count[k]]``.
    ``d_gt_pair`` is each kept detection's pair among *all* ground-truth pairs, which
    ``gt_start`` / ``gt_count`` describe (the box pass works per detection).
    """

    keys: list[tuple[int, int]]
    g_order: Any
    d_order: Any
    g_start: Any
    g_count: Any
    d_start: Any
    d_count: Any
    d_gt_pair: Any
    gt_start: Any
    gt_count: Any

    @classmethod
    def of(cls, gts: list[dict], dts: list[dict], cat_ids, max_dets: int) -> Pairs | None:
        import numpy as np

        if not gts or not dts:
            return None
        # (image, category) as one integer key; selected_annotations kept only cat_ids when given
        top = max(cat_ids) if cat_ids else max(a["category_id"] for a in itertools.chain(gts, dts))
        n_cat = int(top) + 1
        g_key = np.array([a["image_id"] * n_cat + a["category_id"] for a in gts], np.int64)
        d_key = np.array([a["image_id"] * n_cat + a["category_id"] for a in dts], np.int64)
        d_score = np.array([a["score"] for a in dts], np.float64)
        g_order = np.argsort(g_key, kind="stable")  # annotation order within a pair
        d_order = np.lexsort((-d_score, d_key))  # stable: computeIoU's mergesort on -score
        g_key, d_key = g_key[g_order], d_key[d_order]
        gt_pairs, gt_start, gt_count = np.unique(g_key, return_index=True, return_counts=True)
        d_order, d_key, d_gt_pair = _scored_detections(d_order, d_key, gt_pairs, max_dets)
        if not len(d_order):
            return None
        d_pairs, d_start, d_count = np.unique(d_key, return_index=True, return_counts=True)
        of = np.searchsorted(gt_pairs, d_pairs)  # each pair among the ground-truth pairs
        return cls([(key // n_cat, key % n_cat) for key in d_pairs.tolist()], g_order, d_order,
                   gt_start[of], gt_count[of], d_start, d_count, d_gt_pair, gt_start, gt_count)


def _scored_detections(d_order, d_key, gt_pairs, max_dets: int):
    """The detections ``computeIoU`` compares (``d_key`` sorted, best score first within a
    key): those of a pair with ground truth, the first ``max_dets`` of each; with each one's
    index among ``gt_pairs``."""
    import numpy as np

    d_gt_pair = np.searchsorted(gt_pairs, d_key)
    d_gt_pair[d_gt_pair == len(gt_pairs)] = 0
    has_gt = gt_pairs[d_gt_pair] == d_key
    rank = np.arange(len(d_key)) - np.searchsorted(d_key, d_key, side="left")
    keep = has_gt & (rank < max_dets)
    return d_order[keep], d_key[keep], d_gt_pair[keep]


def _box_pair_ious(gts: list[dict], dts: list[dict], pairs: Pairs) -> dict:
    """Every pair's box IoU matrix (detections x ground truth), cut from one flat pass."""
    import numpy as np

    ious = _flat_box_ious(gts, dts, pairs)
    size = pairs.d_count * pairs.g_count  # one block of the flat IoUs per pair, in order
    start = (np.cumsum(size) - size).tolist()
    return {key: ious[o:o + k].reshape(n_d, k // n_d)
            for key, o, k, n_d in zip(pairs.keys, start, size.tolist(), pairs.d_count.tolist())}


def _flat_box_ious(gts: list[dict], dts: list[dict], pairs: Pairs):
    """The IoU of every (detection, ground truth) of a pair, detection-major: the rows of
    each pair's matrix, one after another."""
    import numpy as np

    gb = np.array([a["bbox"] for a in gts], np.float64).reshape(-1, 4)[pairs.g_order]
    db = np.array([a["bbox"] for a in dts], np.float64).reshape(-1, 4)[pairs.d_order]
    crowd = np.array([a.get("iscrowd", 0) for a in gts], bool)[pairs.g_order]
    reps = pairs.gt_count[pairs.d_gt_pair]
    di = np.repeat(np.arange(len(pairs.d_order)), reps)
    gi = np.repeat(pairs.gt_start[pairs.d_gt_pair] - (np.cumsum(reps) - reps), reps) + np.arange(int(reps.sum()))
    D, G = db[di], gb[gi]  # noqa: N806
    # pycocotools' bbIou, operation for operation
    w = np.minimum(D[:, 2] + D[:, 0], G[:, 2] + G[:, 0]) - np.maximum(D[:, 0], G[:, 0])
    h = np.minimum(D[:, 3] + D[:, 1], G[:, 3] + G[:, 1]) - np.maximum(D[:, 1], G[:, 1])
    i = w * h
    da, ga = D[:, 2] * D[:, 3], G[:, 2] * G[:, 3]
    u = np.where(crowd[gi], da, da + ga - i)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), i / u, 0.0)


def _mask_pair_ious(gts: list[dict], dts: list[dict], pairs: Pairs) -> dict:
    """Every pair's mask IoU matrix: faster-coco-eval's C call per pair, on the RLEs
    ``_prepare`` computed."""
    from faster_coco_eval.core import mask as mask_utils

    out = {}
    g_order, d_order = pairs.g_order.tolist(), pairs.d_order.tolist()
    for key, g0, n_g, d0, n_d in zip(pairs.keys, pairs.g_start.tolist(), pairs.g_count.tolist(),
                                     pairs.d_start.tolist(), pairs.d_count.tolist()):
        g = [gts[i] for i in g_order[g0:g0 + n_g]]
        d = [dts[i] for i in d_order[d0:d0 + n_d]]
        out[key] = mask_utils.iou([a["rle"] for a in d], [a["rle"] for a in g], [int(a.get("iscrowd", 0)) for a in g])
    return out
