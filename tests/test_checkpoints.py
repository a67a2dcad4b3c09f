"""Run folders as an attacker or a crash leaves them: a checkpoint swapped for a pickle that
runs a command, a checkpoint changed since its run wrote it, two processes on one run, a full
disk. Nothing runs, nothing is loaded unverified, every refusal is one line with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flat_options import run_options
import toy_backend

import zoo.registry
from zoo.checksums import sha256_file
from zoo.cli import main


class _RunsACommand:
    """Unpickling this runs ``touch marker`` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def hostile_pickle(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"model": _RunsACommand(marker), "epoch": 0}, path)
    return path


def _zoo(argv, capsys) -> tuple[int, str]:
    """Exit status and stderr of ``zoo argv`` run in this process."""
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    return code, capsys.readouterr().err


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def toy_registry(monkeypatch):
    reg = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    return reg


def _toy_run(tmp_path, tiny_demo, capsys, *extra) -> Path:
    code, err = _zoo(["run", "--task", "detect", "--backend", "toy", "--data", str(tiny_demo),
                      "--out", str(tmp_path / "runs"), "--device", "cpu", *extra], capsys)
    assert code == 0, err
    return tmp_path / "runs" / "toy-detect"


def _images(tiny_demo, folder: Path) -> Path:
    folder.mkdir()
    for p in sorted(tiny_demo.glob("*.jpg"))[:1]:
        shutil.copy(p, folder / p.name)
    return folder


def test_the_manifest_records_each_checkpoint_and_a_changed_one_is_refused(tmp_path, tiny_demo, toy_registry, capsys):
    run = _toy_run(tmp_path, tiny_demo, capsys)
    manifest = json.loads((run / "manifest.json").read_text())
    ckpt = run / "checkpoint" / "toy.json"
    assert manifest["checkpoints"] == {"checkpoint/toy.json": sha256_file(ckpt)}
    assert not (run / ".zoo.lock").exists()  # released when the run ended

    ckpt.write_text(ckpt.read_text().replace('"mode": "mean"', '"mode": "oracle"'))
    images = _images(tiny_demo, tmp_path / "new")
    code, err = _zoo(["predict", "--run", str(run), str(images), "--out", str(tmp_path / "pred")], capsys)
    assert code == 2 and "toy.json: changed since its run wrote it" in _error_line(err)
    assert not (tmp_path / "pred").exists()

    # --resume of a run whose training finished loads the checkpoint too: refused the same way
    manifest["done"], manifest["status"] = ["prepare", "fit"], "failed"
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, err = _zoo(["run", "--task", "detect", "--backend", "toy", "--out", str(tmp_path / "runs"),
                      "--resume", "--device", "cpu"], capsys)
    assert code == 2 and "changed since its run wrote it" in _error_line(err)


def test_a_run_in_use_is_refused_and_a_dead_holders_lock_taken_over(tmp_path, tiny_demo, toy_registry, capsys, monkeypatch):
    monkeypatch.setenv("ZOO_TOY_FAIL", "interrupt-fit")
    code, _ = _zoo(["run", "--task", "detect", "--backend", "toy", "--data", str(tiny_demo),
                    "--out", str(tmp_path / "runs"), "--device", "cpu"], capsys)
    assert code != 0
    monkeypatch.delenv("ZOO_TOY_FAIL")
    run = tmp_path / "runs" / "toy-detect"
    resume = ["run", "--task", "detect", "--backend", "toy", "--out", str(tmp_path / "runs"), "--resume",
              "--device", "cpu"]

    import socket

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".zoo.lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        code, err = _zoo(resume, capsys)
        assert code == 2 and f"is in use by zoo process {holder.pid}" in _error_line(err)
        assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"  # untouched
    finally:
        holder.kill()
        holder.wait()

    # the holder died without removing its lock (kill -9): the next --resume takes it over
    code, err = _zoo(resume, capsys)
    assert code == 0, err
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    assert not (run / ".zoo.lock").exists()


def test_input_is_checked_before_the_run_folder_is_announced(tmp_path, tiny_demo, toy_registry, capsys):
    _toy_run(tmp_path, tiny_demo, capsys)  # runs/toy-detect exists: a new run would go to -2
    code, err = _zoo(["run", "--task", "detect", "--backend", "toy", "--data", str(tmp_path / "nowhere"),
                      "--out", str(tmp_path / "runs")], capsys)
    assert code == 2 and [line for line in err.splitlines() if line.strip()] == [_error_line(err)]
    assert "nowhere" in err and not (tmp_path / "runs" / "toy-detect-2").exists()


