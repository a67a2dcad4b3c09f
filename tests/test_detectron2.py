"""detectron2 backends: conformance per backend and task, translation both ways checked
against known values (ground truth fed back through it scores AP 1.0), config mapping and
refusals, resume from zoo's own checkpoint, the real fixtures, and `zoo install`.

detectron2 is not on PyPI under its own name: `zoo install detectron2` installs it (CI runs
it); where it is not importable the tests that need it skip, saying so.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math

import pytest
from flat_options import compare_options

from zoo.backend import RunContext
from zoo.config import resolve_config
from zoo.dataset import Dataset
from zoo.errors import ConfigError, MissingDependency
from zoo.registry import get_registry
from zoo.selection import Selection
from zoo.tasks import get_task
from zoo.testing import Conformance, parametrize_with_checks

HAVE_D2 = importlib.util.find_spec("detectron2") is not None
needs_d2 = pytest.mark.skipif(not HAVE_D2, reason="detectron2 is not importable here: run `zoo install detectron2`")

# tiny tests need far fewer RoIs and a thin keypoint head (the model zoo's is 8 x 512 convs)
FAST = ["max_detections=20", "proposals=50", "rois_per_image=32"]
THIN_KEYPOINT_HEAD = "opts={MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS: [64, 64]}"
BACKENDS = ("d2-faster-rcnn", "d2-mask-rcnn", "d2-keypoint-rcnn", "d2-retinanet", "d2-cascade-rcnn")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Dataset:
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    out = tmp_path_factory.mktemp("d2demo")
    write_demo(out, images=8, size=64, seed=0)
    return read_dataset(out)


def _config(backend: str, task: str, sets=(), **flags):
    cls = get_registry().backend(backend).load()
    base = {"epochs": 1, "imgsz": 64, "batch": 2, "device": "cpu"}
    return resolve_config(cls.Config, backend=backend, task=task, flags={**base, **flags}, sets=[*FAST, *sets])


# ----------------------------------------------------------------------------- without detectron2


def test_specs_name_the_install_command_without_importing_detectron2():
    from dataclasses import replace

    specs = {n: get_registry().backends[n] for n in BACKENDS}
    assert specs["d2-cascade-rcnn"].tasks == ("detect", "instance-seg")
    assert all(s.plugin == "detectron2" and s.install == "zoo install detectron2" for s in specs.values())
    # what a machine without detectron2 sees (zoo list's column and the error on use)
    ghost = replace(specs["d2-faster-rcnn"], requires=("detectron2_not_installed_here",))
    assert not ghost.installed and ghost.install_hint == "zoo install detectron2"
    with pytest.raises(MissingDependency, match=r"needs detectron2_not_installed_here.*: zoo install detectron2$"):
        ghost.load()
    assert "detectron2" in get_registry().installers


def test_installer_renames_the_wheel_and_holds_torch(tmp_path):
    from zoo.plugins.detectron2.install import _any_python_name, _constraints

    wheel = tmp_path / "sal_detectron2-0.7.2-cp310-none-any.whl"
    wheel.write_bytes(b"zip")
    assert _any_python_name(wheel).name == "sal_detectron2-0.7.2-py3-none-any.whl"
    held = _constraints(tmp_path / "held.txt").read_text().split()
    if importlib.util.find_spec("torch"):
        assert f"torch=={importlib.metadata.version('torch')}" in held


# ----------------------------------------------------------------------------- with detectron2


@needs_d2
def test_install_does_nothing_when_importable(capsys):
    from zoo.cli import main

    main(["install", "detectron2"])
    assert "already importable" in capsys.readouterr().err


@needs_d2
def test_config_maps_imgsz_anchors_and_scratch_settings(demo):
    from zoo.plugins.detectron2.settings import build_cfg

    c = _config("d2-faster-rcnn", "detect", imgsz=160)
    cfg = build_cfg("faster", "detect", demo.meta(), c, "cpu", from_weights=False, max_iter=90)
    assert cfg.INPUT.MIN_SIZE_TRAIN == (160,) and cfg.INPUT.MAX_SIZE_TRAIN == 160
    assert cfg.INPUT.MIN_SIZE_TEST == 160 and cfg.INPUT.MAX_SIZE_TEST == 160
    # the model zoo's 32..512 px anchors for 800-px images, scaled as the torchvision backends scale theirs
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[6.4], [12.8], [25.6], [51.2], [102.4]]
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == len(demo.categories) and not cfg.MODEL.MASK_ON
    # from scratch: batch norm that learns, every stage trained, warm-up capped at a fifth
    assert cfg.MODEL.RESNETS.NORM == "BN" and cfg.MODEL.BACKBONE.FREEZE_AT == 0
    assert cfg.SOLVER.WARMUP_ITERS == 18 and cfg.SOLVER.MAX_ITER == 90 and cfg.SOLVER.BASE_LR == 0.01
    assert cfg.MODEL.WEIGHTS == ""  # zoo loads weights itself: detectron2 never downloads
    # from weights: the model zoo's frozen batch norm and frozen stem stay
    pre = build_cfg("faster", "detect", demo.meta(), c, "cpu", from_weights=True)
    assert pre.MODEL.RESNETS.NORM == "FrozenBN" and pre.MODEL.BACKBONE.FREEZE_AT == 2
    retina = build_cfg("retinanet", "detect", demo.meta(), _config("d2-retinanet", "detect", imgsz=80), "cpu",
                       from_weights=False)
    assert retina.MODEL.RETINANET.NUM_CLASSES == len(demo.categories)
    assert retina.MODEL.ANCHOR_GENERATOR.SIZES[0] == [3.2, 4.03, 5.08]  # 32 * 2^(k/3), scaled by 80/800
    kp = build_cfg("keypoint", "keypoint", demo.meta(), _config("d2-keypoint-rcnn", "keypoint"), "cpu",
                   from_weights=False)
    assert kp.MODEL.KEYPOINT_ON and kp.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == 4


@needs_d2
def test_bad_settings_are_clear_errors_with_the_near_miss(demo, tmp_path):
    from zoo.plugins.detectron2.settings import build_cfg

    with pytest.raises(ConfigError, match="unknown key 'lrr'.*did you mean 'lr'"):
        _config("d2-faster-rcnn", "detect", sets=["lrr=0.1"])

    def cfg(kind, task, *sets):
        backend = {"faster": "d2-faster-rcnn", "retinanet": "d2-retinanet", "mask": "d2-mask-rcnn"}[kind]
        return build_cfg(kind, task, demo.meta(), _config(backend, task, sets=sets), "cpu", from_weights=False)

    with pytest.raises(ConfigError, match=r"unknown detectron2 key 'MODEL.RPN.NMS_THRES'.*did you mean 'MODEL.RPN.NMS_THRESH'"):
        cfg("faster", "detect", "opts={MODEL.RPN.NMS_THRES: 0.6}")
    assert cfg("faster", "detect", "opts={MODEL.RPN.NMS_THRESH: 0.6}").MODEL.RPN.NMS_THRESH == 0.6
    with pytest.raises(ConfigError, match="did you mean 'COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml'"):
        cfg("faster", "detect", "config=COCO-Detection/faster_rcnn_R_50_FPN_3x.yml")
    with pytest.raises(ConfigError, match=r"LazyConfig \(.py\)"):
        cfg("faster", "detect", "config=COCO-Detection/retinanet_R_50_FPN_1x.py")
    with pytest.raises(ConfigError, match="builds a GeneralizedRCNN.*needs a RetinaNet config"):
        cfg("retinanet", "detect", "config=COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml")
    # a local YAML on top of a model-zoo base works; one with Python tags is never loaded
    (tmp_path / "mine.yaml").write_text("_BASE_: base.yaml\nMODEL:\n  RPN:\n    NMS_THRESH: 0.65\n")
    from zoo.plugins.detectron2.settings import model_zoo_root

    (tmp_path / "base.yaml").write_text((model_zoo_root() / "Base-RCNN-FPN.yaml").read_text())
    assert cfg("faster", "detect", f"config={tmp_path / 'mine.yaml'}").MODEL.RPN.NMS_THRESH == 0.65
    (tmp_path / "base.yaml").write_text("MODEL: !!python/object/apply:os.system [echo pwned]\n")
    with pytest.raises(ConfigError, match="base.yaml: not plain YAML"):
        cfg("faster", "detect", f"config={tmp_path / 'mine.yaml'}")


@needs_d2
def test_configs_that_need_compiled_ops_are_refused(demo):
    from zoo.plugins.detectron2.ops import compiled_ops_available
    from zoo.plugins.detectron2.settings import build_cfg

    if compiled_ops_available():
        pytest.skip("this detectron2 has its compiled ops: nothing to refuse")
    c = _config("d2-mask-rcnn", "instance-seg", sets=["config=Misc/mask_rcnn_R_50_FPN_3x_dconv_c3-c5.yaml"])
    with pytest.raises(ConfigError, match=r"compiled ops.*DEFORM_ON_PER_STAGE \(deformable convolution\)"):
        build_cfg("mask", "instance-seg", demo.meta(), c, "cpu", from_weights=False)
    c = _config("d2-faster-rcnn", "detect", sets=["opts={MODEL.PROPOSAL_GENERATOR.NAME: RRPN}"])
    with pytest.raises(ConfigError, match="RRPN"):
        build_cfg("faster", "detect", demo.meta(), c, "cpu", from_weights=False)


@needs_d2
@pytest.mark.parametrize("task", ["detect", "instance-seg", "keypoint"])
def test_ground_truth_through_translation_scores_one(task, demo):
    """canonical -> detectron2 dataset dict -> detectron2's own Instances -> (as if predicted)
    -> canonical: AP 1.0, with the demo's 4-point skeleton scored with its own sigmas."""
    import torch
    from detectron2.data.detection_utils import annotations_to_instances
    from detectron2.structures import Instances

    from zoo.plugins.detectron2.data import record_dict
    from zoo.plugins.detectron2.translate import instances_to_prediction

    task_obj = get_task(task)
    ev = task_obj.evaluator(demo.meta())
    for record in demo.images:
        d = record_dict(record, masks=task == "instance-seg", num_keypoints=4 if task == "keypoint" else 0)
        for ann in d["annotations"]:  # (K, 3), as detectron2's transform_instance_annotations leaves them
            if "keypoints" in ann:
                ann["keypoints"] = torch.tensor(ann["keypoints"]).reshape(-1, 3).numpy()
        gt = annotations_to_instances(d["annotations"], (record.height, record.width), mask_format="bitmask")
        pred = Instances(gt.image_size, pred_boxes=gt.gt_boxes, pred_classes=gt.gt_classes,
                         scores=torch.ones(len(gt)))
        if gt.has("gt_masks"):
            pred.pred_masks = gt.gt_masks.tensor
        if gt.has("gt_keypoints"):
            pred.pred_keypoints = gt.gt_keypoints.tensor
        out = instances_to_prediction(record.id, pred, record.width, record.height)
        assert not task_obj.validate(out, demo.meta())
        keep = [i for i in record.instances if not i.ignore]
        assert [det.category for det in out.detections] == [i.category for i in keep]
        for det, inst in zip(out.detections, keep):
            assert det.bbox == pytest.approx(inst.bbox, abs=1e-3)
        ev.process(record, out)
    metrics = ev.evaluate()
    assert metrics["AP"] == pytest.approx(1.0)
    if task == "keypoint":
        assert metrics["conventions"]["oks_sigmas"] == {n: 0.1 for n in ("top", "right", "bottom", "left")}


