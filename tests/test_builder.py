"""zoo.data.builder: what a reader hands over (drafts holding names) becomes a valid Dataset."""

from __future__ import annotations

import pytest

from zoo.data.builder import DatasetBuilder, DraftInstance, DraftRecord
from zoo.dataset import ImageRecord
from zoo.errors import DataError


def _draft(rid: str, *instances: DraftInstance, classes=()) -> DraftRecord:
    return DraftRecord(ImageRecord(id=rid, width=10, height=10), list(instances), list(classes))


def test_names_become_indices_in_the_given_order(tmp_path):
    (tmp_path / "labels.txt").write_text("__ignore__\nwbc\nrbc\n")
    b = DatasetBuilder(tmp_path, "mine", labels=tmp_path / "labels.txt")
    b.add(_draft("a", DraftInstance("rbc", (0, 0, 2, 2), keypoints={"tail": (1.0, 1.0, 2)}),
                 DraftInstance(None, (0, 0, 9, 9), ignore=True),  # ignored for every category
                 DraftInstance("platelet", (1, 1, 3, 3))))  # not in the list: dropped, one warning
    b.add(_draft("b", DraftInstance("wbc", (0, 0, 4, 4), keypoints={"head": (2.0, 2.0, 1)}),
                 DraftInstance("rbc", (5, 5, 6, 6), scored_only=True)))
    ds = b.build()
    assert ds.categories == ["wbc", "rbc"] and ds.keypoint_names == ["head", "tail"]
    a, bb = ds.images
    assert [(i.category, i.ignore) for i in a.instances] == [(1, False), (-1, True)]
    assert a.instances[0].keypoints == [(0.0, 0.0, 0), (1.0, 1.0, 2)]
    assert [i.category for i in bb.instances] == [0] and [i.category for i in bb.scored_only] == [1]
    assert [str(w) for w in ds.warnings] == [f"{tmp_path / 'labels.txt'}: label 'platelet' is not in "
                                            "the label list; its 1 shape(s) skipped"]


def test_image_classes_and_the_formats_own_order(tmp_path):
    b = DatasetBuilder(tmp_path, "mine", categories=["z", "a"], class_names_found={"dog"})
    b.add(_draft("train/x", DraftInstance("a", (0, 0, 1, 1)), classes=["cat"]))
    b.add(_draft("val/y", classes=["dog", "cat"]))
    ds = b.build()
    assert ds.categories == ["z", "a"] and ds.classes == ["cat", "dog"]  # the format's order; sorted
    assert [r.labels for r in ds.images] == [[0], [1, 0]]
    assert ds.splits == {"train": ["train/x"], "val": ["val/y"]}  # train/ val/ folders


def test_the_files_facts_travel_on_the_dataset(tmp_path):
    (tmp_path / "zoo.yaml").write_text("keypoint_names: [l_eye, r_eye]\nflip_idx: [1, 0]\npixel_spacing: 0.5\n")
    b = DatasetBuilder(tmp_path, "mine", skeleton=[(0, 1)], category_ids={"p": 7, "gone": 3})
    b.add(_draft("a", DraftInstance("p", (0, 0, 1, 1), keypoints={"r_eye": (1.0, 2.0, 2)})))
    ds = b.build()
    assert ds.flip_idx == [1, 0] and ds.skeleton == [(0, 1)] and ds.pixel_spacing == (0.5, 0.5)
    assert ds.category_ids == {"p": 7} and ds.coco_category_ids() == [7]


def test_no_image_is_one_clear_error(tmp_path):
    b = DatasetBuilder(tmp_path, "mine")
    b.warn(tmp_path / "a.json", "not a file of this format; skipped")
    with pytest.raises(DataError, match=r"holds no image zoo could read \(mine\) \(first problem: .*a.json"):
        b.build()
