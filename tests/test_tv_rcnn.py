"""torchvision R-CNN backends: conformance on the demo data, translation both ways checked
against known values (ground truth fed through the output translation scores AP 1.0), the
real labelme / X-AnyLabeling fixtures, offline weights, and a complete run folder."""

from __future__ import annotations

import time

import pytest
from flat_options import run_options

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from zoo.backend import RunContext  # noqa: E402
from zoo.config import resolve_config  # noqa: E402
from zoo.dataset import Dataset, ImageRecord, Instance  # noqa: E402
from zoo.selection import Selection  # noqa: E402
from zoo.errors import ConfigError, ZooError  # noqa: E402
from zoo.plugins.tv_models.rcnn import (  # noqa: E402
    DetectionSamples,
    RCNNConfig,
    anchor_sizes,
    build_model,
    flip_permutation,
)
from zoo.data.raster import instance_mask, rle_to_mask  # noqa: E402
from zoo.registry import get_registry  # noqa: E402
from zoo.tasks import get_task  # noqa: E402
from zoo.testing import Conformance, parametrize_with_checks  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Dataset:
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    out = tmp_path_factory.mktemp("tvdemo")
    write_demo(out, images=8, size=64, seed=0)
    return read_dataset(out)


# torchvision's heads are sized for COCO; tiny tests need far fewer RoIs, a thin keypoint head
# and the cheapest backbone
FAST = ["backbone=mobilenet_v3_large_fpn", "max_detections=20", "proposals=50", "rois_per_image=32", "keypoint_head_layers=2", "keypoint_head_channels=64"]


def _config(backend: str, task: str, **flags) -> RCNNConfig:
    from zoo.registry import get_registry

    cls = get_registry().backend(backend).load()
    base = {"epochs": 1, "imgsz": 64, "batch": 2, "device": "cpu"}
    return resolve_config(cls.Config, backend=backend, task=task, flags={**base, **flags}, sets=FAST)


CONFORMANCE = [Conformance(backend, task, sets=FAST)  # on 8 demo images
               for backend, task in [("faster-rcnn", "detect"), ("mask-rcnn", "instance-seg"),
                                     ("keypoint-rcnn", "keypoint")]]


@parametrize_with_checks(CONFORMANCE)
def test_conformance_on_demo(conformance, check):
    check(conformance)


@pytest.mark.parametrize("case", CONFORMANCE, ids=repr)
def test_conformance_run_on_demo(case):
    report, task = case.report(), case.task_name  # the training the checks above ran
    assert (report.run_dir / "checkpoint" / "last.pt").is_file()
    assert report.metrics["main"] == "AP" and report.predictions
    if task == "keypoint":
        # the 4-point skeleton is scored with the dataset's sigmas, not COCO's 17
        assert report.metrics["conventions"]["oks_sigmas"] == {n: 0.1 for n in ("top", "right", "bottom", "left")}
        assert all(len(d.keypoints) == 4 for p in report.predictions for d in p.detections)
    if task == "instance-seg":
        d = report.predictions[0].detections[0]
        assert tuple(d.mask["size"]) == (64, 64)


def _gt_as_output(samples: DetectionSamples, record: ImageRecord) -> dict:
    """What a perfect model would output for ``record``: its own training target."""
    image, target = samples(record)
    n = len(target["boxes"])
    out = {"boxes": target["boxes"], "labels": target["labels"], "scores": torch.ones(n)}
    if "masks" in target:
        out["masks"] = target["masks"][:, None].float()
    if "keypoints" in target:
        out["keypoints"] = target["keypoints"]
        out["keypoints_scores"] = torch.full(target["keypoints"].shape[:2], 10.0)
    return out


@pytest.mark.parametrize("imgsz", [64, 48])
@pytest.mark.parametrize("backend,task", [("mask-rcnn", "instance-seg"), ("keypoint-rcnn", "keypoint")])
def test_ground_truth_through_translation_scores_one(backend, task, imgsz, demo, tmp_path):
    """targets -> (as if predicted) -> canonical: back in original pixels; AP 1.0 at the
    images' own size, and close to it when imgsz shrinks them (downscale and inverse)."""
    from zoo.registry import get_registry

    cls = get_registry().backend(backend).load()
    task_obj = get_task(task)
    b = cls(task_obj, demo.meta(), _config(backend, task, imgsz=imgsz), RunContext(run_dir=tmp_path))
    samples = b._samples(train=False)
    ev = task_obj.evaluator(demo.meta())
    for record in demo.images:
        image, _ = samples(record)
        assert max(image.shape[-2:]) == imgsz
        sx = image.shape[-1] / record.width
        sy = image.shape[-2] / record.height
        pred = b._translate(record, _gt_as_output(samples, record), sx, sy)
        assert not task_obj.validate(pred, demo.meta())
        keep = [i for i in record.instances if not i.ignore]
        for det, inst in zip(pred.detections, keep):
            assert det.category == inst.category
            assert max(abs(p - q) for p, q in zip(det.bbox, inst.bbox)) < 1.5
        ev.process(record, pred)
    metrics = ev.evaluate()
    if imgsz == 64:
        assert metrics["AP"] == pytest.approx(1.0)
    else:  # 3-px platelets drawn on a 48-px grid and scaled back lose some overlap
        assert metrics["AP50"] > 0.85 and metrics["AP"] > 0.6


