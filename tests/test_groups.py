"""Groups (zoo.data.groups): patients kept whole by splits, the selection split and folds;
duplicate images forced into one group; a data-defined split that leaks is refused.

The data: class folders (classify) of patients P01..P12 with 3 slices each, every slice its
own random pixels, written in tmp_path; some cases add a copy of one slice under another
patient's name (a duplicate) or split folders that put one patient on both sides.
"""

from __future__ import annotations

import json as json_
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from zoo.data.folds import make_folds
from zoo.data.groups import NO_GROUPS, group_images, leaks
from zoo.data.reading import read_dataset
from zoo.data.split import carve_selection, choose_split, make_split
from zoo.errors import ZooError
from zoo.tasks import get_task

CLASSIFY = get_task("classify")


def _slice(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)


def patients(root, n=12, slices=3, prefix="", first=1):
    """``root/<prefix><class>/P<k>_s<j>.png`` for k from ``first``: patient k's class is k % 2
    (benign / malignant)."""
    for k in range(first, first + n):
        for j in range(slices):
            _slice(root / f"{prefix}{('benign', 'malignant')[k % 2]}" / f"P{k:02d}_s{j}.png", 100 * k + j)
    return root


def _patient_of(image_id):
    return image_id.rsplit("/", 1)[-1].split("_")[0]


def _whole(parts):
    """No patient in two of ``parts``."""
    seen = {}
    for name, ids in parts.items():
        for i in ids:
            assert seen.setdefault(_patient_of(i), name) == name, (i, name, seen[_patient_of(i)])


def test_group_from_pattern_from_zoo_yaml_and_from_csv(tmp_path):
    root = patients(tmp_path / "d", n=4, slices=2)
    ds = read_dataset(root)
    by_flag = group_images(ds, r"(P\d+)_")
    assert by_flag.of["benign/P02_s1"] == "P02" and by_flag.count(by_flag.of) == 4 and by_flag.grouped
    assert by_flag.rule.startswith("--group")
    (root / "zoo.yaml").write_text("group: '(P\\d+)_s'\n")
    by_yaml = group_images(read_dataset(root))
    assert by_yaml.of == by_flag.of and by_yaml.rule.startswith("zoo.yaml group")
    (root / "zoo.yaml").write_text("groups: groups.csv\n")
    rows = ["image,group"] + [f"{r.id}.png,patient-{_patient_of(r.id)}" for r in ds.images]
    rows[1] = f"{ds.images[0].id.rsplit('/', 1)[-1]}.png,patient-{_patient_of(ds.images[0].id)}"  # a bare name
    (root / "groups.csv").write_text("\n".join(rows) + "\n")
    by_csv = group_images(read_dataset(root))
    assert by_csv.of == {i: f"patient-{g}" for i, g in by_flag.of.items()}


def test_group_from_the_reader_and_none(tmp_path):
    import dataclasses

    ds = read_dataset(patients(tmp_path / "d", n=3, slices=2))
    assert group_images(ds).rule == NO_GROUPS and not group_images(ds).grouped
    images = [dataclasses.replace(r, group="vol-" + _patient_of(r.id)) for r in ds.images]  # as a NIfTI reader sets it
    read = group_images(dataclasses.replace(ds, images=images))
    assert read.grouped and read.of["benign/P02_s0"] == "vol-P02" and "reader" in read.rule


def test_pattern_that_misses_an_image_or_has_no_capture_group_is_refused(tmp_path):
    root = patients(tmp_path / "d", n=3, slices=2)
    _slice(root / "benign" / "scan7.png", 9)
    ds = read_dataset(root)
    with pytest.raises(ZooError, match=r"--group '\(P\\d\+\)_': 1 image\(s\) do not match, e.g. benign/scan7.png"):
        group_images(ds, r"(P\d+)_")
    with pytest.raises(ZooError, match="needs a capture group"):
        group_images(ds, r"P\d+")


def test_duplicates_share_a_group_even_against_the_pattern(tmp_path):
    root = patients(tmp_path / "d", n=6, slices=2)
    shutil.copy(root / "benign" / "P02_s0.png", root / "malignant" / "P05_s9.png")  # P02's slice, named P05's
    ds = read_dataset(root)
    g = group_images(ds, r"(P\d+)_")
    assert g.duplicates == [["benign/P02_s0", "malignant/P05_s9"]]
    assert {g.of[i] for i in g.duplicates[0]} == {"P02+P05"}
    assert g.of["benign/P02_s1"] == g.of["malignant/P05_s0"] == "P02+P05"  # the whole patients merge
    ungrouped = group_images(ds)  # no rule: the two copies alone form a group
    assert ungrouped.of["benign/P02_s0"] == ungrouped.of["malignant/P05_s9"] != ungrouped.of["benign/P02_s1"]


