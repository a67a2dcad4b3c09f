"""Training pixels decoded once per run (zoo.training.cache): in memory under the RAM share,
else one memory-mapped file in the run's work folder that a resume reuses while the images
and settings are the same; the smp samples from it equal the samples decoded afresh."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from zoo.training.cache import PixelCache, records_since, mark


@dataclass
class _Record:
    id: str
    file: Path


def _records(tmp_path, n=5):
    out = []
    for i in range(n):
        f = tmp_path / "images" / f"im{i}.raw"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(bytes([i]) * (10 + i))
        out.append(_Record(f"im{i}", f))
    return out


class _Decoder:
    """``record -> (image, labels)`` arrays of the record's own size, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, record):
        self.calls += 1
        k = int(record.id[2:])
        image = np.full((4 + k, 3 + k, 3), k, np.uint8)
        image[0, 0] = [1, 2, 3]
        return image, np.arange((4 + k) * (3 + k), dtype=np.int32).reshape(4 + k, 3 + k)


def _assert_same(cache, records):
    fresh = _Decoder()
    for r in records:
        got, want = cache.get(r.id), fresh(r)
        assert len(got) == 2 and all(g.dtype == w.dtype and np.array_equal(g, w) for g, w in zip(got, want))


def test_in_memory_when_it_fits(tmp_path):
    records, make = _records(tmp_path), _Decoder()
    before = mark()
    cache = PixelCache("t", tmp_path / "work", {"imgsz": 8}).fill(records, make)
    assert make.calls == 5 and len(cache) == 5
    _assert_same(cache, records)
    assert not (tmp_path / "work").exists()  # nothing written while it fits
    (summary,) = records_since(before)
    assert summary["where"] == "memory" and summary["images"] == 5
    assert summary["bytes"] == sum(a.nbytes for r in records for a in _Decoder()(r))


def test_past_the_memory_share_every_array_goes_to_one_mapped_file(tmp_path):
    records, make = _records(tmp_path), _Decoder()
    cache = PixelCache("t", tmp_path / "work", {"imgsz": 8}, memory_bytes=300).fill(records, make)
    total = sum(a.nbytes for r in records for a in _Decoder()(r))
    assert make.calls == 5 and cache.on_disk and cache.summary()["where"] == "disk"
    assert (tmp_path / "work" / "t.bin").stat().st_size == total == cache.nbytes
    _assert_same(cache, records)
    image = cache.get("im2")[0]
    assert isinstance(image.base, np.memmap) or isinstance(image.base.base, np.memmap)
    assert not image.flags.writeable  # augmentation copies; the cache stays as decoded
    _assert_same(pickle.loads(pickle.dumps(cache)), records)  # a loader worker maps it itself


def test_a_resume_reuses_the_file_unless_images_or_settings_changed(tmp_path):
    records = _records(tmp_path)
    PixelCache("t", tmp_path / "work", {"imgsz": 8}, memory_bytes=0).fill(records, _Decoder())

    again = _Decoder()
    cache = PixelCache("t", tmp_path / "work", {"imgsz": 8}, memory_bytes=0).fill(records, again)
    assert again.calls == 0 and cache.on_disk
    _assert_same(cache, records)

    other = _Decoder()
    PixelCache("t", tmp_path / "work", {"imgsz": 16}, memory_bytes=0).fill(records, other)
    assert other.calls == 5  # another training size: decoded again

    records[3].file.write_bytes(b"edited by the user")
    edited = _Decoder()
    PixelCache("t", tmp_path / "work", {"imgsz": 16}, memory_bytes=0).fill(records, edited)
    assert edited.calls == 5

    index = json.loads((tmp_path / "work" / "t.json").read_text())
    index["entries"]["im0"]["arrays"][0][1] = "|O"  # an index edited to read objects out of raw bytes
    (tmp_path / "work" / "t.json").write_text(json.dumps(index))
    tampered = _Decoder()
    PixelCache("t", tmp_path / "work", {"imgsz": 16}, memory_bytes=0).fill(records, tampered)
    assert tampered.calls == 5

    with open(tmp_path / "work" / "t.bin", "r+b") as f:
        f.truncate(7)  # a file cut short (disk full, killed while writing)
    cut = _Decoder()
    cache = PixelCache("t", tmp_path / "work", {"imgsz": 16}, memory_bytes=0).fill(records, cut)
    assert cut.calls == 5
    _assert_same(cache, records)


@pytest.mark.parametrize("memory_bytes", [None, 0])
def test_smp_samples_from_the_cache_are_the_ones_decoded_afresh(tmp_path, memory_bytes, monkeypatch):
    torch = pytest.importorskip("torch")
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset
    from zoo.training.dense.samples import SegmentationSamples
    from zoo.training import cache as cache_module

    write_demo(tmp_path / "demo", images=4, size=64)
    dataset = read_dataset(tmp_path / "demo", "auto")
    if memory_bytes is not None:
        monkeypatch.setattr(cache_module, "memory_budget", lambda: memory_bytes)
    cached = SegmentationSamples(dataset, 48, 64, True, flip=False)
    cached.decode_once(dataset.images, tmp_path / "work")
    assert cached.cache.on_disk == (memory_bytes == 0)
    fresh = SegmentationSamples(dataset, 48, 64, True, flip=False)
    for record in dataset.images:
        (x, y), (x0, y0) = cached(record), fresh(record)
        assert torch.equal(x, x0) and torch.equal(y, y0)


def _kept_records(dataset):
    return [r for r in dataset.images if any(not i.ignore and i.category >= 0 for i in r.instances)]