@pytest.mark.slow
def test_pickled_starting_weights_load_only_when_trusted(tmp_path, tiny_demo, capsys):
    import torch
    import torchvision

    marker = tmp_path / "marker"
    args = ["run", "--task", "classify", "--backend", "resnet18", "--data", str(tiny_demo), "--out",
            str(tmp_path / "runs"), "--device", "cpu", "--epochs", "1", "--imgsz", "32", "--batch", "4"]
    code, err = _zoo([*args, "--weights", str(hostile_pickle(tmp_path / "evil.pt", marker))], capsys)
    line = _error_line(err)
    assert code == 2 and "evil.pt" in line and "pickled object (posix.system)" in line and "--trust-weights" in line
    assert not marker.exists()

    # a whole pickled model (no tensors-only state dict) that the user trusts
    whole = tmp_path / "resnet18-whole.pt"
    torch.save(torchvision.models.resnet18(num_classes=3), whole)
    code, err = _zoo([*args, "--weights", str(whole)], capsys)
    assert code == 2 and "--trust-weights" in _error_line(err)
    code, err = _zoo([*args, "--weights", str(whole), "--trust-weights"], capsys)
    assert code == 0, err


@pytest.mark.slow
def test_a_full_disk_fails_the_run_cleanly(tmp_path, tiny_demo):
    """The checkpoint write hits a real file-size limit (RLIMIT_FSIZE, as a full disk would):
    one error line, the manifest says failed, no temporary file is left behind."""
    import resource
    import signal

    def small_files_only():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))

    out = subprocess.run(
        [sys.executable, "-m", "zoo", "run", "--task", "classify", "--backend", "mobilenet_v3_small", "--data", str(tiny_demo),
         "--out", str(tmp_path / "runs"), "--device", "cpu", "--epochs", "1", "--imgsz", "32", "--batch", "4"],
        capture_output=True, text=True, timeout=300, preexec_fn=small_files_only, cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    line = _error_line(out.stderr)
    assert "last.pt" in line and "too large" in line
    run = tmp_path / "runs" / "mobilenet_v3_small-classify"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "fit" not in manifest["done"]
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == ".zoo.lock"]


@pytest.fixture(scope="module")
def yolo_run(tmp_path_factory, tiny_demo) -> Path:
    """A finished yolov8 detect run (1 epoch, tiny images)."""
    from zoo.pipeline.run import execute

    out = tmp_path_factory.mktemp("yolo")
    return execute(run_options(task="detect", backend="yolov8", quiet=True, data=tiny_demo,
                               flags={"epochs": 1, "imgsz": 64, "batch": 4, "device": "cpu"}, out=out / "runs")).run_dir


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "runs" / run.name
    shutil.copytree(run, dst)
    return dst


