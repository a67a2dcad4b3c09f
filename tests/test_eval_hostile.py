"""``zoo eval`` on hostile prediction files: each is refused in one line with exit 2, inside
10 s and 1 GB of memory, before pycocotools' C code, the JSON parser or PIL's decoder can be
driven into a crash; and a property test: any mutation of a valid results file gives
metrics or a ZooError, never another exception. The long run (10,000 files) is
``bench/fuzz.py --targets results``."""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_adapters_fuzz import FUZZ  # bench/fuzz.py: its JSON tree walking, and the long run
from zoo.errors import ZooError

MEMORY = 1 << 30


@pytest.fixture(scope="module")
def gt(tmp_path_factory) -> Path:
    from zoo.data.demo import write_demo

    out = tmp_path_factory.mktemp("gt")
    write_demo(out, images=3, size=48, seed=0)  # images 1..3, 48x48, categories 1..3, 4 keypoints
    return out


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def _zoo_eval(task: str, gt: Path, pred: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zoo", "eval", "--task", task, "--gt", str(gt), "--pred", str(pred),
                           "--out", str(out)], capture_output=True, text=True, timeout=60, preexec_fn=_limited,
                          env=env, cwd=out.parent)


def _result(**kw):
    return {"image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10], "score": 0.9, **kw}


def _png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels (one tiny IDAT: decoding it would need w*h bytes)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


HOSTILE_RESULTS = {
    "polygon at 1e12": ("instance-seg", [_result(segmentation=[[0, 0, 1e12, 0, 1e12, 1e12]])], "far outside"),
    "polygon at 1e8": ("instance-seg", [_result(segmentation=[[0, 0, 1e8, 0, 1e8, 1e8]])], "far outside"),
    "RLE counts not ASCII": ("instance-seg", [_result(segmentation={"size": [48, 48], "counts": "0é0"})], "alphabet"),
    "RLE counts at 2**32": ("instance-seg", [_result(segmentation={"size": [48, 48], "counts": [2**32, 0]})], "2**32"),
    "RLE negative size": ("instance-seg", [_result(segmentation={"size": [-48, 48], "counts": [2304]})], "RLE size"),
    "RLE empty size": ("instance-seg", [_result(segmentation={"size": [], "counts": [2304]})], "RLE size"),
    "RLE counts short": ("instance-seg", [_result(segmentation={"size": [48, 48], "counts": [5, 5]})], "cover 10 pixels"),
    "RLE string cut mid-number": ("instance-seg", [_result(segmentation={"size": [48, 48], "counts": "0o"})], "middle"),
    "string in bbox": ("detect", [_result(bbox=[4, "a", 10, 10])], "bbox corner y is 'a'"),
    "list as image_id": ("detect", [_result(image_id=[1])], "image_id is list"),
    "keypoints null": ("keypoint", [_result(keypoints=None)], "keypoint"),
    "keypoints strings": ("keypoint", [_result(keypoints=["a"] * 12)], "not a number"),
    "box at 1e308": ("detect", [_result(bbox=[1e308, 1e308, 1e308, 1e308])], "far outside"),
    "score a word": ("detect", [_result(score="high")], "score is 'high'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_RESULTS))
def test_a_hostile_results_file_is_one_line_exit_2(case, gt, tmp_path):
    task, results, words = HOSTILE_RESULTS[case]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(results))
    _assert_refused(_zoo_eval(task, gt, pred, tmp_path / "metrics.json"), words, tmp_path)


def _assert_refused(done: subprocess.CompletedProcess, words: str, tmp_path: Path) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("zoo: error:") and words in lines[0], lines
    assert not (tmp_path / "metrics.json").exists()


def test_a_huge_results_file_is_refused_before_parsing(gt, tmp_path):
    pred = tmp_path / "pred.json"
    one = json.dumps(_result()).encode()
    with open(pred, "wb") as f:  # 80 MB of valid JSON, over the 64 MB cap
        f.write(b"[" + b",".join([one] * (80 * 2**20 // len(one))) + b"]")
    t0 = time.perf_counter()
    done = _zoo_eval("detect", gt, pred, tmp_path / "metrics.json")
    assert time.perf_counter() - t0 < 10
    _assert_refused(done, "ZOO_MAX_RESULTS_MB", tmp_path)


def test_a_label_map_header_of_30000_squared_is_not_decoded(gt, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for k in range(3):
        (masks / f"smear_{k:03d}.png").write_bytes(_png_header(30000, 30000))
    _assert_refused(_zoo_eval("semantic-seg", gt, masks, tmp_path / "metrics.json"), "decompression bomb", tmp_path)


@pytest.mark.parametrize("content,words", [
    (b"image,label\nsmear_000,\xff\xfe\n", "not UTF-8"),
    (b"image,label\nsmear_000,\"" + b"x" * 200_000 + b"\"\n", "not a readable CSV"),
    (b"image,label\nsmear_000,\xc2\xb2\n", "unknown class"),  # '2' superscript: isdigit() yet no int
])
def test_a_hostile_label_csv_is_one_line_exit_2(content, words, gt, tmp_path):
    pred = tmp_path / "pred.csv"
    pred.write_bytes(content)
    _assert_refused(_zoo_eval("classify", gt, pred, tmp_path / "metrics.json"), words, tmp_path)


def test_the_rle_gate_decodes_as_pycocotools_does():
    """Every mask pycocotools encodes passes the gate with the same runs it decodes to."""
    import numpy as np
    from pycocotools import mask as mask_utils

    from zoo.evaluation.result_guard import compressed_runs

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = np.asfortranarray((rng.random((h, w)) < rng.random()).astype(np.uint8))
        rle = mask_utils.encode(m)
        runs = compressed_runs(rle["counts"].decode("ascii"), "x")
        flat = m.flatten(order="F")  # pycocotools' runs alternate 0s and 1s, column-major
        assert sum(runs) == h * w
        assert np.array_equal(np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8), flat)


# -- the property ---------------------------------------------------------------------------------

_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
            | st.sampled_from([1e12, -1e308, 2**32, 2**64, "0é", "0o", [], {}, [[]]]))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(["size", "counts", "x"]), inner, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def seed_results(gt):
    """A valid results file for every instance task: the ground truth itself, with masks and keypoints."""
    from zoo.data.raster import instance_mask, mask_to_rle
    from zoo.data.reading import read_dataset
    from zoo.evaluation.results import default_image_ids, predictions_to_coco_results
    from zoo.predictions import Detection, InstancePredictions

    ds = read_dataset(gt)
    preds = [InstancePredictions(r.id, [
        Detection(i.category, 0.9, i.bbox, mask=mask_to_rle(instance_mask(i, r.height, r.width)),
                  keypoints=[(x, y, 1.0) for x, y, _ in i.keypoints] or None)
        for i in r.instances if not i.ignore]) for r in ds.images]
    return ds, predictions_to_coco_results(preds, default_image_ids(ds))


@settings(max_examples=int(os.environ.get("ZOO_FUZZ_EXAMPLES", 60)), deadline=None,
          derandomize="ZOO_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_results_file_gives_metrics_or_a_zoo_error(seed_results, gt, tmp_path, data):
    import copy

    from zoo.evaluation import evaluate
    from zoo.evaluation.results import read_predictions
    from zoo.tasks import get_task

    ds, results = seed_results
    tree = copy.deepcopy(results)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p, _ in FUZZ._paths(tree)]
        tree = FUZZ._set(tree, data.draw(st.sampled_from(paths)), data.draw(_values))
    pred = tmp_path / f"pred-{data.draw(st.integers(0, 10**9))}.json"
    pred.write_text(json.dumps(tree))
    task = get_task(data.draw(st.sampled_from(["detect", "instance-seg", "keypoint"])))
    try:
        metrics = evaluate(task, ds, read_predictions(task, pred, ds, gt), ci95=False)
    except ZooError:
        return
    assert metrics["task"] == task.name