def test_samples_scale_and_flip(tmp_path):
    from PIL import Image

    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    rec = ImageRecord(id="a", width=200, height=100, file=tmp_path / "a.png")
    inst = Instance(0, (10.0, 20.0, 50.0, 60.0), keypoints=[(10.0, 20.0, 2), (50.0, 60.0, 2), (0.0, 0.0, 0)])
    rec.instances = [inst, Instance(-1, (0.0, 0.0, 5.0, 5.0), ignore=True)]
    flip = DetectionSamples("keypoint", imgsz=100, hflip=1.0, num_keypoints=3, flip_idx=[1, 0, 2])
    image, t = flip(rec)
    assert tuple(image.shape) == (3, 50, 100)
    # scaled by 0.5 then mirrored in a 100-px wide image; the ignored box is left out
    assert t["boxes"].tolist() == [[75.0, 10.0, 95.0, 30.0]]
    assert t["labels"].tolist() == [1]
    # points swap places (flip_idx) and mirror; an unlabelled point stays (0, 0, 0)
    assert t["keypoints"][0].tolist() == [[75.0, 30.0, 1.0], [95.0, 10.0, 1.0], [0.0, 0.0, 0.0]]


def test_flip_permutation(demo, tmp_path):
    assert flip_permutation(demo) == [0, 3, 2, 1]  # the demo's zoo.yaml flip_idx
    meta = Dataset(keypoint_names=["nose", "left_eye", "right_eye", "top"])
    assert flip_permutation(meta) == [0, 2, 1, 3]  # from the names
    # no flip_idx and no left/right names: unknown, so training does not flip
    assert flip_permutation(Dataset(keypoint_names=["tip", "base"])) is None
    # a flip order the files state (zoo.yaml, data.yaml), even "nothing moves": flipped
    import json

    from PIL import Image

    from zoo.data.reading import read_dataset

    (tmp_path / "zoo.yaml").write_text("keypoint_names: [tip, base]\nflip_idx: [0, 1]\n")
    (tmp_path / "a.json").write_text(json.dumps({"shapes": [], "imagePath": "a.png", "imageWidth": 4, "imageHeight": 4}))
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    assert flip_permutation(read_dataset(tmp_path)) == [0, 1]


def test_model_sized_for_imgsz_and_backbones():
    cfg = RCNNConfig(imgsz=160, backbone="resnet18_fpn")
    model = build_model("faster", cfg, num_classes=3)
    assert model.transform.min_size == (160,) and model.transform.max_size == 160
    assert anchor_sizes(cfg) == (6.4, 12.8, 25.6, 51.2, 102.4)
    # from scratch: trainable batch norm, all layers trained
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="did you mean 'resnet50_fpn'"):
        resolve_config(RCNNConfig, backend="faster-rcnn", task="detect", sets=["backbone=resnet50fpn"])


def test_pretrained_offline_is_a_fast_clear_error(tmp_path, monkeypatch, demo):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    cfg = _config("faster-rcnn", "detect", pretrained=True)
    FasterRCNN = get_registry().backend("faster-rcnn").load()

    b = FasterRCNN(get_task("detect"), demo.meta(), cfg, RunContext(run_dir=tmp_path / "run"))
    t0 = time.perf_counter()
    with pytest.raises(ZooError, match=r"mobilenet_v3_large-\w+\.pth is not cached.*download https://download.pytorch.org/"):
        b.fit(demo, Selection.of(get_task("detect")))
    assert time.perf_counter() - t0 < 5


