"""The segmentation-models-pytorch backends: specs, geometry, loss, training, prediction.

Learning is not expected from a step or two; correctness is proven by feeding known logits
through the prediction path (ground truth back out, scored 1.0 by the shared evaluator) and
by the conformance suite on a tiny dataset of non-square images.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from flat_options import run_options

from zoo.backend import RunContext
from zoo.config import resolve_config, shipped_defaults
from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.selection import Selection
from zoo.errors import ZooError
from zoo.plugins.smp import ARCHITECTURES
from zoo.training.dense.geometry import IGNORE, Letterbox, canvas_side
from zoo.data.raster import semantic_label_map
from zoo.registry import get_registry
from zoo.tasks import get_task
from zoo.testing import Conformance, parametrize_with_checks

TASK = get_task("semantic-seg")


def square_poly(cx: float, cy: float, r: float) -> list[float]:
    return [cx - r, cy - r, cx + r, cy - r, cx + r, cy + r, cx - r, cy + r]


def tiny_dataset(root: Path, n: int = 8, height: int = 48, width: int = 64) -> Dataset:
    """``n`` non-square images: a red square (category 0), a blue one (category 1) and, in
    every other image, an ignored band (category -1) at the bottom."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        img = np.full((height, width, 3), 220, np.uint8)
        instances = []
        for cat, color in ((0, (200, 30, 30)), (1, (30, 30, 200))):
            r = 6
            cx, cy = rng.integers(r, width - r), rng.integers(r, height - r - 8)
            img[cy - r : cy + r, cx - r : cx + r] = color
            poly = [float(v) for v in square_poly(cx, cy, r)]
            instances.append(Instance(category=cat, bbox=(cx - r, cy - r, cx + r, cy + r), polygons=[poly]))
        if i % 2:
            band = [0.0, height - 6.0, float(width), height - 6.0, float(width), float(height), 0.0, float(height)]
            instances.append(Instance(category=-1, bbox=(0, height - 6, width, height), polygons=[band], ignore=True))
        path = root / f"img{i}.png"
        Image.fromarray(img).save(path)
        records.append(ImageRecord(id=f"img{i}", width=width, height=height, file=path, instances=instances))
    return Dataset(categories=["red", "blue"], images=records, root=root)


def make_backend(name: str, data: Dataset, run_dir: Path, **flags):
    spec = get_registry().backend(name, "semantic-seg")
    cls = spec.load()
    config = resolve_config(
        cls.Config, backend=name, task="semantic-seg",
        flags={"epochs": 1, "batch": 2, "device": "cpu", **flags},
    )
    ctx = RunContext(run_dir=run_dir, device="cpu")
    ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    return cls, config, ctx, cls(TASK, data.meta(), config, ctx)


# -- specs and configs ----------------------------------------------------------------


def test_every_architecture_is_a_semantic_seg_backend_with_shipped_defaults():
    registry = get_registry()
    for name in ARCHITECTURES:
        spec = registry.backend(name, "semantic-seg")
        assert spec.plugin == "smp" and spec.description
        cls = spec.load()
        # the folder is named exactly like the backend, "+" included (plugins/smp/configs/unet++/)
        defaults = shipped_defaults(name, "semantic-seg")
        assert defaults["encoder"] == "resnet18", name
        config = resolve_config(cls.Config, backend=name, task="semantic-seg", sets=["encoder=resnet34"])
        assert config.encoder == "resnet34" and config.encoder_weights is None and not config.pretrained


def test_spec_module_does_not_import_torch():
    code = "import sys, zoo.plugins.smp; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_encoder_is_a_clear_error_when_the_config_is_resolved():
    cls = get_registry().backend("unet").load()
    with pytest.raises(ZooError, match="did you mean 'resnet18'"):
        resolve_config(cls.Config, backend="unet", task="semantic-seg", sets=["encoder=resnet19"])
    with pytest.raises(ZooError, match="timm has no model"):
        resolve_config(cls.Config, backend="unet", task="semantic-seg", sets=["encoder=tu-resnet19x"])
    config = resolve_config(cls.Config, backend="unet", task="semantic-seg", sets=["encoder=tu-resnet18"])
    assert config.encoder == "tu-resnet18"