@needs_d2
def test_mapper_scales_to_imgsz_and_flips_keypoints_by_the_data(demo):
    """The training input: the image's longer side at imgsz, annotations scaled with it, and
    a flip swaps right and left (the demo's flip_idx) instead of mirroring names."""
    from detectron2.data import transforms as T

    from zoo.plugins.detectron2.data import RecordMapper, dataset_dicts, registered
    from zoo.plugins.detectron2.settings import build_cfg

    record = demo.images[0]
    c = _config("d2-keypoint-rcnn", "keypoint", imgsz=32, sets=["opts={INPUT.RANDOM_FLIP: none}"])
    with registered("t", [record], demo.meta(), masks=False, num_keypoints=4, flip_idx=[0, 3, 2, 1]) as name:
        cfg = build_cfg("keypoint", "keypoint", demo.meta(), c, "cpu", from_weights=False)
        cfg.defrost()
        cfg.DATASETS.TRAIN = (name,)
        out = RecordMapper(cfg, True, [record])(dataset_dicts([record], masks=False, num_keypoints=4)[0])
        assert tuple(out["image"].shape) == (3, 32, 32)
        inst = next(i for i in record.instances if not i.ignore)
        assert out["instances"].gt_boxes.tensor[0].tolist() == pytest.approx([v / 2 for v in inst.bbox], abs=1e-4)
        cfg.INPUT.RANDOM_FLIP = "horizontal"
        flipper = RecordMapper(cfg, True, [record])
        assert isinstance(flipper.base.augmentations.augs[-1], T.RandomFlip)
        flipper.base.augmentations.augs[-1] = T.RandomFlip(prob=1.0)  # always, for the test
        flipped = flipper(dataset_dicts([record], masks=False, num_keypoints=4)[0])
    kp = out["instances"].gt_keypoints.tensor[0]
    fk = flipped["instances"].gt_keypoints.tensor[0]
    assert fk[1, 0].item() == pytest.approx(32 - kp[3, 0].item(), abs=1e-4)  # right <- mirrored left
    assert fk[3, 0].item() == pytest.approx(32 - kp[1, 0].item(), abs=1e-4)


