"""The nnunet backend: zoo's split as an nnU-Net raw dataset (fast, no nnunetv2), then one
real run through `zoo compare` -- nnU-Net's own fingerprint, plan, preprocessing, trainer
(1 epoch of 2 iterations: --epochs 2, ended after one by a --budget the preprocessing alone
spends) and predictor -- giving a run folder, a leaderboard row and
nnU-Net's plan in the report. Learning is not expected from 2 iterations."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.plugins.nnunet.raw import label_names, write_raw_dataset


def test_label_names_put_ignore_last_and_keep_reserved_names_apart():
    assert label_names(["a", "b"]) == {"background": 0, "a": 1, "b": 2, "ignore": 3}
    assert label_names(["background", "ignore"]) == {"background": 0, "background_1": 1, "ignore_2": 2, "ignore": 3}


def test_raw_dataset_holds_images_label_maps_and_nnunets_ignore_label(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :, 0] = 200
    Image.fromarray(img).save(tmp_path / "a.png")
    square = [2.0, 2.0, 12.0, 2.0, 12.0, 12.0, 2.0, 12.0]
    band = [0.0, 15.0, 30.0, 15.0, 30.0, 20.0, 0.0, 20.0]
    record = ImageRecord("dir/a", 30, 20, file=tmp_path / "a.png", instances=[
        Instance(1, (2, 2, 12, 12), polygons=[square]),
        Instance(-1, (0, 15, 30, 20), polygons=[band], ignore=True),
    ])
    meta = Dataset(categories=["x", "y"])
    raw = write_raw_dataset(tmp_path / "raw", meta, [record])
    folder = tmp_path / "raw" / "Dataset001_zoo"
    spec = json.loads((folder / "dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "x": 1, "y": 2, "ignore": 3} and spec["file_ending"] == ".png"
    assert spec["channel_names"] == {"0": "R", "1": "G", "2": "B"} and spec["numTraining"] == 1
    labels = np.array(Image.open(folder / "labelsTr" / "case_00000.png"))
    assert labels[5, 5] == 2 and labels[18, 5] == 3 and labels[13, 25] == 0  # y, ignored band, background
    assert set(np.unique(labels)) == {0, 2, 3}
    assert np.array_equal(np.array(Image.open(folder / "imagesTr" / "case_00000_0000.png")), img)
    assert raw.cases == {"case_00000": "dir/a"} == json.loads((folder / "zoo_cases.json").read_text())


def test_the_workers_children_do_not_fork_from_its_torch_threads():
    """nnU-Net's worker has run torch (OpenMP threads up) when nnU-Net opens a default-context
    pool; a child forked from it then hung on its first parallel op, waiting on a futex for
    threads it did not inherit (a stalled ``--budget 1m`` run). The worker's children start
    clean: the same pool finishes."""
    pytest.importorskip("nnunetv2")
    code = (
        "import functools, multiprocessing, torch\n"
        "from zoo.plugins.nnunet.worker import fork_free_children\n"
        "fork_free_children()\n"
        "torch.set_num_threads(2)\n"
        "a = torch.randn(400, 400)\n"
        "torch.mm(a, a)\n"  # the worker's threads, as after nnU-Net's planner
        "with multiprocessing.Pool(2) as pool:\n"  # as nnunetv2.utilities.utils opens it
        "    out = pool.apply(functools.partial(torch.mm, a, a))\n"
        "print(float((out - torch.mm(a, a)).abs().max()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1e-3


def test_the_fingerprint_draws_as_many_intensities_as_the_data_has_and_keeps_its_statistics(tmp_path):
    """nnU-Net draws 10^7 foreground intensities whatever the data (40 per pixel on the demo,
    most of a one-minute budget); zoo's extractor draws the data's pixel count, and the
    statistics nnU-Net keeps are those of the foreground pixels."""
    pytest.importorskip("nnunetv2")
    rng = np.random.default_rng(0)
    records = []
    for k in range(2):
        img = rng.integers(0, 100, (20, 30, 3), dtype=np.uint8)
        img[:10] += 150  # the foreground band brighter: its statistics are not the image's
        Image.fromarray(img).save(tmp_path / f"{k}.png")
        records.append(ImageRecord(f"i{k}", 30, 20, file=tmp_path / f"{k}.png",
                                   instances=[Instance(0, (0, 0, 30, 10), polygons=[[0, 0, 30, 0, 30, 10, 0, 10]])]))
    write_raw_dataset(tmp_path / "nnUNet_raw", Dataset(categories=["x"]), records)
    env = {**os.environ, **{k: str(tmp_path / k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    code = (
        "import json\n"
        "from zoo.plugins.nnunet.worker import fingerprint_extractor\n"
        "extractor = fingerprint_extractor(1200)(1, 1, verbose=False)\n"
        "fingerprint = extractor.run(overwrite_existing=True)\n"
        "print(json.dumps([extractor.num_foreground_voxels_for_intensitystats,\n"
        "                  fingerprint['foreground_intensity_properties_per_channel']]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    drawn, stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert drawn == 1200
    cases = tmp_path / "nnUNet_raw" / "Dataset001_zoo"
    foreground = np.concatenate([
        np.array(Image.open(cases / "imagesTr" / f"case_0000{k}_0000.png"))[
            np.array(Image.open(cases / "labelsTr" / f"case_0000{k}.png")) > 0] for k in range(2)])
    assert 0 < len(foreground) < 2 * 20 * 30
    for channel in range(3):
        s = stats[str(channel)]
        assert s["min"] >= foreground[:, channel].min() and s["max"] <= foreground[:, channel].max()
        assert abs(s["mean"] - foreground[:, channel].mean()) < 12  # a sample of 600 per image


@pytest.mark.slow
def test_one_epoch_through_zoo_compare(tmp_path, tiny_demo):
    pytest.importorskip("nnunetv2")
    import torch

    from zoo.cli import main

    out = tmp_path / "runs"
    main(["compare", "--task", "semantic-seg", "--backends", "nnunet", "--data", str(tiny_demo), "--epochs", "2",
          "--budget", "1s", "--device", "cpu", "--out", str(out), "--set", "nnunet.iterations_per_epoch=2",
          "--set", "nnunet.val_iterations_per_epoch=1", "--set", "nnunet.mirroring=false"])
    run = out / "nnunet-semantic-seg"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and "nnunetv2" in manifest["versions"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["mIoU"] <= 1.0 and "mHD95" in metrics

    # nnU-Net's three folders live in the run folder; it trained on zoo's training images only
    nnunet = run / "work" / "nnunet"
    assert all((nnunet / f).is_dir() for f in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"))
    cases = json.loads((nnunet / "nnUNet_raw" / "Dataset001_zoo" / "zoo_cases.json").read_text())
    split = json.loads((run / "split.json").read_text())
    scored = set(split["val"])
    assert not scored & set(cases.values()) and len(cases) == len(split["train"])
    folds = json.loads((nnunet / "nnUNet_preprocessed" / "Dataset001_zoo" / "splits_final.json").read_text())
    assert sorted(folds[0]["train"] + folds[0]["val"]) == sorted(cases) and folds[0]["val"]
    assert json.loads((nnunet / "nnUNet_raw" / "Dataset001_zoo" / "dataset.json").read_text())["labels"]["ignore"] == 4

    # zoo's checkpoint: tensors and nnU-Net's plans as text, no pickle
    state = torch.load(run / "checkpoint" / "last.pt", weights_only=True)
    assert json.loads(state["extra"]["plans"])["configurations"]["2d"]["patch_size"]
    # planning and preprocessing alone spent the 1 s budget: one optimiser step, then the stop
    step = state["budget"].pop("step_seconds")
    assert state["budget"] == {"epochs": 1, "epochs_asked": 2, "stopped_inside_epoch": True} and step > 0
    assert "stopping inside epoch 1 after 1 step(s)" in (nnunet / "nnunet.log").read_text()

    # the plan nnU-Net chose is in the report, and the leaderboard has the row
    report = (run / "report.md").read_text()
    assert "## Plan (nnunet" in report and "| patch_size |" in report and "PlainConvUNet" in report
    assert manifest["plan"]["batch_size"] >= 1 and manifest["plan"]["stages"] >= 2
    with open(out / "compare" / "semantic-seg" / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["backend"] for r in rows] == ["nnunet"] and float(rows[0]["mIoU"]) == pytest.approx(metrics["mIoU"])