def test_pretrained_without_cached_weights_fails_fast_without_network(tmp_path):
    # A fresh process with an empty Hugging Face cache, no HF_HUB_OFFLINE in its
    # environment and ZOO_OFFLINE (conftest): one line saying what to fetch and where.
    code = (
        "from zoo.plugins.smp.models import build_model\n"
        "from zoo.errors import ZooError\n"
        "try:\n"
        "    build_model('Unet', encoder='resnet18', classes=2, pretrained=True)\n"
        "except ZooError as e:\n"
        "    print('ZOOERROR', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(tmp_path / "hf")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "ZOOERROR" in out.stdout, out.stdout + out.stderr
    assert "'imagenet' weights: config.json is not cached and ZOO_OFFLINE is set; download " \
           "https://huggingface.co/smp-hub/resnet18.imagenet/resolve/" in out.stdout
    assert str(tmp_path / "hf" / "hub" / "models--smp-hub--resnet18.imagenet" / "snapshots") in out.stdout
    assert time.perf_counter() - t0 < 30  # no 20-50 s of network retries


def test_pretrained_loads_encoder_weights_from_the_local_cache(tmp_path):
    # A Hugging Face cache laid out as smp's hub download leaves it, holding an encoder
    # whose first convolution is all 0.5: pretrained: true must load exactly that, offline.
    code = (
        "import json, os, sys, torch\n"
        "from safetensors.torch import save_file\n"
        "from zoo.plugins.smp.models import build_model, import_smp\n"
        "smp = import_smp()\n"
        "s = smp.encoders.encoders['resnet18']['pretrained_settings']['imagenet']\n"
        "snap = os.path.join(os.environ['HF_HOME'], 'hub', 'models--' + s['repo_id'].replace('/', '--'),\n"
        "                    'snapshots', s['revision'])\n"
        "os.makedirs(snap)\n"
        "enc = smp.encoders.get_encoder('resnet18', weights=None)\n"
        "state = {k: v.clone() for k, v in enc.state_dict().items()}\n"
        "state['conv1.weight'].fill_(0.5)\n"
        "save_file(state, os.path.join(snap, 'model.safetensors'))\n"
        "open(os.path.join(snap, 'config.json'), 'w').write('{}')\n"
        "m = build_model('Unet', encoder='resnet18', classes=2, pretrained=True)\n"
        "print('LOADED', bool((m.encoder.conv1.weight == 0.5).all()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(tmp_path / "hf")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "LOADED True" in out.stdout, out.stdout + out.stderr[-2000:]


# -- geometry --------------------------------------------------------------------------


def test_canvas_side_rounds_up_to_the_stride_and_minimum():
    assert canvas_side(160, 32) == 160
    assert canvas_side(50, 32) == 64
    assert canvas_side(20, 8) == 24
    assert canvas_side(64, 32, minimum=128) == 128  # PAN


def test_letterbox_keeps_aspect_and_marks_padding_ignored():
    box = Letterbox.fit(48, 64, imgsz=50, side=64)
    assert (box.new_h, box.new_w) == (38, 50)
    labels = np.zeros((48, 64), np.uint8)
    labels[:24, :32] = 1
    canvas = box.labels(labels)
    assert canvas.shape == (64, 64)
    assert (canvas[38:] == IGNORE).all() and (canvas[:, 50:] == IGNORE).all()
    assert set(np.unique(canvas[:38, :50])) == {0, 1}
    assert (canvas[:19, :25] == 1).all()
    image = box.image(np.full((48, 64, 3), 7, np.uint8))
    assert image.shape == (64, 64, 3) and (image[:38, :50] == 7).all() and (image[38:] == 0).all()
    assert box.crop(np.zeros((3, 64, 64))).shape == (3, 38, 50)
    stretched = Letterbox.fit(48, 64, imgsz=50, side=64, keep_aspect=False)
    assert (stretched.new_h, stretched.new_w) == (50, 50)


# -- loss ------------------------------------------------------------------------------


def test_ignored_pixels_do_not_contribute_to_the_loss():
    import torch

    from zoo.training.dense.loss import SegmentationLoss

    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 16, 16))
    target[:, 10:, :] = IGNORE
    criterion = SegmentationLoss("dice+ce")
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    parts = criterion(logits, target)
    assert set(parts) == {"ce", "dice"}
    total = sum(parts.values())
    total.backward()
    assert logits.grad[:, :, 10:, :].abs().max() == 0  # nothing flows from ignored pixels
    assert logits.grad[:, :, :10, :].abs().max() > 0

    other = logits.detach().clone()
    other[:, :, 10:, :] = torch.randn(2, 3, 6, 16) * 100  # anything at all in the ignored rows
    assert torch.allclose(criterion.total(other, target), total.detach())

    # the same loss as on the cropped, ignore-free part (cross-entropy is a mean over pixels)
    crop = SegmentationLoss("ce")(logits.detach()[:, :, :10], target[:, :10])["ce"]
    assert torch.allclose(parts["ce"].detach(), crop)

    everything_ignored = torch.full((2, 16, 16), IGNORE)
    zero = criterion.total(logits, everything_ignored)
    assert torch.isfinite(zero) and zero.item() == 0.0


