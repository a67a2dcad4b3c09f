"""The dense-network kit (zoo.training.dense) on its own: a plugin that writes only its network.

The network here is a 1x1 convolution, neither smp's nor MONAI's. With weights set by hand to
tell the tiny dataset's red, blue and grey pixels apart, the kit's predict path (letterbox,
normalise, crop, scale back) must hand back the ground truth; trained a step and restored
from its checkpoint, it must predict what it predicted before.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_smp import square_poly  # noqa: E402

from zoo.backend import RunContext  # noqa: E402
from zoo.data.raster import semantic_label_map  # noqa: E402
from zoo.dataset import Dataset, ImageRecord, Instance  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.selection import Selection  # noqa: E402
from zoo.tasks import get_task  # noqa: E402
from zoo.training.dense import SegmentationBackend, SegmentationConfig  # noqa: E402
from zoo.training.dense.geometry import IGNORE  # noqa: E402

TASK = get_task("semantic-seg")


def tiny_dataset(root, n: int = 4, height: int = 48, width: int = 64) -> Dataset:
    """``n`` grey images, each with a red square (category 0) and a blue one (category 1),
    coloured from zoo's own label map of their polygons: every pixel's colour is its class."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    colours = np.array([(220, 220, 220), (200, 30, 30), (30, 30, 200)], np.uint8)
    records = []
    for i in range(n):
        instances = [Instance(category=cat, bbox=(cx - 6, cy - 6, cx + 6, cy + 6),
                              polygons=[[float(v) for v in square_poly(cx, cy, 6)]])
                     for cat, (cx, cy) in ((0, (12 + i, 14)), (1, (44, 30 - i)))]
        record = ImageRecord(id=f"img{i}", width=width, height=height, file=root / f"img{i}.png", instances=instances)
        Image.fromarray(colours[semantic_label_map(record, Dataset(categories=["red", "blue"]))]).save(record.file)
        records.append(record)
    return Dataset(categories=["red", "blue"], images=records, root=root)


class PixelNet(SegmentationBackend):
    """All a plugin writes: the network, its canvas and its identity."""

    architecture = "PixelNet"

    def _canvas(self):
        return 8, 0

    def _build(self, *, pretrained: bool):
        return torch.nn.Conv2d(3, len(self.classes), 1)

    def _identity(self):
        return {"architecture": self.architecture, "classes": list(self.classes)}


def _backend(data, run_dir, imgsz=40):
    config = SegmentationConfig(epochs=1, batch=2, imgsz=imgsz, device="cpu", flip=False)
    return PixelNet(TASK, data.meta(), config, RunContext(run_dir=run_dir))


def test_a_network_with_known_weights_gives_the_ground_truth_back(tmp_path):
    data = tiny_dataset(tmp_path / "data")
    backend = _backend(data, tmp_path / "run", imgsz=64)  # the images' own size: nothing resampled
    net = backend._build(pretrained=False)
    with torch.no_grad():  # on normalised RGB: background = green high, red = R - B, blue = B - R
        net.weight.zero_()
        net.bias.zero_()
        net.weight[0, 1] = 2.0
        net.weight[1, 0], net.weight[1, 2] = 1.0, -1.0
        net.weight[2, 0], net.weight[2, 2] = -1.0, 1.0
    backend.model = net
    evaluator = TASK.evaluator(data.meta())
    for record, pred in zip(data.images, backend.predict(data.images)):
        truth = semantic_label_map(record, data.meta())
        assert pred.label_map.shape == truth.shape == (48, 64)
        scored = truth != IGNORE
        assert (pred.label_map[scored] == truth[scored]).all()
        evaluator.process(record, pred)
    assert evaluator.evaluate()["mIoU"] == pytest.approx(1.0)


def test_the_kit_trains_saves_and_restores_a_plugins_network(tmp_path):
    data = tiny_dataset(tmp_path / "data")
    backend = _backend(data, tmp_path / "run")
    summary = backend.fit(data, Selection.of(TASK))
    assert summary["iterations"] == 2 and summary["final_loss"] > 0
    before = [p.label_map for p in backend.predict(data.images)]
    restored = PixelNet.load(TASK, data.meta(), backend.config, backend.ctx)
    assert all((a == p.label_map).all() for a, p in zip(before, restored.predict(data.images)))
    other = data.meta()
    other.categories = ["red", "green"]  # another vocabulary: the checkpoint's identity refuses it
    with pytest.raises(ZooError, match="classes"):
        PixelNet.load(TASK, other, backend.config, backend.ctx)