def test_pretrained_from_cache_and_weights_file(tmp_path, monkeypatch, demo):
    """A weights file in the torch cache is used without any network; --weights FILE too."""
    from torchvision.models import get_model, get_model_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = get_model_weights("mobilenet_v3_large").DEFAULT.url
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(1)
    reference = get_model("mobilenet_v3_large", weights=None).state_dict()
    torch.save(reference, cache / url.rsplit("/", 1)[1])

    cfg = RCNNConfig(imgsz=64, pretrained=True, backbone="mobilenet_v3_large_fpn")
    model = build_model("faster", cfg, num_classes=4)
    got = model.backbone.body.state_dict()
    name = next(k for k in got if k.endswith("weight") and got[k].ndim == 4)
    assert torch.equal(got[name], reference[f"features.{name}"])

    # --weights: a zoo checkpoint of a 3-class model starts a 4-class one (heads left as initialised)
    from zoo.training.weights import load_matching
    from zoo.training import weights_of

    cfg1 = _config("faster-rcnn", "detect")
    saved = build_model("faster", cfg1, num_classes=4).state_dict()
    torch.save({"model": saved, "epoch": 0}, tmp_path / "previous.pt")
    start = build_model("faster", cfg1, num_classes=5)
    loaded = load_matching(start, weights_of(tmp_path / "previous.pt"), "previous.pt")
    assert 0 < loaded < len(start.state_dict())
    assert torch.equal(start.backbone.fpn.inner_blocks[0][0].weight, saved["backbone.fpn.inner_blocks.0.0.weight"])
    assert start.roi_heads.box_predictor.cls_score.weight.shape[0] == 5
    meta4 = Dataset(categories=["a", "b", "c", "d"], images=demo.images)
    second = get_registry().backend("faster-rcnn").load()(get_task("detect"), meta4, cfg1, RunContext(run_dir=tmp_path / "second"))
    (tmp_path / "junk.pt").write_bytes(b"nope")
    second.config = _config("faster-rcnn", "detect", weights=str(tmp_path / "junk.pt"))
    with pytest.raises(ZooError, match="junk.pt: not a readable checkpoint"):
        second.fit(demo, Selection.of(get_task("detect")))


def _fit_predict(name, task_name, data, tmp_path, **flags):
    task = get_task(task_name)
    task.check(data)
    cls = get_registry().backend(name).load()
    cfg = _config(name, task_name, **flags)
    b = cls(task, data.meta(), cfg, RunContext(run_dir=tmp_path))
    b.fit(data, Selection.of(task))
    preds = list(b.predict(data.images))
    assert [p.image_id for p in preds] == [r.id for r in data.images]
    for p in preds:
        assert not task.validate(p, data.meta()), task.validate(p, data.meta())[:3]
    ev = task.evaluator(data.meta())
    for r, p in zip(data.images, preds):
        ev.process(r, p)
    return preds, ev.evaluate()


@pytest.mark.fixtures
def test_real_labelme_instance_segmentation(real_fixtures, tmp_path):
    from zoo.data.reading import read_dataset

    data = read_dataset(real_fixtures / "labelme" / "instance_segmentation")
    # the person split in two polygons (group_id) is one instance whose target mask covers both
    rec = next(r for r in data.images if any(len(i.polygons) > 1 for i in r.instances))
    inst = next(i for i in rec.instances if len(i.polygons) > 1)
    samples = DetectionSamples("mask", imgsz=rec.width)  # no downscale: compare pixel for pixel
    _, target = samples(rec)
    k = [i for i in rec.instances if not i.ignore].index(inst)
    assert torch.equal(target["masks"][k].bool(), torch.from_numpy(instance_mask(inst, rec.height, rec.width)))
    preds, metrics = _fit_predict("mask-rcnn", "instance-seg", data, tmp_path, imgsz=96)
    for r, p in zip(data.images, preds):
        for d in p.detections[:3]:
            assert rle_to_mask(d.mask).shape == (r.height, r.width)
    assert "AP" in metrics


@pytest.mark.fixtures
def test_real_xanylabeling_person_keypoints(real_fixtures, tmp_path):
    from zoo.data.reading import read_dataset

    data = read_dataset(real_fixtures / "keypoints" / "X-AnyLabeling_human_pose")
    assert len(data.keypoint_names) == 17
    assert flip_permutation(data)[1:3] == [2, 1]  # left_eye <-> right_eye
    preds, metrics = _fit_predict("keypoint-rcnn", "keypoint", data, tmp_path, imgsz=96)
    assert all(len(d.keypoints) == 17 for p in preds for d in p.detections)
    assert metrics["conventions"]["oks_sigmas"]["nose"] == pytest.approx(0.026)