def test_same_pixels_in_different_bytes_are_duplicates(tmp_path):
    """Two PNGs of equal byte size whose bytes differ (a text chunk) but whose pixels do not."""
    from PIL.PngImagePlugin import PngInfo

    root = patients(tmp_path / "d", n=2, slices=1)
    src = root / "benign" / "P02_s0.png"
    a, b = PngInfo(), PngInfo()
    a.add_text("k", "aaaa")
    b.add_text("k", "bbbb")
    Image.open(src).save(root / "benign" / "P03_s0.png", pnginfo=a)
    Image.open(src).save(root / "benign" / "P04_s0.png", pnginfo=b)
    g = group_images(read_dataset(root))
    assert ["benign/P03_s0", "benign/P04_s0"] in g.duplicates


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_split_and_selection_keep_patients_whole(tmp_path, seed):
    ds = read_dataset(patients(tmp_path / "d", n=12, slices=3))
    g = group_images(ds, r"(P\d+)_")
    split = make_split(ds, CLASSIFY, val=0.25, seed=seed, grouping=g)
    split = carve_selection(split, ds, CLASSIFY, 0.2, grouping=g)
    _whole({"train": split.train, "selection": split.selection, "val": split.val})
    assert sorted(split.train + split.selection + split.val) == sorted(r.id for r in ds.images)
    assert len(split.val) == 9 and split.selection  # 25% of 36 images: three whole patients
    assert split.group_rule.startswith("--group") and len(split.groups) == 12
    assert split.group_counts()["val"] == 3 and sum(split.group_counts().values()) == 12
    assert make_split(ds, CLASSIFY, val=0.25, seed=seed, grouping=g) == make_split(
        ds, CLASSIFY, val=0.25, seed=seed, grouping=g)


def test_without_groups_the_split_is_the_split_by_image(tmp_path):
    ds = read_dataset(patients(tmp_path / "d", n=6, slices=3))
    plain = make_split(ds, CLASSIFY, val=0.3, seed=4)
    ungrouped = make_split(ds, CLASSIFY, val=0.3, seed=4, grouping=group_images(ds))
    assert (ungrouped.train, ungrouped.val) == (plain.train, plain.val)
    assert ungrouped.group_rule == NO_GROUPS and ungrouped.groups == {} and plain.group_rule == ""