CONFORMANCE = [  # on 8 demo images
    Conformance(backend, task, sets=[*FAST, THIN_KEYPOINT_HEAD] if task == "keypoint" else FAST)
    for backend, task in [("d2-faster-rcnn", "detect"), ("d2-mask-rcnn", "instance-seg"), ("d2-mask-rcnn", "detect"),
                          ("d2-keypoint-rcnn", "keypoint"), ("d2-retinanet", "detect"), ("d2-cascade-rcnn", "detect"),
                          ("d2-cascade-rcnn", "instance-seg")]
]


@needs_d2
@pytest.mark.slow
@parametrize_with_checks(CONFORMANCE)
def test_conformance_on_demo(conformance, check):
    check(conformance)


@needs_d2
@pytest.mark.slow
@pytest.mark.parametrize("case", CONFORMANCE, ids=repr)
def test_conformance_checkpoints_on_demo(case):
    from zoo.training import load_checkpoint

    report, backend, task = case.report(), case.backend, case.task_name  # the training the checks ran
    state = load_checkpoint(report.run_dir / "checkpoint" / "last.pt")  # weights_only=True
    assert state["iteration"] == 3 and state["extra"]["backend"] == backend
    # the conformance checks play --select best: the epoch scored on the selection split is best.pt
    assert load_checkpoint(report.run_dir / "checkpoint" / "best.pt")["iteration"] == 3
    assert report.metrics["main"] == "AP"
    for p in report.predictions:
        for d in p.detections:
            assert (d.mask is not None) == (task == "instance-seg")
            assert (d.keypoints is not None and len(d.keypoints) == 4) == (task == "keypoint")


