"""``zoo run`` / ``zoo compare`` with groups: patients stay whole, split.json lists them, the
manifest, report and leaderboard say how many each split holds; a leaking data split stops
the run unless ``--allow-leak``, which every output then states."""

from __future__ import annotations

import dataclasses
import json

import pytest
from flat_options import compare_options, run_options
import toy_backend
from test_groups import _patient_of, patients
from toy_backend import make_dataset

from zoo.errors import ZooError
from zoo.pipeline.compare import compare
from zoo.pipeline.run import execute


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def patient_data(root, n=24):
    """The toy dataset, image k belonging to patient P<k // 3> (a groups.csv named by zoo.yaml)."""
    ds = make_dataset(root, n=n)
    (root / "groups.csv").write_text("image,group\n" + "".join(f"{r.id}.png,P{k // 3}\n" for k, r in enumerate(ds.images)))
    (root / "zoo.yaml").write_text("groups: groups.csv\n")
    return ds


def _patient(image_id):
    return f"P{int(image_id.split('_')[1]) // 3}"


def _opts(tmp_path, ds, registry, **kw):
    return run_options(**{**dict(task="classify", backend="toy", out=tmp_path / "runs", dataset=ds, data=ds.root,
                                registry=registry, quiet=True, flags={"device": "cpu"}), **kw})


def test_run_keeps_patients_whole_and_says_how_many_each_split_holds(tmp_path, registry):
    ds = patient_data(tmp_path / "d")
    run = execute(_opts(tmp_path, ds, registry, val=0.25, select="best")).run_dir
    split = json.loads((run / "split.json").read_text())
    parts = {p: {_patient(i) for i in split[p]} for p in ("train", "selection", "val")}
    assert not (parts["train"] & parts["val"]) and not (parts["selection"] & (parts["train"] | parts["val"]))
    assert split["group_rule"] == "zoo.yaml groups: groups.csv" and len(split["groups"]) == 8
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["split"]["groups"] == {"train": len(parts["train"]), "selection": len(parts["selection"]),
                                           "val": len(parts["val"]), "test": 0}
    assert len(parts["val"]) == 2 and len(split["val"]) == 6
    report = (run / "report.md").read_text()
    assert "grouped by zoo.yaml groups: groups.csv" in report and f"val {len(parts['val'])} groups" in report
    metrics = json.loads((run / "metrics.json").read_text())  # the interval resamples the 2 val patients
    assert "cluster bootstrap: 2 groups" in metrics["conventions"]["ci95"]["method"]


def test_a_leaking_data_split_stops_the_run_unless_allowed(tmp_path, registry):
    ds = patient_data(tmp_path / "d", n=12)
    ids = [r.id for r in ds.images]
    leaky = dataclasses.replace(ds, splits={"train": ids[:8], "val": ids[8:] + []})
    leaky.splits["train"].remove("img_007")
    leaky.splits["val"].append("img_007")  # patient P2: img_006, img_007, img_008 -> train and val
    with pytest.raises(ZooError, match=r"the data's own train / val split: group 'P2' is in train \(img_006\) "
                                       r"and val \(img_007 \+1\).*--allow-leak"):
        execute(_opts(tmp_path, leaky, registry))
    run = execute(_opts(tmp_path, leaky, registry, allow_leak=True)).run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["split"]["leaks"] == ["group 'P2' is in train (img_006) and val (img_007 +1)"]
    assert "LEAKS kept by --allow-leak (1)" in (run / "report.md").read_text()


def test_compare_folds_keep_patients_whole(tmp_path, registry):
    root = patients(tmp_path / "d", n=6, slices=3)  # class folders: classify
    opts = compare_options(task="classify", backends=["toy", "oracle"], registry=registry, samples=0, data=root,
                           folds=3, group=r"(P\d+)_", flags={"device": "cpu"}, out=tmp_path / "runs")
    result = compare(opts)
    info = json.loads((result.folder / "compare.json").read_text())
    assert info["grouping"]["rule"] == r"--group '(P\d+)_' on the image path"
    assert [g["val"] for g in info["grouping"]["groups"]] == [2, 2, 2]
    for i in range(3):
        split = json.loads((result.folder / f"fold-{i}" / "split.json").read_text())
        val = {_patient_of(x) for x in split["val"]}
        assert len(val) == 2 and not val & {_patient_of(x) for x in split["train"] + split["selection"]}
    board = (result.folder / "leaderboard.md").read_text()
    assert "every group whole in one part" in board
    assert "paired bootstrap over groups (6 patients" in board  # the verdict resamples patients