@pytest.mark.parametrize("seed", [0, 3])
def test_group_k_fold_is_disjoint_covering_whole_and_stratified(tmp_path, seed):
    root = patients(tmp_path / "d", n=13, slices=3)
    for j in range(3, 7):  # one patient with more slices: groups of unequal size
        _slice(root / "malignant" / f"P01_s{j}.png", 5000 + j)
    ds = read_dataset(root)
    g = group_images(ds, r"(P\d+)_")
    folds = make_folds(ds, CLASSIFY, 4, seed=seed, grouping=g)
    every = sorted(r.id for r in ds.images)
    assert sorted(i for f in folds for i in f.val) == every  # every image scored once
    for f in folds:
        assert sorted(f.train + f.val) == every and not set(f.train) & set(f.val)
        _whole({"train": f.train, "val": f.val})
        assert f.groups["P01"] and f.group_rule.startswith("--group")
    for cls in ("benign", "malignant"):  # each class's patients spread within one per fold
        per_fold = [len({_patient_of(i) for i in f.val if i.startswith(cls)}) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1, (cls, per_fold)
    with pytest.raises(ZooError, match=r"--folds 14: only 13 group\(s\).*fewer than the folds"):
        make_folds(ds, CLASSIFY, 14, grouping=g)


def test_too_few_groups_for_the_split_is_a_clear_error(tmp_path):
    ds = read_dataset(patients(tmp_path / "d", n=2, slices=4))
    g = group_images(ds, r"(P\d+)_")
    with pytest.raises(ZooError, match=r"2 group\(s\) cannot be split into 3 parts"):
        make_split(ds, CLASSIFY, val=0.2, test=0.2, grouping=g)
    with pytest.raises(ZooError, match=r"--folds 3: only 2 group\(s\)"):
        make_folds(ds, CLASSIFY, 3, grouping=g)


def _leaky(tmp_path):
    """train/ and val/ folders with patient P03 on both sides, and a duplicate across them."""
    root = tmp_path / "leaky"
    patients(root, n=4, slices=2, prefix="train/")
    patients(root, n=2, slices=1, prefix="val/", first=11)  # P11, P12 in val: clean
    _slice(root / "val" / "malignant" / "P03_s5.png", 777)  # P03 also in val
    return root


def test_a_data_split_that_leaks_a_patient_is_refused_unless_allowed(tmp_path):
    ds = read_dataset(_leaky(tmp_path))
    g = group_images(ds, r"(P\d+)_")
    with pytest.raises(ZooError, match=r"the data's own train / val split: group 'P03' is in train .* and val "
                                       r"\(val/malignant/P03_s5\).*--allow-leak"):
        choose_split("auto", ds, CLASSIFY, val=0.2, test=0.0, seed=0, digest="d", grouping=g)
    split = choose_split("auto", ds, CLASSIFY, val=0.2, test=0.0, seed=0, digest="d", grouping=g, allow_leak=True)
    assert split.source == "data" and len(split.leaks) == 1 and "P03" in split.leaks[0]
    # seeded instead: the patients stay whole
    drawn = choose_split("random", ds, CLASSIFY, val=0.3, test=0.0, seed=0, digest="d", grouping=g)
    _whole({"train": drawn.train, "val": drawn.val})
    assert drawn.source == "seeded" and not drawn.leaks


def test_a_duplicate_across_a_data_split_is_refused_without_any_rule(tmp_path):
    root = _leaky(tmp_path)
    (root / "val" / "malignant" / "P03_s5.png").unlink()
    shutil.copy(root / "train" / "benign" / "P02_s0.png", root / "val" / "benign" / "P12_s3.png")
    ds = read_dataset(root)
    g = group_images(ds)
    found = leaks(g, {"train": [r.id for r in ds.images if r.id.startswith("train")],
                      "val": [r.id for r in ds.images if r.id.startswith("val")]})
    assert len(found) == 1 and found[0].duplicate
    with pytest.raises(ZooError, match=r"the same image \(same pixels\) is in train \(train/benign/P02_s0\) and "
                                       r"val \(val/benign/P12_s3\)"):
        choose_split("auto", ds, CLASSIFY, val=0.2, test=0.0, seed=0, digest="d", grouping=g)


def test_per_class_counts_are_unchanged_by_grouping(tmp_path):
    ds = read_dataset(patients(tmp_path / "d", n=8, slices=2))
    split = make_split(ds, CLASSIFY, val=0.25, seed=0, grouping=group_images(ds, r"(P\d+)_"))
    assert Counter(i.split("/")[0] for i in split.val) == {"benign": 2, "malignant": 2}


def test_zoo_check_reports_groups_per_class_too_few_groups_and_leaks(tmp_path, capsys):
    from zoo.cli import main
    from zoo.data.lint import lint_folder

    root = _leaky(tmp_path)
    _slice(root / "train" / "rare" / "P02_s7.png", 4242)  # class 'rare': one patient only
    _slice(root / "val" / "benign" / "p-0004_s1.png", 4343)  # P04 in train, written p-0004 in val
    report = lint_folder(root, group=r"([Pp]-?\d+)_")
    found = {(f.check, f.level, f.message) for f in report.findings}
    assert ("split-leak", "error", "group 'P03' is in train (train/malignant/P03_s0 +1) and val "
            "(val/malignant/P03_s5)") in found
    assert ("too-few-groups", "error", "'rare' is in 1 group (P02) only: with every group whole it cannot be in "
            "both train and val") in found
    assert any(c == "near-leak" and "'P04' (train) / 'p-0004' (val)" in m for c, _, m in found)
    assert report.groups == {"rule": r"--group '([Pp]-?\d+)_' on the image path", "groups": 7,
                             "per_class": {"benign": 4, "malignant": 3, "rare": 1}, "duplicates": 0}
    with pytest.raises(SystemExit) as e:
        main(["check", str(root), "--group", r"([Pp]-?\d+)_", "--format", "json"])
    assert e.value.code == 1
    doc = json_.loads(capsys.readouterr().out)
    assert doc["groups"]["per_class"]["rare"] == 1 and doc["counts"]["error"] >= 2
    assert not lint_folder(patients(tmp_path / "clean", n=6, slices=2), group=r"(P\d+)_").findings


def test_labelme_video_folders_are_one_group_each(tmp_path):
    from zoo.data.demo import write_demo

    root = tmp_path / "videos"
    write_demo(root, images=6, size=32, seed=3)
    for k, json_file in enumerate(sorted(root.glob("*.json"))):  # frames of two clips, as video-toimg names them
        clip, frame = ("clip_a", "clip_b")[k % 2], f"{k:08d}"
        dest = root / clip
        dest.mkdir(exist_ok=True)
        data = json_.loads(json_file.read_text())
        image = root / data["imagePath"]
        image.rename(dest / f"{frame}{image.suffix}")
        data["imagePath"] = f"{frame}{image.suffix}"
        (dest / f"{frame}.json").write_text(json_.dumps(data))
        json_file.unlink()
    g = group_images(read_dataset(root))
    assert set(g.of.values()) == {"video clip_a", "video clip_b"} and g.rule.startswith("video folders")
    assert g.of["clip_a/00000000"] == g.of["clip_a/00000004"] != g.of["clip_b/00000001"]
