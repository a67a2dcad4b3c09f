"""The reproducible split: same data + seed -> same split, stratified, exact sizes, no leaks."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from toy_backend import make_dataset

from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.errors import ZooError
from zoo.data.split import carve_selection, choose_split, data_hash, make_split, read_split, write_split
from zoo.tasks import get_task


def _boxes(n_per_cat: dict[int, int]) -> Dataset:
    images = []
    k = 0
    for cat, n in n_per_cat.items():
        for _ in range(n):
            images.append(ImageRecord(id=f"im{k:04d}", width=10, height=10,
                                      instances=[Instance(cat, (1.0, 1.0, 5.0, 5.0))]))
            k += 1
    return Dataset(categories=[f"c{c}" for c in n_per_cat], images=images)


def test_same_data_and_seed_give_the_same_split_whatever_the_order(tmp_path):
    ds = _boxes({0: 30, 1: 20, 2: 10})
    task = get_task("detect")
    a = make_split(ds, task, val=0.2, seed=3)
    shuffled = replace(ds, images=random.Random(1).sample(ds.images, len(ds.images)))
    b = make_split(shuffled, task, val=0.2, seed=3)
    assert a == b
    assert data_hash(ds) == data_hash(shuffled)
    c = make_split(ds, task, val=0.2, seed=4)
    assert c.val != a.val and len(c.val) == len(a.val)


def test_sizes_are_exact_disjoint_and_cover_everything():
    ds = _boxes({0: 33, 1: 17, 2: 7})
    s = make_split(ds, get_task("detect"), val=0.2, test=0.1, seed=0)
    assert (len(s.val), len(s.test)) == (round(57 * 0.2), round(57 * 0.1))
    assert not set(s.train) & set(s.val) and not set(s.val) & set(s.test) and not set(s.train) & set(s.test)
    assert sorted(s.train + s.val + s.test) == sorted(r.id for r in ds.images)


def test_split_is_stratified_by_main_category():
    ds = _boxes({0: 50, 1: 30, 2: 20})
    s = make_split(ds, get_task("detect"), val=0.2, seed=0)
    cat = {r.id: r.instances[0].category for r in ds.images}
    assert Counter(cat[i] for i in s.val) == {0: 10, 1: 6, 2: 4}
    assert s.stratified


def test_classify_stratifies_by_class_and_excludes_unlabelled_images():
    ds = Dataset(classes=["a", "b"], images=[
        *[ImageRecord(id=f"a{k}", width=4, height=4, labels=[0]) for k in range(10)],
        *[ImageRecord(id=f"b{k}", width=4, height=4, labels=[1]) for k in range(5)],
        ImageRecord(id="none", width=4, height=4, labels=[]),
        ImageRecord(id="both", width=4, height=4, labels=[0, 1]),
    ])
    s = make_split(ds, get_task("classify"), val=0.4, seed=0)
    assert s.excluded == ["both", "none"]
    assert Counter(i[0] for i in s.val) == {"a": 4, "b": 2}
    assert "none" not in s.train + s.val


def test_hash_changes_with_annotations_not_with_reading_order():
    ds = _boxes({0: 3, 1: 3})
    h = data_hash(ds)
    moved = replace(ds, images=[*ds.images[:-1], replace(ds.images[-1], instances=[Instance(1, (1.0, 1.0, 6.0, 5.0))])])
    assert data_hash(moved) != h
    relabelled = replace(ds, categories=["x", "c1"])
    assert data_hash(relabelled) != h


def test_split_round_trips_and_is_refused_for_other_data(tmp_path):
    ds = make_dataset(tmp_path / "data", n=10)
    task = get_task("detect")
    s = make_split(ds, task, val=0.3, seed=1)
    write_split(s, tmp_path / "split.json")
    again = choose_split(tmp_path / "split.json", ds, task, val=0.5, test=0, seed=9, digest=data_hash(ds))
    assert again == s  # the file wins over the options: that is what reuse means
    other = replace(ds, images=ds.images[:-1])
    with pytest.raises(ZooError, match="data changed"):
        choose_split(tmp_path / "split.json", other, task, val=0.3, test=0, seed=1, digest=data_hash(other))
    with pytest.raises(ZooError, match="task detect"):
        choose_split(tmp_path / "split.json", ds, get_task("classify"), val=0.3, test=0, seed=1, digest=data_hash(ds))
    assert read_split(tmp_path / "split.json").key == s.key


def test_too_few_images_is_a_clear_error():
    ds = _boxes({0: 1})
    with pytest.raises(ZooError, match="cannot be split"):
        make_split(ds, get_task("detect"), val=0.2)
    with pytest.raises(ZooError, match="fractions"):
        make_split(_boxes({0: 10}), get_task("detect"), val=0.7, test=0.4)


def test_golden_split_is_stable_across_versions():
    # Pinned: if this changes, every existing run's split changes and compare stops being fair.
    ds = _boxes({0: 6, 1: 4})
    s = make_split(ds, get_task("detect"), val=0.2, seed=0)
    assert s.val == GOLDEN_VAL


GOLDEN_VAL = ["im0002", "im0009"]


def test_split_the_data_defines_is_used_unless_random():
    ds = _boxes({0: 12, 1: 8})
    ids = sorted(r.id for r in ds.images)
    ds.splits = {"train": ids[:14], "val": ids[14:18], "test": ids[18:]}
    task = get_task("detect")
    s = choose_split("auto", ds, task, val=0.2, test=0, seed=0, digest="h")
    assert (s.source, s.train, s.val, s.test) == ("data", ids[:14], ids[14:18], ids[18:])
    r = choose_split("random", ds, task, val=0.2, test=0, seed=0, digest="h")
    assert r.source == "seeded" and r == make_split(ds, task, val=0.2, seed=0, digest="h")
    # train + test only: scored on test
    ds.splits = {"train": ids[:15], "test": ids[15:]}
    s = choose_split("auto", ds, task, val=0.2, test=0, seed=0, digest="h")
    assert s.val == ids[15:] and s.test == []
    # a source with one part only is no split
    ds.splits = {"train": ids}
    assert choose_split(None, ds, task, val=0.2, test=0, seed=0, digest="h").source == "seeded"
    with pytest.raises(ZooError, match="expected auto, random or a split.json"):
        choose_split("nope.json", ds, task, val=0.2, test=0, seed=0, digest="h")


def test_hash_does_not_care_whether_rle_counts_are_bytes_or_str():
    a = _boxes({0: 2})
    b = _boxes({0: 2})
    a.images[0].instances[0].mask = {"size": [10, 10], "counts": "PPYo0"}
    b.images[0].instances[0].mask = {"size": [10, 10], "counts": b"PPYo0"}
    assert data_hash(a) == data_hash(b)


def test_selection_split_comes_from_train_seeded_and_stratified():
    ds, task = _boxes({0: 50, 1: 30, 2: 20}), get_task("detect")
    base = make_split(ds, task, val=0.2, test=0.1, seed=0)
    s = carve_selection(base, ds, task, 0.1)
    assert len(s.selection) == round(len(base.train) * 0.1) and s.selection_fraction == 0.1
    assert set(s.selection) <= set(base.train) and not set(s.selection) & set(s.train)
    assert sorted(s.train + s.selection) == sorted(base.train)
    assert (s.val, s.test) == (base.val, base.test)  # the scored splits are untouched
    cat = {r.id: r.instances[0].category for r in ds.images}
    assert Counter(cat[i] for i in s.selection) == {0: 4, 1: 2, 2: 1}  # 7 of 70, by share
    # seeded: same seed -> same selection, again and from its own result; another -> another
    assert carve_selection(base, ds, task, 0.1) == s == carve_selection(s, ds, task, 0.1)
    other = carve_selection(make_split(ds, task, val=0.2, test=0.1, seed=1), ds, task, 0.1)
    assert other.selection != s.selection
    # none asked: every training image trains, and the split keeps the key it always had
    back = carve_selection(s, ds, task, 0.0)
    assert back.selection == [] and sorted(back.train) == sorted(base.train) and back.key == base.key
    assert s.key != base.key
    with pytest.raises(ZooError, match="cannot spare a selection split"):
        carve_selection(make_split(_boxes({0: 2}), task, val=0.5), _boxes({0: 2}), task, 0.5)
