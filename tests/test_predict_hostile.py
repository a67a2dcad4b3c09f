"""``zoo predict`` on hostile images, ``zoo eval``'s output file, PIL's bomb warning: each bad
input one line with exit 2 naming the file, nothing written; never a framework's traceback."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
import toy_backend
from PIL import Image

import zoo.registry


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), err
    return lines[0]


@pytest.fixture
def toy_run(tmp_path, tiny_demo, monkeypatch, zoo_cli) -> Path:
    reg = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    code, err = zoo_cli(["run", "--task", "detect", "--backend", "toy", "--data", tiny_demo,
                      "--out", tmp_path / "runs", "--device", "cpu"])
    assert code == 0, err
    return tmp_path / "runs" / "toy-detect"


def _png_declaring(w: int, h: int) -> bytes:
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, "JPEG")
    return buf.getvalue()[:300]


@pytest.mark.parametrize("name,content,words", [
    ("empty.jpg", b"", "cannot read this image"),
    ("text.jpg", b"not an image at all\n", "cannot read this image"),
    ("bomb.png", _png_declaring(30000, 30000), "decompression bomb"),
    ("cut.jpg", _truncated_jpeg(), "cannot read this image"),
])
def test_a_hostile_image_is_one_line_exit_2(name, content, words, toy_run, tmp_path, zoo_cli):
    images = tmp_path / "new"
    images.mkdir()
    (images / name).write_bytes(content)
    code, err = zoo_cli(["predict", "--run", toy_run, images / name, "--out", tmp_path / "pred"])
    line = _one_error_line(err)
    assert code == 2 and name in line and words in line
    assert not (tmp_path / "pred").exists()


def test_an_image_past_pils_warning_size_opens_without_a_raw_warning(toy_run, tmp_path, zoo_cli):
    """Between PIL's limit and twice it zoo opens an image (as the readers do), silently."""
    images = tmp_path / "new"
    images.mkdir()
    side = int((Image.MAX_IMAGE_PIXELS * 1.2) ** 0.5)
    Image.new("L", (side, side)).save(images / "large.png")
    code, err = zoo_cli(["predict", "--run", toy_run, images, "--out", tmp_path / "pred"])
    assert code == 0, err
    assert "DecompressionBombWarning" not in err and "decompression bomb" not in err.lower()
    assert (tmp_path / "pred" / "large.json").is_file()


def test_zoo_eval_never_replaces_metrics_json_it_was_not_told_to(tiny_demo, tmp_path, zoo_cli, monkeypatch):
    from zoo.data.reading import read_dataset
    from zoo.evaluation.results import default_image_ids, predictions_to_coco_results
    from zoo.predictions import Detection, InstancePredictions

    ds = read_dataset(tiny_demo)
    preds = [InstancePredictions(r.id, [Detection(i.category, 0.9, i.bbox) for i in r.instances]) for r in ds.images]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(predictions_to_coco_results(preds, default_image_ids(ds))))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics.json").write_text('{"mine": true}')
    args = ["eval", "--task", "detect", "--gt", tiny_demo, "--pred", pred]
    code, err = zoo_cli(args)
    assert code == 2 and "metrics.json exists" in _one_error_line(err) and "--out" in err
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"mine": True}
    code, err = zoo_cli([*args, "--out", "metrics.json"])  # named: replaced
    assert code == 0, err
    assert json.loads((tmp_path / "metrics.json").read_text())["task"] == "detect"
    (tmp_path / "metrics.json").unlink()
    code, err = zoo_cli(args)  # none there: written
    assert code == 0 and (tmp_path / "metrics.json").is_file()
