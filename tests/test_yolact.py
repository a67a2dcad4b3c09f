"""The yolact / yolact++ backends (zoo's own YOLACT): Fast NMS against hand-worked cases,
mask assembly and cropping, the losses on hand-computed examples, ignored regions, anchors,
translation checked with ground truth fed back (AP 1.0), conformance (a real training
step, a checkpoint loaded back predicts the same), and the real labelme fixtures."""

from __future__ import annotations

import math

import pytest
from flat_options import run_options

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from zoo.backend import RunContext  # noqa: E402
from zoo.plugins.yolact.boxes import (  # noqa: E402
    PAPER_SIZES,
    decode,
    encode,
    level_shapes,
    make_anchors,
    scaled_sizes,
    to_corners,
)
from zoo.plugins.yolact.loss import (  # noqa: E402
    LossWeights,
    YolactLoss,
    hard_negatives,
    mask_loss,
    match,
)
from zoo.plugins.yolact.masks import assemble, crop  # noqa: E402
from zoo.plugins.yolact.nms import fast_nms, standard_nms  # noqa: E402
from zoo.selection import Selection  # noqa: E402
from zoo.tasks import get_task  # noqa: E402
from zoo.testing import Conformance, parametrize_with_checks  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    out = tmp_path_factory.mktemp("yolactdemo")
    write_demo(out, images=8, size=64, seed=0)
    return read_dataset(out)


# ----------------------------------------------------------------------------- Fast NMS

# three boxes in a row, 10 px tall: A-B and B-C overlap with IoU 7/13 = 0.54, A-C only 4/16 = 0.25
A, B, C = [0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 13.0, 10.0], [6.0, 0.0, 16.0, 10.0]


def _kept(nms, boxes, scores, **kw):
    idx, classes, sc = nms(torch.tensor(boxes), torch.tensor(scores), **kw)
    return sorted(zip(classes.tolist(), idx.tolist()))


def test_fast_nms_lets_a_suppressed_box_suppress_where_standard_nms_does_not():
    boxes, scores = [A, B, C], [[0.9, 0.8, 0.7]]
    # standard NMS: A removes B; B is gone, so it cannot remove C (A-C overlap 0.25 <= 0.5)
    assert _kept(standard_nms, boxes, scores, iou_threshold=0.5) == [(0, 0), (0, 2)]
    # Fast NMS: C's largest IoU with any higher-scored box is B's 0.54 > 0.5, kept or not
    assert _kept(fast_nms, boxes, scores, iou_threshold=0.5) == [(0, 0)]
    # a looser threshold keeps all three in both
    assert _kept(fast_nms, boxes, scores, iou_threshold=0.6) == _kept(standard_nms, boxes, scores, iou_threshold=0.6) == [(0, 0), (0, 1), (0, 2)]


def test_fast_nms_agrees_with_standard_nms_when_suppressed_boxes_suppress_nothing_else():
    far = [40.0, 0.0, 50.0, 10.0]
    boxes = [A, B, far]
    # per class: class 0 ranks A > B > far, class 1 ranks B first, so B survives there
    scores = [[0.9, 0.8, 0.7], [0.1, 0.6, 0.01]]
    expected = [(0, 0), (0, 2), (1, 1)]  # far's class-1 score is under the 0.05 threshold
    assert _kept(fast_nms, boxes, scores) == _kept(standard_nms, boxes, scores) == expected
    idx, classes, sc = fast_nms(torch.tensor(boxes), torch.tensor(scores))
    assert sorted(sc.tolist(), reverse=True) == pytest.approx([0.9, 0.7, 0.6])


def test_batched_iou_is_torchvisions_per_row():
    from torchvision.ops import box_iou

    from zoo.plugins.yolact.nms import batched_iou

    torch.manual_seed(0)
    corner = torch.rand(2, 7, 2)
    boxes = torch.cat([corner, corner + torch.rand(2, 7, 2)], -1)
    got = batched_iou(boxes)
    assert torch.allclose(got[1], box_iou(boxes[1], boxes[1]), atol=1e-6)


