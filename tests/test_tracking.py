"""--track: a real mlflow server (sqlite store) read back with MlflowClient, and TensorBoard
event files read back with tensorboard's EventAccumulator; the toy backend trains."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from flat_options import compare_options, run_options
import toy_backend
from toy_backend import make_dataset

from zoo.tasks import get_task
from zoo.pipeline.run import RunOptions, execute


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("trackdata"), n=12)


def _opts(tmp_path, data, **kw) -> RunOptions:
    base = dict(task="detect", backend="toy", out=tmp_path / "runs", dataset=data, registry=toy_backend.registry(),
                quiet=True, flags={"device": "cpu"}, sets=["epochs=3"])
    base.update(kw)
    return run_options(**base)


def test_tensorboard_event_files_hold_history_and_scores(tmp_path, data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = execute(_opts(tmp_path, data, track="tensorboard"))
    acc = EventAccumulator(str(result.run_dir / "tensorboard"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 1 / 3])
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for k, v in get_task(metrics["task"]).metrics_schema.scores_of(metrics).items():
        if v is not None:
            assert acc.Scalars(f"final/{k}")[0].value == pytest.approx(v, abs=1e-6)


def test_mlflow_default_store_is_inside_the_output_folder(tmp_path, data, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    result = execute(_opts(tmp_path, data, out=tmp_path / "out", track="mlflow"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written beside it
    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlruns' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("zoo").experiment_id])[0]
    assert run.data.metrics["AP"] == result.metrics["AP"]
    assert "report.html" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_mlflow_with_a_sqlite_uri_keeps_artifacts_in_the_output_folder_and_says_so(tmp_path, data, monkeypatch):
    """MLFLOW_TRACKING_URI=sqlite:///...: mlflow's default artifact root is ./mlruns of the
    current folder; zoo creates its experiment with one inside the output folder."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from zoo.progress import LogReporter

    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    said = []

    class Recording(LogReporter):
        def say(self, text):
            said.append(text)

    execute(_opts(tmp_path, data, out=tmp_path / "out", track="mlflow", quiet=False, reporter=Recording()))
    assert list(cwd.iterdir()) == []  # nothing in the current folder
    artifacts = tmp_path / "out" / "mlruns" / "artifacts"
    assert [p for p in artifacts.rglob("report.md")]
    experiment = MlflowClient(uri).get_experiment_by_name("zoo")
    assert experiment.artifact_location == artifacts.as_uri()
    assert any(f"its artifacts in {artifacts.as_uri()}" in line for line in said)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    pytest.importorskip("mlflow")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow  # an mlflow server starts (~30 s on 2 shared cores)
def test_compare_logs_a_parent_and_one_child_per_backend_to_an_mlflow_server(tmp_path, tiny_demo, mlflow_server,
                                                                            monkeypatch):
    from mlflow.tracking import MlflowClient

    from zoo.pipeline.compare import compare

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = compare(compare_options(task="detect", backends=["toy", "oracle"], registry=toy_backend.registry(),
                                     data=tiny_demo, flags={"device": "cpu"}, sets=["epochs=2"],
                                     out=tmp_path / "runs", track="mlflow"))
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("zoo").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3
    parent = parents[0]
    compare = json.loads((result.folder / "compare.json").read_text())
    assert parent.data.tags["data_hash"] == compare["data_hash"] and parent.data.tags["split"] == compare["split_key"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"leaderboard.md", "report.html"}
    children = {r.data.tags["backend"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"toy", "oracle"}
    for row in result.rows:
        child = children[row.backend]
        metrics = json.loads((row.run_dir / "metrics.json").read_text())
        for k, v in get_task(metrics["task"]).metrics_schema.scores_of(metrics).items():
            if v is not None:
                assert child.data.metrics[k] == v, k
        for k, (low, high) in (metrics.get("ci95") or {}).items():
            assert (child.data.metrics[f"{k}_ci95_low"], child.data.metrics[f"{k}_ci95_high"]) == (low, high)
        assert parent.data.metrics[f"{row.backend}/AP"] == metrics["AP"]
        assert child.data.params["epochs"] == "2" and child.data.tags["split"] == compare["split_key"]
        history = client.get_metric_history(child.info.run_id, "train/loss")
        assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 0.5)]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"report.md", "report.html", "metrics.json", "plots"} <= artifacts


def test_unknown_tracker_is_one_clear_error(tmp_path, data):
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="--track wandb: unknown tracker"):
        execute(_opts(tmp_path, data, track="wandb"))


@pytest.mark.slow
def test_a_real_backend_reports_its_epochs_to_tensorboard(tmp_path, tiny_demo):
    """torchvision's mobilenet, 2 epochs on tiny images: its training loop's losses, one per epoch."""
    pytest.importorskip("torchvision")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = execute(run_options(task="classify", backend="mobilenet_v3_small", quiet=True, data=tiny_demo,
                                 flags={"device": "cpu", "epochs": 2, "imgsz": 32, "batch": 4},
                                 out=tmp_path / "runs", track="tensorboard"))
    history = result.manifest.history
    assert [row["epoch"] for row in history] == [1, 2]
    acc = EventAccumulator(str(result.run_dir / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [
        (row["epoch"], pytest.approx(row["loss"], rel=1e-6)) for row in history]
