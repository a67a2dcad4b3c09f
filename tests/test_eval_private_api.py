"""The private parts of faster-coco-eval that zoo relies on are still what zoo was verified
against (faster-coco-eval 1.8.0, pinned ``>=1.8.0,<1.9`` in pyproject.toml).

* ``zoo.evaluation.batched_cocoeval`` overrides ``COCOeval_faster._prepare`` and
  ``computeIoU``, repeating ``_prepare`` step for step, and sets ``_nonempty_iou_pairs``,
  which ``COCOeval_faster.evaluate`` reads;
* ``zoo.evaluation.bootstrap.coco_matching`` reads ``_paramsEval`` and the
  ``__getstate__`` of each ``_evalImgs_cpp`` entry (``separate_eval=True``).

When one of these tests fails, faster-coco-eval changed under zoo: re-verify those two
functions against its new source (tests/test_eval_coco.py, tests/test_eval_bootstrap.py
and tests/test_eval_coco_files.py must pass), then update the fingerprints here and the
pin in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import inspect

import pytest

REVERIFY = ("faster-coco-eval changed what zoo relies on; re-verify zoo.evaluation.batched_cocoeval "
            "(BatchedIoUs._prepare mirrors COCOeval._prepare step for step) and "
            "zoo.evaluation.bootstrap.coco_matching against its new source, then update this test and the pin: ")

#: sha256 of the source zoo mirrors or depends on, as in faster-coco-eval 1.8.0
SOURCE_FINGERPRINTS = {
    "COCOeval._prepare": "285299a49eee787ed7ec1914552cd0fe75d2e25af7e33809a164021ec90b87a9",
    "COCOeval_faster.evaluate": "7af89b83c8ade70e2ff94c3c165ad8cd89f4d6c35e0b7587b58fd95af4c4bde8",
    "COCOeval_faster.accumulate": "668b976dfacb16370795e8fac3ea07f2f88a779c304ecefb9d1c269dee7b99e2",
}


def _sources():
    from faster_coco_eval.core.cocoeval import COCOeval
    from faster_coco_eval.core.faster_eval_api import COCOeval_faster

    return {"COCOeval._prepare": COCOeval._prepare, "COCOeval_faster.evaluate": COCOeval_faster.evaluate,
            "COCOeval_faster.accumulate": COCOeval_faster.accumulate}


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_version_is_in_the_pinned_range():
    import faster_coco_eval

    major, minor = (int(v) for v in faster_coco_eval.__version__.split(".")[:2])
    assert (major, minor) == (1, 8), REVERIFY + f"installed {faster_coco_eval.__version__}, tested 1.8"


def test_overridden_and_called_signatures_are_unchanged():
    from faster_coco_eval import COCOeval_faster
    from faster_coco_eval.core import mask as mask_utils
    from faster_coco_eval.core.cocoeval import COCOeval

    assert COCOeval_faster._prepare is COCOeval._prepare, REVERIFY + "COCOeval_faster now has its own _prepare"
    checks = {
        "COCOeval._prepare": (_params(COCOeval._prepare), ["self"]),
        "COCOeval.computeIoU": (_params(COCOeval.computeIoU), ["self", "imgId", "catId"]),
        "mask.calculateRleForAllAnnotations": (
            _params(mask_utils.calculateRleForAllAnnotations),
            ["anns", "img_sizes", "compute_rle", "compute_boundary", "boundary_dilation_ratio", "boundary_cpu_count"]),
        "mask.iou": (_params(mask_utils.iou), ["dt", "gt", "iscrowd"]),
    }
    for name, (got, want) in checks.items():
        assert got == want, REVERIFY + f"{name} takes {got}, zoo calls it with {want}"
    init = _params(COCOeval_faster.__init__)
    for kw in ("print_function", "kpt_oks_sigmas", "separate_eval", "rle_iou_max_workers"):
        assert kw in init, REVERIFY + f"COCOeval_faster() no longer takes {kw}"


def test_the_source_zoo_mirrors_is_unchanged():
    for name, fn in _sources().items():
        digest = hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
        assert digest == SOURCE_FINGERPRINTS[name], REVERIFY + f"the source of {name} changed (sha256 {digest})"


def test_private_state_read_by_zoo_is_there():
    """One image, one ground truth, a hit and a miss: the attributes and the per-image
    state that zoo reads, with the values they must hold."""
    from zoo.evaluation.batched_cocoeval import batched_cocoeval
    from zoo.evaluation.coco import run_cocoeval

    gt = {"images": [{"id": 7, "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
                           "iscrowd": 0, "segmentation": [[10, 10, 50, 10, 50, 50, 10, 50]]}],
          "categories": [{"id": 1, "name": "a"}]}
    res = [{"image_id": 7, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9},
           {"image_id": 7, "category_id": 1, "bbox": [70, 70, 20, 20], "score": 0.5}]
    ev = run_cocoeval(gt, res, "bbox", keep_matching=True)
    assert isinstance(ev, batched_cocoeval())
    for attr in ("gt_dataset", "dt_dataset", "lvis_style", "boundary_dilation_ratio", "boundary_cpu_count",
                 "_nonempty_iou_pairs", "_paramsEval", "_evalImgs_cpp"):
        assert hasattr(ev, attr), REVERIFY + f"COCOeval_faster has no {attr} after evaluate()"
    for attr in ("compute_rle", "compute_boundary", "imgIds", "catIds", "areaRng", "iouThrs", "recThrs", "maxDets"):
        assert hasattr(ev._paramsEval, attr), REVERIFY + f"Params has no {attr}"
    for attr in ("clean", "append_ref"):
        assert hasattr(ev.gt_dataset, attr), REVERIFY + f"the C++ dataset has no {attr}()"
    p = ev._paramsEval
    assert len(ev._evalImgs_cpp) == len(p.catIds) * len(p.areaRng) * len(p.imgIds), (
        REVERIFY + "_evalImgs_cpp is no longer one entry per (category, area range, image)")
    state = ev._evalImgs_cpp[0].__getstate__()
    try:
        dt_matches, gt_matches, dt_scores, gt_ignore, dt_ignore = state[:5]
        n_thr = len(p.iouThrs)
        assert list(dt_scores) == pytest.approx([0.9, 0.5])
        assert list(gt_ignore) == [False]
        assert list(dt_matches) == [1, 0] * n_thr or list(dt_matches) == [True, False] * n_thr
        assert len(gt_matches) == n_thr and not any(dt_ignore)
    except (AssertionError, TypeError, ValueError) as e:
        raise AssertionError(REVERIFY + f"an _evalImgs_cpp entry's state is no longer (dtMatches, gtMatches, "
                             f"dtScores, gtIgnore, dtIgnore, ...) per IoU threshold: {state!r}") from e