def test_end_to_end_run_folder(tmp_path):
    from zoo.data.demo import write_demo
    from zoo.pipeline.run import execute

    write_demo(tmp_path / "data", images=12, size=64, seed=0)
    result = execute(
        run_options(task="detect", backend="faster-rcnn", quiet=True, data=tmp_path / "data",
                    flags={"epochs": 1, "imgsz": 64, "batch": 4, "device": "cpu"}, sets=FAST,
                    out=tmp_path / "runs")
    )
    run = result.run_dir
    for name in ("config.yaml", "split.json", "manifest.json", "metrics.json", "report.md", "checkpoint/last.pt"):
        assert (run / name).exists(), name
    assert result.metrics["main"] == "AP"


def _pyramid(seed: int, dtype=None):
    from collections import OrderedDict

    g = torch.Generator().manual_seed(seed)
    feats = OrderedDict((str(i), torch.randn(2, 8, 40 >> i, 48 >> i, generator=g, requires_grad=True))
                        for i in range(4))
    feats["pool"] = torch.randn(2, 8, 3, 3, generator=g)  # FPN's extra level: not pooled from
    boxes = []
    for _ in range(2):
        b = torch.rand(60, 4, generator=g) * torch.tensor([150.0, 120, 150, 120])
        b[:, 2:] = b[:, :2] + torch.rand(60, 2, generator=g) * 200 + 0.2  # some past the image
        b[:3, :2] = 0  # on the top-left edge
        b[3:6, 2], b[6:9, 3] = 192, 160  # on the right / bottom edge
        b[9:12, 2:] = b[9:12, :2] + 0.3  # under a pixel wide: counted as one
        b[12:14, :2] = -3  # starting outside: samples beyond one pixel count zero
        b[14:17] = torch.tensor([-10.0, -10, 700, 650])  # large enough for the coarsest level, mostly outside
        boxes.append(b)
    return feats, boxes, [(160, 192)] * 2


@pytest.mark.parametrize("output_size", [(7, 7), (14, 14)])  # the box and the mask heads' pools
def test_sparse_roi_align_equals_torchvision_forward_and_backward(output_size):
    from torchvision.ops import MultiScaleRoIAlign

    from zoo.plugins.tv_models.roi_align import SparseMultiScaleRoIAlign

    reference = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size, 2)
    sparse = SparseMultiScaleRoIAlign.like(reference).train()
    feats, boxes, shapes = _pyramid(0)
    want = reference(feats, boxes, shapes)
    levels = reference.map_levels(boxes)
    assert len(set(levels.tolist())) == 4  # every level pooled from
    got = sparse(feats, boxes, shapes)
    assert got.shape == want.shape == (120, 8, *output_size) and got.dtype == want.dtype
    assert torch.allclose(got, want, atol=1e-4) and float(want.detach().abs().max()) > 1
    grad = torch.randn_like(want)
    levels = [feats[k] for k in "0123"]
    for g_sparse, g_ref in zip(torch.autograd.grad(got, levels, grad), torch.autograd.grad(want, levels, grad)):
        assert torch.allclose(g_sparse, g_ref, atol=1e-4) and float(g_ref.abs().max()) > 0.1
    sparse.eval()  # evaluation (and export) run torchvision's own op
    assert torch.equal(sparse(feats, boxes, shapes), want)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as the R-CNNs train on a bf16 CPU
        half = {k: v.bfloat16() for k, v in feats.items()}
        sparse.train()
        got, want = sparse(half, boxes, shapes), reference(half, boxes, shapes)
    assert got.dtype == want.dtype == torch.bfloat16
    assert torch.allclose(got.float(), want.float(), atol=0.02, rtol=0.01)


def test_the_rcnns_pool_through_the_sparse_roi_align():
    from zoo.plugins.tv_models.roi_align import SparseMultiScaleRoIAlign

    cfg = RCNNConfig(imgsz=64)
    for kind, pools in (("faster", ["box"]), ("mask", ["box", "mask"]), ("keypoint", ["box", "keypoint"])):
        model = build_model(kind, cfg, 3, num_keypoints=4 if kind == "keypoint" else 0)
        for name in ("box", "mask", "keypoint"):
            pool = getattr(model.roi_heads, f"{name}_roi_pool", None)
            assert isinstance(pool, SparseMultiScaleRoIAlign) == (name in pools)
    feats, boxes, shapes = _pyramid(1)
    pooled = SparseMultiScaleRoIAlign.like(model.roi_heads.box_roi_pool).train()(feats, boxes, shapes)
    assert pooled.is_contiguous()  # the keypoint head's loss .view()s it, as torchvision's output
