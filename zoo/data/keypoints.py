"""Keypoint facts: COCO's body points (names, skeleton, OKS sigmas), the keypoint order of a
dataset and the index of each point after a horizontal flip."""

from __future__ import annotations

import re

from zoo.dataset import Dataset

COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]

# COCO person skeleton (0-based) and OKS sigmas, used when the points are the COCO body points
COCO_SKELETON = [
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
]

COCO_SIGMAS = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
]


def keypoint_vocabulary(found: set[str], config: dict) -> list[str]:
    """zoo.yaml's keypoint names, else COCO's 17 in COCO order when the points are a subset
    of them, else sorted names."""
    if config.get("keypoint_names"):
        return list(config["keypoint_names"])
    if found and found <= set(COCO_KEYPOINTS):
        return list(COCO_KEYPOINTS)
    return sorted(found)


def flip_permutation(dataset: Dataset) -> list[int] | None:
    """Which keypoint each one becomes under a horizontal flip, or None when unknown.

    The flip order the dataset's files state (``Dataset.flip_idx``: zoo.yaml's, data.yaml's),
    else left/right pairs in the names (``left_eye`` <-> ``right_eye``). With neither,
    flipping would silently swap the meaning of asymmetric landmarks: the caller must not flip.
    """
    perm = flip_index(list(dataset.keypoint_names), dataset.flip_idx)
    if dataset.flip_idx or perm != list(range(len(perm))):
        return perm
    return None


def flip_index(names: list[str], given: list[int] | None = None) -> list[int]:
    """Index of each keypoint after a horizontal flip: ``given`` (a file's ``flip_idx``), else
    ``left``/``right`` swapped in the names (``left_eye`` <-> ``right_eye``, ``l_x`` <-> ``r_x``)."""
    if given:
        return [int(i) for i in given]
    pos = {n: i for i, n in enumerate(names)}
    swaps = [("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")]
    out = []
    for n in names:
        j = pos[n]
        for a, b in swaps:
            for x, y in ((a, b), (b, a)):
                if x in n and n.replace(x, y) in pos:
                    j = pos[n.replace(x, y)]
                    break
            else:
                continue
            break
        else:
            m = re.match(r"^([lrLR])([_\-. ].*)$", n)
            if m:
                other = {"l": "r", "r": "l", "L": "R", "R": "L"}[m.group(1)] + m.group(2)
                j = pos.get(other, j)
        out.append(j)
    return out