@needs_d2
@pytest.mark.slow
def test_resume_continues_from_zoos_checkpoint(demo, tmp_path, caplog):
    import logging

    import torch

    from zoo.training import load_checkpoint

    D2RetinaNet = get_registry().backend("d2-retinanet").load()

    task = get_task("detect")
    first = D2RetinaNet(task, demo.meta(), _config("d2-retinanet", "detect"), RunContext(run_dir=tmp_path))
    first.fit(demo, Selection.of(first.task))
    after_one = load_checkpoint(tmp_path / "checkpoint" / "last.pt")
    assert after_one["iteration"] == 4  # 8 images, batch 2
    ctx = RunContext(run_dir=tmp_path, resume=True)
    second = D2RetinaNet(task, demo.meta(), _config("d2-retinanet", "detect", epochs=2), ctx)
    with caplog.at_level(logging.INFO, logger="zoo"):
        own = second.fit(demo, Selection.of(second.task))
    assert own["iterations"] == 8 and math.isfinite(own["loss"])
    assert "resuming from" in caplog.text and "at iteration 4" in caplog.text
    after_two = load_checkpoint(tmp_path / "checkpoint" / "last.pt")
    assert after_two["iteration"] == 8
    name = next(k for k in after_one["model"] if k.endswith("cls_score.weight"))
    assert not torch.equal(after_one["model"][name], after_two["model"][name])


def _fit_predict(backend, task_name, data, tmp_path, sets=(), **flags):
    cls = get_registry().backend(backend).load()
    task = get_task(task_name)
    task.check(data)
    b = cls(task, data.meta(), _config(backend, task_name, sets=sets, **flags), RunContext(run_dir=tmp_path))
    b.fit(data, Selection.of(task))
    preds = list(b.predict(data.images))
    assert [p.image_id for p in preds] == [r.id for r in data.images]
    ev = task.evaluator(data.meta())
    for r, p in zip(data.images, preds):
        assert not task.validate(p, data.meta()), task.validate(p, data.meta())[:3]
        ev.process(r, p)
    return preds, ev.evaluate()


@needs_d2
@pytest.mark.slow
@pytest.mark.fixtures
def test_real_labelme_instance_segmentation(real_fixtures, tmp_path):
    from zoo.data.raster import rle_to_mask
    from zoo.data.reading import read_dataset

    data = read_dataset(real_fixtures / "labelme" / "instance_segmentation")
    preds, metrics = _fit_predict("d2-mask-rcnn", "instance-seg", data, tmp_path, imgsz=96)
    for r, p in zip(data.images, preds):
        for d in p.detections[:3]:
            assert rle_to_mask(d.mask).shape == (r.height, r.width)
    assert "AP" in metrics