def test_fast_nms_keeps_top_k_per_class():
    boxes = torch.tensor([[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(5)])  # disjoint
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    idx, _, _ = fast_nms(boxes, scores, top_k=3)
    assert sorted(idx.tolist()) == [0, 1, 2]


# ----------------------------------------------------------------------------- masks


def test_mask_assembly_is_sigmoid_of_prototypes_times_coefficients():
    protos = torch.randn(6, 8, 4)  # (h, w, k)
    coef = torch.randn(3, 4)  # n = 3
    masks = assemble(protos, coef)
    assert masks.shape == (3, 6, 8)
    assert torch.allclose(masks[1], torch.sigmoid((protos * coef[1]).sum(-1)))
    assert torch.allclose(assemble(torch.zeros(2, 2, 4), coef), torch.full((3, 2, 2), 0.5))


def test_crop_zeroes_outside_the_box_at_any_resolution():
    box = torch.tensor([[0.25, 0.0, 0.75, 0.5]])
    small = crop(torch.ones(1, 4, 4), box)
    assert small.shape == (1, 4, 4)
    assert small[0].tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    big = crop(torch.ones(1, 8, 8), box)
    assert big[0].sum() == 16 and big[0, :4, 2:6].min() == 1


# ----------------------------------------------------------------------------- losses


def test_mask_loss_on_a_hand_computed_example():
    # 2x2 prototypes, k = 1: logits = P * c = [[2, 0], [0, 0]]; the object is the top-left
    # pixel, its box the left column (2 px). BCE(2, 1) = log(1 + e^-2), BCE(0, 0) = log 2;
    # the right column is cropped away; the sum is divided by the box's 2 px.
    proto = torch.tensor([[[2.0], [0.0]], [[0.0], [0.0]]])
    gt = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    box = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    expected = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    assert mask_loss(proto, torch.tensor([[1.0]]), gt, box).item() == pytest.approx(expected, rel=1e-5)
    # an ignored pixel (the bottom-left) drops out of the sum
    keep = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    assert mask_loss(proto, torch.tensor([[1.0]]), gt, box, keep).item() == pytest.approx(math.log(1 + math.exp(-2)) / 2, rel=1e-5)


def test_ohem_picks_the_hardest_negatives_three_to_one():
    n = 12
    conf = torch.zeros(1, n, 2)
    conf[0, :, 1] = torch.arange(n, dtype=torch.float32)  # higher object logit = harder negative
    conf_t = torch.zeros(1, n, dtype=torch.long)
    conf_t[0, 11] = 1  # the positive: never a negative
    conf_t[0, 10] = -1  # neutral: never chosen, though harder than every negative
    neg = hard_negatives(conf, conf_t, ratio=3)
    assert neg[0].nonzero().squeeze(1).tolist() == [7, 8, 9]
    # two positives -> six negatives; with fewer negatives than that, all of them
    conf_t[0, 0] = 1
    assert hard_negatives(conf, conf_t, ratio=3)[0].nonzero().squeeze(1).tolist() == [4, 5, 6, 7, 8, 9]
    assert int(hard_negatives(conf, conf_t, ratio=10)[0].sum()) == 9


def test_match_positive_background_neutral_and_every_object_gets_an_anchor():
    anchors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.3, 0.25, 0.5, 0.5], [0.75, 0.25, 0.1, 0.1]])
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.7, 0.2, 0.72, 0.22]])  # the second is tiny
    conf_t, index = match(gt, torch.tensor([2, 0]), anchors)
    # anchor 0 is exact (class 2 -> 3); anchor 2 overlaps 0.67 -> positive too; anchor 1
    # is background; anchor 3 is the tiny object's best anchor, positive despite IoU 0.04
    assert conf_t.tolist() == [3, 0, 3, 1]
    assert index[3] == 1


def test_encode_decode_round_trip():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.05, 0.05]])
    boxes = torch.tensor([[0.35, 0.2, 0.7, 0.75], [0.0, 0.8, 0.2, 1.0]])
    assert torch.allclose(decode(encode(boxes, anchors), anchors), boxes, atol=1e-6)
    assert torch.allclose(encode(to_corners(anchors), anchors), torch.zeros(2, 4), atol=1e-5)


def _grid_anchors(imgsz=64):
    grids = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    shapes = level_shapes(scaled_sizes(imgsz), (1.0,), (1.0, 0.5, 2.0))
    return make_anchors(grids, shapes, imgsz)