def test_loss_prefers_the_right_answer():
    import torch

    from zoo.training.dense.loss import SegmentationLoss

    target = torch.randint(0, 3, (1, 8, 8))
    right = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 10
    wrong = torch.roll(right, 1, dims=1)
    for kind in ("dice+ce", "ce", "dice"):
        criterion = SegmentationLoss(kind)
        assert criterion.total(right, target) < 0.05 < criterion.total(wrong, target), kind


# -- prediction translation -------------------------------------------------------------


class _Oracle:
    """Stands in for the network: returns, per batch, the one-hot logits of the letterboxed
    ground truth, so predict() must hand the ground truth back at the original size."""

    def __init__(self, backend, records, meta):
        import torch

        from zoo.training.dense.samples import letterboxed_pair

        c = backend.config
        self.queue = []
        for r in records:
            _, labels = letterboxed_pair(r, meta, c.imgsz, backend.side, c.keep_aspect)
            labels = torch.from_numpy(labels.astype(np.int64))
            labels[labels == IGNORE] = 0
            self.queue.append(torch.nn.functional.one_hot(labels, len(backend.classes)).permute(2, 0, 1).float())

    def eval(self):
        return self

    def __call__(self, x):
        import torch

        out = torch.stack(self.queue[: len(x)])
        del self.queue[: len(x)]
        assert out.shape[-2:] == x.shape[-2:]
        return out


@pytest.mark.parametrize(("imgsz", "min_agree"), [(64, 1.0), (32, 0.93)])
def test_known_logits_come_back_as_the_ground_truth_at_original_size(tmp_path, imgsz, min_agree):
    data = tiny_dataset(tmp_path / "data", n=4)
    _, _, _, backend = make_backend("unet", data, tmp_path / "run", imgsz=imgsz)
    backend.model = _Oracle(backend, data.images, data.meta())
    preds = list(backend.predict(data.images))
    evaluator = TASK.evaluator(data.meta())
    for record, pred in zip(data.images, preds):
        assert pred.image_id == record.id and not TASK.validate(pred, data.meta())
        assert pred.label_map.shape == (48, 64) and pred.label_map.dtype == np.uint8
        truth = semantic_label_map(record, data.meta())
        scored = truth != IGNORE
        agree = (pred.label_map[scored] == truth[scored]).mean()
        assert agree >= min_agree, (record.id, agree)
        evaluator.process(record, pred)
    metrics = evaluator.evaluate()
    if min_agree == 1.0:
        assert metrics["mIoU"] == pytest.approx(1.0)
    else:
        assert metrics["mIoU"] > 0.7


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_takes_an_odd_imgsz_and_learns_from_the_canvas(tmp_path, name):
    import torch

    from zoo.training.dense.samples import SegmentationSamples
    from zoo.training.dense.loss import SegmentationLoss

    data = tiny_dataset(tmp_path / "data", n=2)
    _, config, _, backend = make_backend(name, data, tmp_path / "run", imgsz=40)
    model = backend._build(pretrained=False).train()
    assert type(model).__name__ == ARCHITECTURES[name][0]  # the spec's architecture option, built
    samples = SegmentationSamples(data.meta(), config.imgsz, backend.side, flip=True)
    x, y = (torch.stack(t) for t in zip(*(samples(r) for r in data.images)))
    logits = model(x)
    assert logits.shape == (2, 3, backend.side, backend.side)
    loss = SegmentationLoss().total(logits, y)
    loss.backward()
    assert torch.isfinite(loss)


# -- training (a step or two) ------------------------------------------------------------


CONFORMANCE = [Conformance(name, "semantic-seg", dataset=lambda out: tiny_dataset(out, n=8), imgsz=40)
               for name in ("unet", "deeplabv3+")]


@pytest.mark.slow
@parametrize_with_checks(CONFORMANCE)
def test_conformance_after_a_few_training_steps(conformance, check):
    check(conformance)


