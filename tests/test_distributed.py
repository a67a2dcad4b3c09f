"""``zoo run`` under torchrun: two CPU processes (gloo) train one model, rank 0 writes.

Each rank records the ids of the samples it loaded (``ZOO_DEBUG_SEEN``, zoo.training), so
the test sees, not assumes, that the ranks split every epoch into disjoint halves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.training.distributed import World, local_device, world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from zoo.data.demo import write_demo

    out = tmp_path_factory.mktemp("ddp-demo")
    # 12 images: 10 train, 5 per rank (one batch of 5: no sample dropped to spare BatchNorm)
    write_demo(out, images=12, size=64, seed=0)
    return out


def torchrun(args: list[str], seen: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DEBUG_SEEN": str(seen), "HF_HUB_OFFLINE": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "zoo", "run", *args]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def seen_by_rank(seen: Path) -> dict[int, dict[int, list[str]]]:
    """rank -> epoch -> the sample ids that rank loaded in that epoch."""
    out: dict[int, dict[int, list[str]]] = {}
    for rank in (0, 1):
        for line in (seen / f"seen-rank{rank}.jsonl").read_text().splitlines():
            row = json.loads(line)
            out.setdefault(rank, {})[row["epoch"]] = row["ids"]
    return out


def assert_disjoint_halves(seen: Path, train: list[str], epochs: list[int]) -> None:
    """Each epoch, the ranks loaded disjoint halves of the same training images (``train``
    holds them, and maybe images the backend cannot use: a classifier skips unlabelled ones)."""
    by_rank = seen_by_rank(seen)
    whole = {i for rank in by_rank.values() for ids in rank.values() for i in ids}
    assert whole <= set(train) and len(whole) >= len(train) - 2
    for epoch in epochs:
        a, b = by_rank[0][epoch], by_rank[1][epoch]
        assert len(a) == len(b) == len(whole) // 2, (epoch, a, b)
        assert not set(a) & set(b), f"epoch {epoch}: both ranks loaded {set(a) & set(b)}"
        assert set(a) | set(b) == whole
    assert sorted(by_rank[0]) == sorted(by_rank[1]) == epochs
    # the split changes with the epoch (DistributedSampler.set_epoch)
    assert len(epochs) < 2 or by_rank[0][epochs[0]] != by_rank[0][epochs[1]]


def the_one_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs  # rank 1 made no folder of its own
    return runs[0]


def interrupt_after_first_epoch(run: Path) -> None:
    """The run folder as a crash after the first of two epochs would leave it."""
    import torch

    from zoo.checksums import sha256_file

    last = run / "checkpoint" / "last.pt"
    state = torch.load(last, weights_only=True)
    state.update(epoch=0, history=state["history"][:1], iterations=state["history"][0]["iterations"])
    torch.save(state, last)
    (run / "checkpoint" / "best.pt").unlink(missing_ok=True)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoints"] = {"checkpoint/last.pt": sha256_file(last)}
    manifest.update(done=["prepare"], status="interrupted")
    manifest["timings"] = {"read": 0.1, "fit_parts": [1.0]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "metrics.json").unlink()


def test_classifier_under_torchrun_then_resume(demo, tmp_path):
    out, seen = tmp_path / "runs", tmp_path / "seen"
    args = ["--task", "classify", "--backend", "resnet18", "--data", str(demo), "--epochs", "2", "--imgsz", "32",
            "--batch", "5", "--device", "cpu", "--out", str(out), "--set", "pretrained=false"]
    torchrun(args, seen, tmp_path)
    run = the_one_run(out)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["world_size"] == 2
    assert sorted(manifest["checkpoints"]) == ["checkpoint/last.pt"]
    train = json.loads((run / "split.json").read_text())["train"]
    assert_disjoint_halves(seen, train, [0, 1])
    assert json.loads((run / "metrics.json").read_text())["main"] == "accuracy"  # scored once, by rank 0
    assert (run / "log.txt").read_text().count("DistributedDataParallel, rank 0 of 2") == 1

    # --resume under torchrun: both ranks continue from last.pt with the second epoch only
    interrupt_after_first_epoch(run)
    for f in seen.iterdir():
        f.unlink()
    torchrun([*args, "--resume"], seen, tmp_path)
    assert the_one_run(out) == run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and "evaluate" in manifest["done"]
    assert len(manifest["timings"]["fit_parts"]) == 2
    assert_disjoint_halves(seen, train, [1])
    state = __import__("torch").load(run / "checkpoint" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and [r["epoch"] for r in state["history"]] == [0, 1]
    assert "resuming from" in (run / "log.txt").read_text()


def test_unet_under_torchrun(demo, tmp_path):
    out, seen = tmp_path / "runs", tmp_path / "seen"
    torchrun(["--task", "semantic-seg", "--backend", "unet", "--data", str(demo), "--epochs", "1", "--imgsz", "32",
              "--batch", "2", "--device", "cpu", "--out", str(out), "--set", "encoder_depth=4",
              "--select", "best"], seen, tmp_path)
    run = the_one_run(out)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["world_size"] == 2
    assert manifest["selection"]["times_scored"] == 1
    split = json.loads((run / "split.json").read_text())
    assert_disjoint_halves(seen, split["train"], [0])
    masks = sorted((run / "predictions" / "masks").glob("*.png"))
    assert [p.stem for p in masks] == sorted(split["val"])  # predicted once, by rank 0


def test_world_from_the_launcher_variables(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world() == World(1, 0, 0) and not world().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world() == World(4, 3, 1) and world().distributed and not world().main
    # one GPU per process: cuda:LOCAL_RANK; CPU stays CPU
    assert local_device("cuda") == "cuda:1" == local_device("cuda:0")
    assert local_device("cpu") == "cpu"


def test_several_gpus_go_to_ultralytics_as_a_device_list():
    from zoo.plugins.yolov8.backend import _framework_device

    assert _framework_device("cuda:0,1") == "0,1" and _framework_device("cuda:1") == "1"


def test_zoo_own_loop_refuses_a_device_list():
    import torch

    from zoo.errors import ZooError
    from zoo.training import TrainConfig, fit

    with pytest.raises(ZooError, match="torchrun"):
        fit(torch.nn.Linear(2, 1), [], config=TrainConfig(epochs=1), device="cuda:0,1")
