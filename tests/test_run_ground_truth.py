"""A run converts each scored split's ground truth to COCO once: data/val_coco.json and the
val scores share one conversion (zoo.evaluation.coco.GroundTruth), and the selection images
scored every epoch share another; nothing is kept between runs."""

from __future__ import annotations

import json

import toy_backend

from flat_options import run_options
import zoo.evaluation.coco as coco
from zoo.pipeline.run import execute


def test_a_run_converts_each_split_once(tmp_path, tiny_demo, monkeypatch):
    converted = []
    real = coco.evaluation_ground_truth

    def counted(dataset, iou_type, *args, **kwargs):
        converted.append((tuple(r.id for r in dataset.images), iou_type))
        return real(dataset, iou_type, *args, **kwargs)

    monkeypatch.setattr(coco, "evaluation_ground_truth", counted)
    done = execute(run_options(task="instance-seg", backend="oracle", registry=toy_backend.registry(), quiet=True,
                               data=tiny_demo, flags={"device": "cpu"}, out=tmp_path / "runs"))
    val = tuple(json.loads((done.run_dir / "split.json").read_text())["val"])
    assert val and converted.count((val, "segm")) == 1
    assert len(converted) == len(set(converted))  # no split converted twice