def test_an_ignored_region_contributes_no_gradient():
    torch.manual_seed(0)
    anchors = _grid_anchors()
    n = anchors.shape[0]
    S = 64
    masks = torch.zeros(1, S, S, dtype=torch.uint8)
    masks[0, 4:20, 4:20] = 1
    ignore = torch.zeros(S, S, dtype=torch.uint8)
    ignore[32:64, 32:64] = 1
    target = {
        "boxes": torch.tensor([[4 / S, 4 / S, 20 / S, 20 / S]]), "labels": torch.tensor([0]), "masks": masks,
        "ignore_boxes": torch.tensor([[0.5, 0.5, 1.0, 1.0]]), "ignore": ignore,
    }
    conf = torch.zeros(1, n, 3)
    inside = (anchors[:, 0] > 0.5) & (anchors[:, 1] > 0.5) & (anchors[:, 2] <= 0.5)
    conf[0, inside, 1] = 5.0  # "object" everywhere in the ignored region: the hardest negatives by far
    out = {
        "conf": conf.requires_grad_(), "loc": torch.zeros(1, n, 4, requires_grad=True),
        "coef": torch.randn(1, n, 4, requires_grad=True), "proto": torch.rand(1, 16, 16, 4),
        "seg": torch.randn(1, 2, 8, 8, requires_grad=True),
    }
    loss = YolactLoss(LossWeights())
    total = sum(loss(out, [target], anchors).values())
    total.backward()
    assert out["conf"].grad[0, inside].abs().max() == 0  # neither object nor background
    assert out["seg"].grad[0, :, 4:, 4:].abs().max() == 0  # the region's pixels
    assert out["seg"].grad[0, :, :4, :4].abs().max() > 0
    # the same targets without the ignored region: those anchors and pixels do get gradient
    for t in out.values():
        t.grad = None
    plain = {k: v for k, v in target.items() if not k.startswith("ignore")}
    sum(loss(out, [plain], anchors).values()).backward()
    assert out["conf"].grad[0, inside].abs().max() > 0
    assert out["seg"].grad[0, :, 4:, 4:].abs().max() > 0


# ----------------------------------------------------------------------------- anchors and model


def test_anchor_sizes_scale_from_the_paper_to_imgsz_and_to_small_objects():
    assert scaled_sizes(550) == list(PAPER_SIZES)
    assert scaled_sizes(275) == [12.0, 24.0, 48.0, 96.0, 192.0]
    # objects smaller than the smallest anchor shrink all sizes (here by 8/12), at most 2x
    assert scaled_sizes(275, [8.0] * 20 + [50.0] * 80) == pytest.approx([8.0, 16.0, 32.0, 64.0, 128.0])
    assert scaled_sizes(275, [1.0] * 100)[0] == pytest.approx(6.0)
    assert scaled_sizes(275, [30.0] * 100)[0] == 12.0  # larger objects: unchanged
    # anchors: one per (scale, ratio) at every location, w / h = ratio at the same area
    shapes = level_shapes([10.0], (1.0, 2.0), (1.0, 0.5, 2.0))[0]
    assert len(shapes) == 6
    w, h = shapes[1]
    assert w / h == pytest.approx(0.5) and w * h == pytest.approx(100.0)


def test_yolact_plus_plus_backbone_has_the_papers_deformable_layers():
    import torchvision

    from zoo.plugins.yolact.model import ModulatedDeformConv, add_deformable_convs

    # ResNet-101 with interval 3: the paper's 11 deformable layers
    assert add_deformable_convs(torchvision.models.resnet101(weights=None), 3) == 11
    r18 = torchvision.models.resnet18(weights=None)
    x = torch.randn(1, 128, 9, 9)
    plain = r18.layer2[0].conv2
    dcn = ModulatedDeformConv(plain)
    # it starts as the conv it replaced, modulated by sigmoid(0) = 0.5
    assert torch.allclose(dcn(x), 0.5 * plain(x), atol=1e-4)