@needs_d2
@pytest.mark.slow
@pytest.mark.fixtures
def test_real_xanylabeling_person_keypoints(real_fixtures, tmp_path):
    from zoo.data.reading import read_dataset

    data = read_dataset(real_fixtures / "keypoints" / "X-AnyLabeling_human_pose")
    assert len(data.keypoint_names) == 17
    preds, metrics = _fit_predict("d2-keypoint-rcnn", "keypoint", data, tmp_path, sets=[THIN_KEYPOINT_HEAD], imgsz=96)
    assert all(len(d.keypoints) == 17 for p in preds for d in p.detections)
    assert metrics["conventions"]["oks_sigmas"]["nose"] == pytest.approx(0.026)


@needs_d2
@pytest.mark.slow
def test_compare_puts_frameworks_on_one_split_and_names_them(tiny_demo, tmp_path):
    import csv

    from zoo.pipeline.compare import compare

    sets = [f"{b}.{s}" for b in ("faster-rcnn", "d2-faster-rcnn") for s in FAST] + ["faster-rcnn.backbone=mobilenet_v3_large_fpn"]
    result = compare(compare_options(task="detect", backends=["faster-rcnn", "d2-faster-rcnn", "yolov8"],
                                     data=tiny_demo, sets=sets,
                                     flags={"device": "cpu", "epochs": 1, "imgsz": 64, "batch": 4},
                                     out=tmp_path / "runs"))
    with open(result.folder / "leaderboard.csv", newline="") as f:
        rows = {r["backend"]: r for r in csv.DictReader(f)}
    assert {b: r["framework"] for b, r in rows.items()} == {
        "faster-rcnn": "torchvision", "d2-faster-rcnn": "detectron2", "yolov8": "ultralytics"}
    assert all(r["status"] == "trained" for r in rows.values()), rows
    splits = {(tmp_path / "runs" / f"{b}-detect" / "split.json").read_text() for b in rows}
    assert len(splits) == 1  # one split for every framework


@needs_d2
def test_model_zoo_weights_offline_arrays_only(demo, tmp_path, monkeypatch):
    """pretrained: the model zoo's checkpoint fetched into the cache (offline: one clear error); a
    .pkl is read with an unpickler that builds numpy arrays and nothing else."""
    import pickle

    import numpy as np
    from detectron2.modeling import build_model

    from zoo.errors import ZooError
    from zoo.plugins.detectron2.settings import build_cfg
    from zoo.plugins.detectron2.weights import cached_model_zoo_weights, load_into, read_weights

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    with pytest.raises(ZooError, match=r"model_final_280758.pkl is not cached.*download https://dl.fbaipublicfiles.com/"
                                       r"detectron2/COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl"
                                       r" and put it at .*home/weights/detectron2/COCO-Detection/"
                                       r"faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl"):
        cached_model_zoo_weights("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")

    cfg = build_cfg("retinanet", "detect", demo.meta(), _config("d2-retinanet", "detect"), "cpu", from_weights=True)
    model = build_model(cfg)
    # a model-zoo style file: {"model": name -> ndarray}, for another number of classes
    arrays = {k: v.numpy() + 1.0 for k, v in model.state_dict().items() if "cls_score" not in k}
    arrays["head.cls_score.weight"] = np.zeros((9 * 80, 256, 3, 3), dtype=np.float32)
    local = tmp_path / "home/weights/detectron2/COCO-Detection/retinanet_R_50_FPN_3x/190397829/model_final_5bd44e.pkl"
    # fetched from a mirror on 127.0.0.1 into the cache, at the path of its model-zoo URL
    from test_fetch import serve

    monkeypatch.delenv("ZOO_OFFLINE")
    published = pickle.dumps({"model": arrays, "__author__": "Detectron2 Model Zoo"})
    with serve(tmp_path / "mirror", {local.name: published}) as mirror:
        monkeypatch.setenv("ZOO_WEIGHTS_MIRROR", mirror.url)
        assert cached_model_zoo_weights("COCO-Detection/retinanet_R_50_FPN_3x.yaml") == local
    assert local.read_bytes() == published and mirror.requests == [f"/{local.name}"]
    before = model.head.cls_score.weight.detach().clone()
    load_into(model, read_weights(local), str(local))
    name = "backbone.fpn_output3.weight"
    assert np.allclose(model.state_dict()[name].numpy(), arrays[name])
    assert model.head.cls_score.weight.equal(before)  # 80 COCO classes do not fit: left as initialised

    class Hostile:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"model": {"x": Hostile()}}))
    with pytest.raises(ZooError, match=r"bad.pkl: not a readable detectron2 weights file.*refusing to load builtins.print"):
        read_weights(bad)
