"""The yolov8 backend trained for real: one epoch on a tiny demo, every task.

Learning is not expected from one epoch; what is checked is the contract (zoo's conformance
suite), that predictions are exactly ultralytics' own outputs translated, that nothing is
written outside the run folder and nothing is tried on the network, and the weight options.
"""

from __future__ import annotations

import importlib.util

import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch is not installed", allow_module_level=True)
if importlib.util.find_spec("ultralytics") is None:  # find, not import: importing it unprepared probes the network
    pytest.skip("ultralytics is not installed", allow_module_level=True)

from zoo.config import resolve_config  # noqa: E402
from zoo.errors import ConfigError, ZooError  # noqa: E402
from zoo.selection import Selection  # noqa: E402
from zoo.tasks import get_task  # noqa: E402

pytestmark = pytest.mark.slow

TASKS = ["detect", "instance-seg", "keypoint", "classify", "semantic-seg"]


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every attempt to resolve a host or open a connection."""
    attempts: list[str] = []

    def refuse(name):
        def _refuse(*args, **kwargs):
            attempts.append(f"{name}{args[:2]}")
            raise OSError(f"network disabled in tests ({name})")

        return _refuse

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    return attempts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from zoo.data.demo import write_demo

    out = tmp_path_factory.mktemp("yolo-demo")
    write_demo(out, images=8, size=64)
    return out


def _site_packages_runs() -> list[Path]:
    import ultralytics

    return [p for p in (Path(ultralytics.__file__).parent / "runs", Path(ultralytics.__file__).parents[1] / "runs") if p.exists()]


def _user_config_files() -> set[str]:
    home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "Ultralytics"
    return {f"{p}:{p.stat().st_mtime_ns}" for p in home.rglob("*")} if home.exists() else set()


@pytest.mark.parametrize("task", TASKS)
def test_conformance_offline_and_contained(task, tiny, tmp_path, monkeypatch, no_network):
    from zoo.data.reading import read_dataset
    from zoo.testing import check_backend

    monkeypatch.chdir(tmp_path)  # check_backend asserts nothing lands in the cwd
    before_user = _user_config_files()
    report = check_backend("yolov8", task, tmp_path / "check", dataset=read_dataset(tiny), imgsz=64)

    assert no_network == [], f"yolov8 tried the network: {no_network[:3]}"
    assert not (tmp_path / "runs").exists()
    assert not _site_packages_runs()
    assert _user_config_files() == before_user, "ultralytics wrote into ~/.config/Ultralytics"
    used = report.run_dir / "work" / "ultralytics-config" / "Ultralytics"
    assert (used / "Arial.ttf").is_file()
    assert (report.run_dir / "checkpoint" / "model.pt").is_file()

    # zoo's checkpoint is tensors only (no pickled objects), so it loads with weights_only
    import torch

    state = torch.load(report.run_dir / "checkpoint" / "model.pt", weights_only=True)
    assert set(state) == {"model", "extra"} and state["extra"]["architecture"].startswith("yolov8n")

    # The predictions are ultralytics' own outputs, translated: same boxes, scores, classes,
    # from ultralytics' own best weights (the pickle it wrote) and zoo's rebuilt network alike.
    from PIL import Image
    from ultralytics import YOLO

    val_ids = [p.image_id for p in report.predictions]
    weights = report.run_dir / "work" / "train" / "weights"
    model = YOLO(str(weights / "best.pt" if (weights / "best.pt").is_file() else weights / "last.pt"))
    for image_id, pred in zip(val_ids, report.predictions):
        # the same pixels zoo feeds (PIL-decoded, as BGR), straight into ultralytics
        pixels = np.asarray(Image.open(tiny / f"{image_id}.jpg").convert("RGB"))[..., ::-1].copy()
        raw = model.predict(pixels, imgsz=64, conf=0.001, iou=0.7, max_det=100,
                            retina_masks=True, verbose=False, device="cpu")[0]
        if task == "semantic-seg":
            want = np.zeros(pixels.shape[:2], np.uint8)
            keep = raw.boxes.conf.numpy() >= 0.25
            for k in np.argsort(raw.boxes.conf.numpy(), kind="stable"):
                if keep[k]:
                    want[raw.masks.data[k].numpy() > 0.5] = int(raw.boxes.cls[k]) + 1
            assert np.array_equal(pred.label_map, want)
            continue
        if task == "classify":
            probs = raw.probs.data.numpy()
            assert pred.label == int(np.argmax(pred.scores))
            assert sorted(pred.scores) == pytest.approx(sorted(probs.tolist()), abs=1e-5)
            continue
        assert len(pred.detections) == len(raw.boxes)
        if len(raw.boxes):
            got = np.array([d.bbox for d in pred.detections])
            assert np.allclose(got, raw.boxes.xyxy.numpy(), atol=1e-3)
            assert np.allclose([d.score for d in pred.detections], raw.boxes.conf.numpy(), atol=1e-5)
            assert [d.category for d in pred.detections] == raw.boxes.cls.int().tolist()
        if task == "keypoint" and len(raw.boxes):
            assert np.allclose(np.array(pred.detections[0].keypoints), raw.keypoints.data[0].numpy(), atol=1e-3)
        if task == "instance-seg" and len(raw.boxes):
            from zoo.data.raster import rle_to_mask

            assert np.array_equal(rle_to_mask(pred.detections[0].mask), raw.masks.data[0].numpy() > 0.5)


def test_shipped_defaults_resolve_for_every_task():
    from zoo.plugins.yolov8.backend import YoloV8Config

    for task in TASKS:
        cfg = resolve_config(YoloV8Config, backend="yolov8", task=task)
        assert cfg.model == "n" and cfg.epochs == "auto" and cfg.imgsz == "auto"  # chosen from the data
        demo = resolve_config(YoloV8Config, backend="yolov8", task=task, demo=True)
        assert demo.epochs >= 10 and demo.imgsz % 32 == 0
    with pytest.raises(ConfigError, match="model"):
        resolve_config(YoloV8Config, backend="yolov8", task="detect", sets=["model=q"])
    with pytest.raises(ConfigError, match="did you mean 'mosaic'"):
        resolve_config(YoloV8Config, backend="yolov8", task="detect", sets=["mosiac=0"])


def _backend(task_name, tmp_path, meta=None, trust_weights=False, **cfg):
    from zoo.backend import RunContext
    from zoo.dataset import Dataset
    from zoo.plugins.yolov8.backend import YoloV8, YoloV8Config
    from zoo.tasks import get_task

    meta = meta or Dataset(categories=["a"])
    ctx = RunContext(run_dir=tmp_path, trust_weights=trust_weights)
    return YoloV8(get_task(task_name), meta, YoloV8Config(**cfg), ctx)


def test_pretrained_needs_trust_then_fetches_the_asset(tmp_path, monkeypatch):
    """--pretrained fetches ultralytics' release asset into $ZOO_HOME/weights, but only with
    --trust-weights (the asset is a pickle); offline it is one line naming file, URL, place."""
    from test_fetch import serve

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    local = tmp_path / "home" / "weights" / "yolov8s-seg.pt"
    b = _backend("instance-seg", tmp_path, pretrained=True, model="s")
    with pytest.raises(ConfigError, match=r"--pretrained for yolov8 needs --trust-weights.*yolov8s-seg\.pt.*pickles"):
        b._start_weights()
    trusted = _backend("instance-seg", tmp_path, pretrained=True, model="s", trust_weights=True)
    with pytest.raises(ZooError, match=r"yolov8s-seg\.pt is not cached.*download "
                       r"https://github\.com/ultralytics/assets/releases/download/v[\d.]+/yolov8s-seg\.pt"
                       rf" and put it at {local}"):
        trusted._start_weights()

    monkeypatch.delenv("ZOO_OFFLINE")
    with serve(tmp_path / "mirror", {"yolov8s-seg.pt": b"x" * 1000}) as mirror:
        monkeypatch.setenv("ZOO_WEIGHTS_MIRROR", mirror.url)
        assert trusted._start_weights() == str(local) and local.read_bytes() == b"x" * 1000
        assert trusted._start_weights() == str(local)  # the second time from the cache
        assert mirror.requests == ["/yolov8s-seg.pt"]
    # a copy already there is still a pickle: refused untrusted, before anything is read
    with pytest.raises(ConfigError, match="--trust-weights"):
        b._start_weights()


def test_missing_weights_file_is_a_clear_error(tmp_path):
    b = _backend("detect", tmp_path, weights=tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="nope.pt does not exist"):
        b._start_weights()
    assert _backend("keypoint", tmp_path, model="m")._start_weights() == "yolov8m-pose.yaml"


def test_unknown_train_arg_is_a_config_error(tiny, tmp_path):
    from zoo.data.reading import read_dataset

    ds = read_dataset(tiny)
    b = _backend("detect", tmp_path, ds, epochs=1, imgsz=64, batch=4, train_args={"mosiac": 0.0})
    with pytest.raises(ConfigError, match="mosiac"):
        b.fit(ds.subset([r.id for r in ds.images[:4]]), Selection.of(get_task("detect")))


def test_plugin_module_stays_light():
    import subprocess

    code = "import sys, zoo.plugins.yolov8; print(any(m in sys.modules for m in ('torch', 'ultralytics')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resume_continues_an_interrupted_training(tiny, tmp_path, monkeypatch):
    from zoo.backend import RunContext
    from zoo.plugins.yolov8.backend import YoloV8, YoloV8Config
    from zoo.data.reading import read_dataset
    from zoo.tasks import get_task

    from zoo.checksums import Ledger

    ds = read_dataset(tiny)
    train, val = ds.subset([r.id for r in ds.images[:6]]), ds.subset([r.id for r in ds.images[6:]])
    config = YoloV8Config(epochs=2, imgsz=64, batch=4, nbs=4)
    run = tmp_path / "run"
    ledger = Ledger(run, {})  # what `zoo run` keeps in the manifest: the sha256 of ultralytics' last.pt

    # Ctrl-C after the first epoch was saved (ultralytics' own callback hook, not a mock).
    from ultralytics.utils.callbacks import base

    def interrupt(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setitem(base.default_callbacks, "on_fit_epoch_end", [*base.default_callbacks["on_fit_epoch_end"], interrupt])
    with pytest.raises(KeyboardInterrupt):
        YoloV8(get_task("detect"), ds, config, RunContext(run_dir=run, ledger=ledger)).fit(
            train, Selection.of(get_task("detect"), val))
    assert not (run / "checkpoint" / "model.pt").exists()
    monkeypatch.setitem(base.default_callbacks, "on_fit_epoch_end", base.default_callbacks["on_fit_epoch_end"][:-1])

    assert "work/train/weights/last.pt" in ledger.hashes
    resumed = YoloV8(get_task("detect"), ds, config, RunContext(run_dir=run, resume=True, trust_weights=True, ledger=ledger))
    resumed.fit(train, Selection.of(get_task("detect"), val))
    assert (run / "checkpoint" / "model.pt").is_file()
    rows = (run / "work" / "train" / "results.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0].strip() for r in rows] == ["1", "2"]  # epoch 1 kept, epoch 2 added
    assert len(list(resumed.predict(val.images))) == len(val.images)


def test_a_budget_is_ultralytics_time(tmp_path):
    b = _backend("detect", tmp_path, epochs=30, imgsz=64, budget="15m")
    assert b.train_args(tmp_path / "data.yaml")["time"] == 0.25
    assert _backend("detect", tmp_path, epochs=30, imgsz=64).train_args(tmp_path / "d.yaml")["time"] is None


def test_ultralytics_trackers_are_off(tmp_path):
    # with mlflow installed (zoo[mlflow]), ultralytics' own MLflow callback would log every yolov8
    # training to ./mlruns, outside the run folder; its trainer registers no tracker callback now
    from zoo.plugins.yolov8 import offline

    offline.prepare(tmp_path / "cfg")
    from ultralytics.utils.callbacks.base import add_integration_callbacks, get_default_callbacks

    class DetectionTrainer:  # what add_integration_callbacks reads of a trainer: its name, callbacks
        callbacks = get_default_callbacks()

    trainer = DetectionTrainer()
    add_integration_callbacks(trainer)
    modules = {f.__module__ for fns in trainer.callbacks.values() for f in fns}
    assert not {m for m in modules if m.rsplit(".", 1)[-1] in offline._INTEGRATIONS}, modules


def test_trains_and_predicts_on_zoos_threads_not_ultralytics(tiny, tmp_path, monkeypatch):
    """ultralytics sets torch's threads to cpu_count - 1 on a CPU (one of two cores idle on a
    laptop); zoo sets its own count back for training and prediction, and records it."""
    import torch
    from ultralytics.utils import NUM_THREADS

    from zoo.data.reading import read_dataset
    from zoo.testing import Conformance
    from zoo.training.cpu import mark, records_since

    ours = NUM_THREADS + 2  # differs from what ultralytics sets, on any machine
    monkeypatch.setenv("ZOO_THREADS", str(ours))
    before, position = torch.get_num_threads(), mark()
    try:
        c = Conformance("yolov8", "detect", tmp_path, dataset=read_dataset(tiny), imgsz=64)
        assert len(c.fit().predictions) == len(c.val.images)
        assert torch.get_num_threads() == ours  # prediction ran after ultralytics' select_device
    finally:
        torch.set_num_threads(before)
    assert [r["threads"] for r in records_since(position)] == [ours]
    assert records_since(position)[0]["precision"] == "fp32"