@pytest.mark.slow
def test_a_swapped_yolov8_checkpoint_never_runs(yolo_run, tmp_path, tiny_demo, capsys):
    import torch

    marker = tmp_path / "marker"
    images = _images(tiny_demo, tmp_path / "new")
    state = torch.load(yolo_run / "checkpoint" / "model.pt", weights_only=True)  # tensors only
    assert state["extra"]["architecture"] == "yolov8n.yaml" and state["extra"]["nc"] == 3

    # 1. checkpoint/model.pt replaced: its sha256 no longer matches the manifest's
    run = _copy(yolo_run, tmp_path)
    hostile_pickle(run / "checkpoint" / "model.pt", marker)
    predict = ["predict", "--run", str(run), str(images), "--out", str(tmp_path / "pred"), "--device", "cpu"]
    code, err = _zoo(predict, capsys)
    assert code == 2 and "model.pt: changed since its run wrote it" in _error_line(err)

    # 2. ... and the manifest edited to match: still only tensors are read, so nothing runs
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoints"]["checkpoint/model.pt"] = sha256_file(run / "checkpoint" / "model.pt")
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, err = _zoo(predict, capsys)
    assert code == 2 and "pickled object (posix.system)" in _error_line(err)
    assert not marker.exists() and not (tmp_path / "pred").exists()

    # 3. ultralytics' own last.pt (a pickle that --resume continues) replaced
    shutil.rmtree(tmp_path / "runs")
    run = _copy(yolo_run, tmp_path)
    last = run / "work" / "train" / "weights" / "last.pt"
    assert json.loads((run / "manifest.json").read_text())["checkpoints"]["work/train/weights/last.pt"] == sha256_file(last)
    hostile_pickle(last, marker)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["done"], manifest["status"] = ["prepare"], "interrupted"
    (run / "manifest.json").write_text(json.dumps(manifest))
    resume = ["run", "--task", "detect", "--backend", "yolov8", "--out", str(tmp_path / "runs"),
              "--resume", "--epochs", "1", "--imgsz", "64", "--batch", "4", "--device", "cpu"]
    code, err = _zoo([*resume, "--trust-weights"], capsys)  # trusted, but not the file the run wrote
    assert code == 2 and "last.pt: changed since its run wrote it" in _error_line(err)
    assert not marker.exists()

    # 4. ... and its sha256 written into the manifest too (the attacker holds the whole folder):
    # without --trust-weights ultralytics' pickle is never read, whatever the manifest says
    for forged in (False, True):
        if forged:
            manifest["checkpoints"]["work/train/weights/last.pt"] = sha256_file(last)
            (run / "manifest.json").write_text(json.dumps(manifest))
        code, err = _zoo(resume, capsys)
        line = _error_line(err)
        assert code == 2 and "last.pt: yolov8 --resume continues ultralytics' last.pt, a pickle" in line
        assert "--trust-weights" in line and not marker.exists()


@pytest.mark.slow
def test_a_users_ultralytics_weights_need_trust(yolo_run, tmp_path, tiny_demo, capsys):
    theirs = tmp_path / "theirs.pt"  # a genuine ultralytics checkpoint: a pickle of the model
    shutil.copy(yolo_run / "work" / "train" / "weights" / "last.pt", theirs)
    args = ["run", "--task", "detect", "--backend", "yolov8", "--data", str(tiny_demo), "--out", str(tmp_path / "runs"),
            "--epochs", "1", "--imgsz", "64", "--batch", "4", "--device", "cpu", "--weights", str(theirs)]
    code, err = _zoo(args, capsys)
    line = _error_line(err)
    assert code == 2 and "theirs.pt: an ultralytics .pt file is a pickle" in line and "--trust-weights" in line
    code, err = _zoo([*args, "--trust-weights"], capsys)
    assert code == 0, err
    done = sorted((tmp_path / "runs").iterdir())[-1]
    assert json.loads((done / "manifest.json").read_text())["status"] == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("task,backend,extra", [
    ("classify", "mobilenet_v3_small", ["--imgsz", "32"]),
    ("detect", "d2-faster-rcnn", ["--imgsz", "64", "--set", "max_detections=20", "--set", "proposals=50",
                                  "--set", "rois_per_image=32"]),
])
def test_a_poisoned_resume_never_runs_even_with_its_sha_in_the_manifest(task, backend, extra, tmp_path, tiny_demo, capsys):
    """The attacker holds the whole run folder: last.pt swapped for a pickle that runs a
    command, and its sha256 written into manifest.json. zoo's own checkpoints are read as
    tensors only, so the resume is refused and nothing runs."""
    if backend.startswith("d2-"):
        pytest.importorskip("detectron2", reason="detectron2 is not importable here: run `zoo install detectron2`")
    marker = tmp_path / "marker"
    args = ["run", "--task", task, "--backend", backend, "--data", str(tiny_demo), "--out", str(tmp_path / "runs"),
            "--device", "cpu", "--epochs", "1", "--batch", "2", *extra]
    code, err = _zoo(args, capsys)
    assert code == 0, err
    run = tmp_path / "runs" / f"{backend}-{task}"
    last = hostile_pickle(run / "checkpoint" / "last.pt", marker)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoints"]["checkpoint/last.pt"] = sha256_file(last)
    manifest["done"], manifest["status"] = ["prepare"], "interrupted"
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, err = _zoo([*args, "--resume"], capsys)
    line = _error_line(err)
    assert code == 2 and "last.pt" in line and "pickled object (posix.system)" in line
    assert not marker.exists()