@pytest.mark.slow
@pytest.mark.parametrize("case", CONFORMANCE, ids=repr)
def test_checkpoint_knows_its_classes_and_starts_another_model(tmp_path, case):
    report, name = case.report(), case.backend  # the training the checks above ran
    assert len(report.predictions) == 2
    assert {"mIoU", "conventions"} <= set(report.metrics)
    ckpt = report.run_dir / "checkpoint"
    assert (ckpt / "last.pt").is_file()

    # the checkpoint knows its classes: a dataset with other categories cannot load it
    cls = get_registry().backend(name).load()
    config = resolve_config(cls.Config, backend=name, task="semantic-seg", flags={"imgsz": 40})
    other = Dataset(categories=["red", "blue", "green"])
    with pytest.raises(ZooError, match="classes"):
        cls.load(TASK, other, config, RunContext(run_dir=report.run_dir))

    # ... but can start from it (weights: FILE): every layer but the 3-class head
    import torch

    config = resolve_config(cls.Config, backend=name, task="semantic-seg",
                            flags={"imgsz": 40, "weights": ckpt / "last.pt"})
    fresh = cls(TASK, other, config, RunContext(run_dir=tmp_path / "other"))
    model = fresh._build(pretrained=False)
    fresh._start_from(model, config.weights)
    trained = torch.load(ckpt / "last.pt", weights_only=True)["model"]
    mine = model.state_dict()
    assert torch.equal(mine["encoder.conv1.weight"], trained["encoder.conv1.weight"])
    head = [k for k in mine if k.startswith("segmentation_head") and k.endswith("weight")][0]
    assert mine[head].shape[0] == 4 and trained[head].shape[0] == 3


@pytest.mark.slow
def test_training_images_of_other_sizes_and_label_maps_at_original_size(tmp_path, caplog):
    small = tiny_dataset(tmp_path / "a", n=4, height=37, width=53)
    tall = tiny_dataset(tmp_path / "b", n=2, height=70, width=30)
    for i, r in enumerate(tall.images):
        r.id = f"tall{i}"
    data = Dataset(categories=["left red", "blue"], images=small.images + tall.images)
    _, _, _, backend = make_backend("pspnet", data, tmp_path / "run", imgsz=45)
    with caplog.at_level("WARNING", logger="zoo"):
        result = backend.fit(data, Selection.of(TASK))
    assert "left red" in caplog.text and "flip=false" in caplog.text  # flips would swap sides
    assert result["iterations"] == 3 and np.isfinite(result["final_loss"])
    preds = list(backend.predict(data.images))
    for record, pred in zip(data.images, preds):
        assert pred.label_map.shape == (record.height, record.width)
        assert not TASK.validate(pred, data.meta())
    assert backend.num_parameters() > 1_000_000
    assert "segmentation_models_pytorch" in backend.versions()


# -- end to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_zoo_run_unet_leaves_a_complete_run_folder(tmp_path, monkeypatch):
    import json

    import yaml
    from PIL import Image

    from zoo.cli import main
    from zoo.data.demo import write_demo

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the plugin must switch it on itself
    data = tmp_path / "demo"
    write_demo(data, images=8, size=64)
    out = tmp_path / "runs"
    try:
        main(["run", "--task", "semantic-seg", "--backend", "unet", "--data", str(data), "--epochs", "1",
              "--imgsz", "48", "--batch", "3", "--device", "cpu", "--out", str(out), "--set", "encoder_depth=4", "--select", "best"])
    except SystemExit as e:
        assert e.code in (0, None)
    run = out / "unet-semantic-seg"
    for name in ("config.yaml", "split.json", "manifest.json", "metrics.json", "report.md", "log.txt"):
        assert (run / name).is_file(), name
    assert (run / "checkpoint" / "best.pt").is_file() and (run / "checkpoint" / "last.pt").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    # shipped defaults (plugins/smp/configs/unet/semantic-seg.yaml) under the flags and --set
    assert config["encoder"] == "resnet18" and config["lr"] == 0.003 and config["loss"] == "dice+ce"
    assert config["epochs"] == 1 and config["imgsz"] == 48 and config["encoder_depth"] == 4
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["versions"]["segmentation_models_pytorch"].startswith("0.")
    # --select best: one epoch, scored once on the 1-image selection split carved from train
    assert manifest["selection"]["chosen_epoch"] == 1 and manifest["selection"]["times_scored"] == 1
    assert manifest["selection"]["selection_images"] == 1 == len(json.loads((run / "split.json").read_text())["selection"])
    # the CPU used as zoo.training.cpu found it: channels_last, bf16 where the CPU has it natively
    from zoo.training.cpu import bf16_native, training_threads

    pixels = manifest["compute"].pop("pixels")  # the training pairs decoded once, held in memory
    assert manifest["compute"] == {"precision": "bf16" if bf16_native()[0] else "fp32", "channels_last": True,
                                   "threads": training_threads(), "reason": bf16_native()[1]}
    assert pixels["where"] == "memory" and pixels["images"] == len(json.loads((run / "split.json").read_text())["train"])
    assert pixels["bytes"] == pixels["images"] * 48 * 48 * 4  # the 48-px canvas: 3 colour bytes and a label
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["IoU"]) == {"_background_", "platelet", "rbc", "wbc"}
    val = json.loads((run / "split.json").read_text())["val"]
    masks = sorted((run / "predictions" / "masks").glob("*.png"))
    assert [p.stem for p in masks] == sorted(val)
    for p in masks:  # at the image's size, not the 48-px training size
        mask = np.asarray(Image.open(p))
        assert mask.shape == (64, 64) and mask.max() <= 3