@pytest.mark.parametrize("backend", ["yolact", "yolact++"])
def test_network_outputs_and_anchor_counts(backend):
    from zoo.config import resolve_config
    from zoo.dataset import Dataset
    from zoo.registry import get_registry

    cls = get_registry().backend(backend).load()
    cfg = resolve_config(cls.Config, backend=backend, task="instance-seg", flags={"imgsz": 64}, sets=["k=8", "fpn_channels=32"])
    b = cls(get_task("instance-seg"), Dataset(categories=["a", "b"]), cfg, RunContext(run_dir="unused"))
    net = b.build(scaled_sizes(64)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    per_location = 9 if backend == "yolact++" else 3
    n = per_location * sum(h * w for h, w in out["grids"])
    assert out["grids"][0] == (8, 8) and len(out["grids"]) == 5
    assert out["conf"].shape == (2, n, 3) and out["loc"].shape == (2, n, 4) and out["coef"].shape == (2, n, 8)
    assert out["coef"].abs().max() <= 1  # tanh
    assert out["proto"].shape == (2, 16, 16, 8) and out["proto"].min() >= 0
    assert net.anchors(out).shape == (n, 4)
    assert (net.maskiou is not None) == (backend == "yolact++")


# ----------------------------------------------------------------------------- translation and training


def _config(backend, task, **flags):
    from zoo.config import resolve_config
    from zoo.registry import get_registry

    cls = get_registry().backend(backend).load()
    base = {"epochs": 1, "imgsz": 64, "batch": 2, "device": "cpu"}
    return cls, resolve_config(cls.Config, backend=backend, task=task, flags={**base, **flags}, sets=["fpn_channels=64"])


def test_ground_truth_through_translation_scores_one(demo, tmp_path):
    """Targets as if predicted (boxes, classes, score 1, masks at input size) -> canonical
    instances in original pixels: the shared evaluator gives AP 1.0 for masks and boxes."""
    from zoo.plugins.yolact.backend import YolactSamples
    from zoo.plugins.yolact.inference import ImageDetections

    cls, cfg = _config("yolact", "instance-seg")
    b = cls(get_task("instance-seg"), demo.meta(), cfg, RunContext(run_dir=tmp_path))
    samples = YolactSamples(64)
    evaluators = {t: get_task(t).evaluator(demo.meta()) for t in ("instance-seg", "detect")}
    for record in demo.images:
        image, t = samples(record)
        assert image.shape == (3, 64, 64)
        n = len(t["labels"])
        dets = ImageDetections(t["boxes"], t["labels"], torch.ones(n), t["masks"].float())
        pred = b.translate(record, dets)
        assert not get_task("instance-seg").validate(pred, demo.meta())
        for ev in evaluators.values():
            ev.process(record, pred)
    assert evaluators["instance-seg"].evaluate()["AP"] == pytest.approx(1.0)
    assert evaluators["detect"].evaluate()["AP"] == pytest.approx(1.0)


CONFORMANCE = [Conformance(backend, task, sets=["fpn_channels=64", "k=16"])  # on 8 demo images
               for backend, task in [("yolact", "instance-seg"), ("yolact++", "detect")]]


@pytest.mark.slow
@parametrize_with_checks(CONFORMANCE)
def test_conformance_one_training_epoch_and_checkpoint_predicts_the_same(conformance, check):
    check(conformance)


@pytest.mark.slow
@pytest.mark.parametrize("case", CONFORMANCE, ids=repr)
def test_conformance_checkpoint_and_predictions(case):
    report, backend, task = case.report(), case.backend, case.task_name  # the training the checks ran
    ckpt = report.run_dir / "checkpoint" / "last.pt"
    state = torch.load(ckpt, weights_only=True)  # tensors and plain values only
    assert state["extra"]["backend"] == backend and state["iterations"] >= 1
    assert "anchor_sizes" in state["model"]
    assert report.predictions and report.metrics["main"] == "AP"
    has_mask = [d.mask is not None for p in report.predictions for d in p.detections]
    assert all(has_mask) if task == "instance-seg" else not any(has_mask)


@pytest.mark.slow
@pytest.mark.fixtures
def test_real_labelme_instance_segmentation(real_fixtures, tmp_path):
    from zoo.data.raster import rle_to_mask
    from zoo.data.reading import read_dataset

    data = read_dataset(real_fixtures / "labelme" / "instance_segmentation")
    task = get_task("instance-seg")
    task.check(data)
    cls, cfg = _config("yolact", "instance-seg", imgsz=96)
    b = cls(task, data.meta(), cfg, RunContext(run_dir=tmp_path))
    b.fit(data, Selection.of(task))
    preds = list(b.predict(data.images))
    assert [p.image_id for p in preds] == [r.id for r in data.images]
    ev = task.evaluator(data.meta())
    for r, p in zip(data.images, preds):
        assert not task.validate(p, data.meta())
        for d in p.detections[:3]:
            assert rle_to_mask(d.mask).shape == (r.height, r.width)
        ev.process(r, p)
    assert "AP" in ev.evaluate()


def test_spec_module_and_backend_module_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, zoo.plugins.yolact, zoo.plugins.yolact.backend; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_end_to_end_run_folder(tmp_path):
    from zoo.data.demo import write_demo
    from zoo.pipeline.run import execute

    write_demo(tmp_path / "data", images=8, size=64, seed=0)
    result = execute(
        run_options(task="instance-seg", backend="yolact", quiet=True, data=tmp_path / "data",
                    flags={"epochs": 1, "imgsz": 64, "batch": 4, "device": "cpu"},
                    sets=["fpn_channels=32", "k=8"], out=tmp_path / "runs")
    )
    for name in ("config.yaml", "metrics.json", "report.md", "checkpoint/last.pt"):
        assert (result.run_dir / name).exists(), name
    assert result.metrics["main"] == "AP"