@pytest.mark.parametrize("kind", ["box", "mask"])
@pytest.mark.parametrize("memory_bytes", [None, 0])
def test_rcnn_samples_from_the_cache_are_the_ones_decoded_afresh(tmp_path, kind, memory_bytes, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset
    from zoo.plugins.tv_models.rcnn import DetectionSamples, load_image
    from zoo.training import cache as cache_module

    write_demo(tmp_path / "demo", images=4, size=64)
    dataset = read_dataset(tmp_path / "demo", "auto")
    if memory_bytes is not None:
        monkeypatch.setattr(cache_module, "memory_budget", lambda: memory_bytes)
    cached = DetectionSamples(kind, imgsz=48)  # the demo's 64 px shrunk to 48: boxes scaled too
    cached.decode_once(dataset.images, tmp_path / "work")
    assert cached.cache.on_disk == (memory_bytes == 0) and len(cached.cache) == 4
    fresh = DetectionSamples(kind, imgsz=48)
    for record in _kept_records(dataset):
        (x, t), (x0, t0) = cached(record), fresh(record)
        assert torch.equal(x, x0) and torch.equal(x, load_image(record, 48)[0])  # prediction's pixels too
        assert set(t) == set(t0) == ({"boxes", "labels", "masks"} if kind == "mask" else {"boxes", "labels"})
        assert all(torch.equal(t[k], t0[k]) and t[k].dtype == t0[k].dtype for k in t)
        assert len(t["boxes"]) == len(record.instances) and float(t["boxes"].max()) <= 48
        assert x.shape == (3, 48, 48) and t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
        if kind == "mask":
            assert t["masks"].shape == (len(record.instances), 48, 48) and t["masks"].dtype == torch.uint8
        x.zero_(), t["boxes"].zero_()  # a sample is the caller's to change; the cache keeps its own
        assert torch.equal(cached(record)[0], x0) and torch.equal(cached(record)[1]["boxes"], t0["boxes"])


def test_rcnn_keypoint_samples_from_the_cache_keep_their_keypoints(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from PIL import Image

    from zoo.dataset import ImageRecord, Instance
    from zoo.plugins.tv_models.rcnn import DetectionSamples

    Image.new("RGB", (200, 100), (40, 80, 120)).save(tmp_path / "a.png")
    rec = ImageRecord(id="a", width=200, height=100, file=tmp_path / "a.png")
    inst = Instance(0, (10.0, 20.0, 50.0, 60.0), keypoints=[(10.0, 20.0, 2), (50.0, 60.0, 2), (0.0, 0.0, 0)])
    rec.instances = [inst, Instance(-1, (0.0, 0.0, 5.0, 5.0), ignore=True)]
    cached = DetectionSamples("keypoint", imgsz=100, num_keypoints=3)
    cached.decode_once([rec], None)
    image, t = cached(rec)
    assert tuple(image.shape) == (3, 50, 100) and float(image[2, 0, 0]) == pytest.approx(120 / 255)
    assert t["boxes"].tolist() == [[5.0, 10.0, 25.0, 30.0]] and t["labels"].tolist() == [1]
    assert t["keypoints"][0].tolist() == [[5.0, 10.0, 1.0], [25.0, 30.0, 1.0], [0.0, 0.0, 0.0]]


@pytest.mark.parametrize("crop_scale, side", [(1.0, 48), (0.6, 72), (0.08, 196)])
def test_classifier_decodes_once_with_the_pixels_its_smallest_crop_needs(tmp_path, crop_scale, side):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset
    from zoo.plugins.tv_models.classifiers import ClassSamples, ClassifierConfig, transforms

    write_demo(tmp_path / "demo", images=4, size=300)
    dataset = read_dataset(tmp_path / "demo", "auto")
    config = ClassifierConfig(imgsz=48, crop_scale=crop_scale)
    cached = ClassSamples(transforms(config, train=False), 48, crop_scale)
    assert cached.side == side  # ceil(48 / sqrt(0.75 * crop_scale)): the smallest crop keeps 48 px each way
    cached.decode_once(dataset.images, None)
    for record in dataset.images:
        rgb, label = cached.cache.get(str(record.id))
        assert min(rgb.shape[:2]) == min(side, 300) and label.tolist() == [record.labels[0]]
        x, y = cached(record)
        assert x.shape == (3, 48, 48) and y == record.labels[0]
        fresh = transforms(config, train=False)(record.open())  # the full image, squashed to 48 px once
        assert float((x - fresh).abs().mean()) < 0.05  # two shrinks in place of one: the same picture


def test_yolact_samples_from_the_cache_are_the_ones_decoded_afresh(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset
    from zoo.plugins.yolact.backend import YolactSamples, load_image
    from zoo.training import cache as cache_module

    write_demo(tmp_path / "demo", images=4, size=64)
    dataset = read_dataset(tmp_path / "demo", "auto")
    monkeypatch.setattr(cache_module, "memory_budget", lambda: 0)  # on disk: read-only views
    cached = YolactSamples(48)
    cached.decode_once(dataset.images, tmp_path / "work")
    assert cached.cache.on_disk
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["yolact.bin", "yolact.json"]
    for record in dataset.images:
        (x, t), (x0, t0) = cached(record), YolactSamples(48)(record)
        assert torch.equal(x, x0) and torch.equal(x, load_image(record, 48))
        assert set(t) == set(t0) == {"boxes", "labels", "masks", "ignore_boxes", "ignore"}
        assert all(torch.equal(t[k], t0[k]) and t[k].dtype == t0[k].dtype for k in t)
        assert t["masks"].shape[1:] == (48, 48) and len(t["labels"]) == len(t["boxes"]) > 0