@pytest.mark.fixtures
@pytest.mark.slow
def test_real_labelme_photos_with_ignore_regions(real_fixtures, tmp_path):
    """Other people's labelme files: 500-px VOC photos (not square), __ignore__ regions."""
    import torch

    from zoo.training.dense.samples import SegmentationSamples
    from zoo.data.reading import read_dataset

    data = read_dataset(real_fixtures / "labelme" / "instance_segmentation", fmt="labelme")
    assert any(i.ignore for r in data.images for i in r.instances)

    # the training target keeps the ignored region (and the letterbox padding) at 255
    _, _, _, backend = make_backend("unet", data, tmp_path / "run", imgsz=500)
    samples = SegmentationSamples(data.meta(), 500, backend.side)
    for record in data.images:
        x, y = samples(record)
        truth = torch.from_numpy(semantic_label_map(record, data.meta()).astype(np.int64))
        assert x.shape == (3, 512, 512) and y.shape == (512, 512)
        assert torch.equal(y[: record.height, : record.width], truth)  # scale 1: nothing moves
        assert (y[record.height :] == IGNORE).all() and (y[:, record.width :] == IGNORE).all()

    # known logits in, the ground truth out at 500 x H; then the real thing for one step
    backend.model = _Oracle(backend, data.images, data.meta())
    evaluator = TASK.evaluator(data.meta())
    for record, pred in zip(data.images, backend.predict(data.images)):
        assert pred.label_map.shape == (record.height, record.width)
        evaluator.process(record, pred)
    assert evaluator.evaluate()["mIoU"] == pytest.approx(1.0)

    _, _, _, backend = make_backend("linknet", data, tmp_path / "run2", imgsz=96)
    assert backend.fit(data, Selection.of(TASK))["iterations"] == 1  # 3 images, batch 2: the lone one is dropped
    for record, pred in zip(data.images, backend.predict(data.images)):
        assert pred.label_map.shape == (record.height, record.width)
        assert not TASK.validate(pred, data.meta())


@pytest.mark.slow
def test_resume_continues_an_interrupted_fit_from_its_last_epoch(tmp_path, monkeypatch):
    import zoo.training
    import zoo.training.loop
    from zoo.pipeline.run import execute

    data = tiny_dataset(tmp_path / "data", n=8)
    opts = dict(task="semantic-seg", backend="linknet", dataset=data, data=tmp_path / "data",
                out=tmp_path / "runs", quiet=True,
                flags={"epochs": 2, "imgsz": 32, "batch": 4, "device": "cpu"})
    loader = zoo.training.loop.epoch_loader

    def stop_in_epoch_2(data, s, collate, epoch):  # the machine goes down after epoch 1 was saved
        if epoch == 1:
            raise KeyboardInterrupt
        return loader(data, s, collate, epoch)

    monkeypatch.setattr(zoo.training.loop, "epoch_loader", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        execute(run_options(**opts))
    monkeypatch.setattr(zoo.training.loop, "epoch_loader", loader)

    result = execute(run_options(**opts, resume=True))
    assert result.manifest.status == "finished"
    state = zoo.training.load_checkpoint(result.run_dir / "checkpoint" / "last.pt")
    assert [row["epoch"] for row in state["history"]] == [0, 1]  # epoch 0 kept, not redone
    assert "resuming from" in (result.run_dir / "log.txt").read_text()
    # training time: the interrupted part (up to its checkpoint) plus the resumed one
    timings = result.manifest.timings.model_dump()
    assert len(timings["fit_parts"]) == 2 and all(t > 0 for t in timings["fit_parts"])
    assert timings["fit"] == pytest.approx(sum(timings["fit_parts"]), abs=0.002)
    assert timings["fit"] > timings["fit_parts"][1]
