"""``zoo compare --jobs N`` and ``--executor ray``: the same runs and numbers as one after another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from flat_options import compare_options
import toy_backend

from zoo.pipeline.compare import compare
from zoo.pipeline.executors import slot_environment


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def _compare(out, data, registry, **kw):
    return compare(compare_options(
        task="detect", backends=["toy", "oracle"], data=data, out=out, registry=registry, flags={"device": "cpu"}, folds=2, samples=0, **kw))


def per_run_numbers(result):
    """(backend, fold, seed) -> the scores of the run's metrics.json, and the run folder's name."""
    out = {}
    for r in result.runs:
        m = json.loads((r.run_dir / "metrics.json").read_text())
        out[(r.backend, r.fold, r.seed)] = ({k: v for k, v in m.items() if isinstance(v, float)}, r.status)
    return out


def test_slot_environment_divides_threads_and_gpus():
    assert slot_environment(3, 2, ["0", "1"], 16) == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8",
                                                      "ZOO_THREADS": "8", "CUDA_VISIBLE_DEVICES": "1"}
    assert "CUDA_VISIBLE_DEVICES" not in slot_environment(0, 4, [], 2)
    assert slot_environment(0, 4, [], 2)["OMP_NUM_THREADS"] == "1"


def test_jobs_run_in_processes_with_the_same_numbers(tmp_path, tiny_demo, registry):
    one = _compare(tmp_path / "seq", tiny_demo, registry)
    two = _compare(tmp_path / "par", tiny_demo, registry, jobs=2)
    assert per_run_numbers(two) == per_run_numbers(one)
    assert [r.backend for r in two.rows] == [r.backend for r in one.rows]
    assert [r.metrics for r in two.rows] == [r.metrics for r in one.rows]
    # each worker's output went to its own file, not the terminal
    assert sorted(p.name for p in (two.folder / "logs").iterdir()) == [
        "oracle-fold-0.txt", "oracle-fold-1.txt", "toy-fold-0.txt", "toy-fold-1.txt"]
    # reused as ever
    again = _compare(tmp_path / "par", tiny_demo, registry, jobs=2)
    assert {r.status for r in again.runs} == {"reused"}


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_processes_under(temp):
    """Stop, by pid, the processes whose command line names ``temp`` (this cluster's)."""
    import os
    import signal
    import time
    from pathlib import Path

    def pids():
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                try:
                    if str(temp).encode() in (proc / "cmdline").read_bytes():
                        found.append(int(proc.name))
                except OSError:
                    pass
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        time.sleep(2)


@pytest.fixture
def ray_cluster(tmp_path):
    """A real one-node Ray cluster on 127.0.0.1, stopped at the end. Its workers import the
    toy plugin from tests/ (as a real cluster's nodes would have the plugins installed)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("ray")
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command of this interpreter
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(toy_backend.__file__).parent),
                                                        os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    temp = Path("/tmp") / f"zr{port}"  # Ray's socket paths must stay short
    start = [*ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--include-dashboard=false", "--num-cpus", "2", "--num-gpus", "0", "--temp-dir", str(temp),
             "--disable-usage-stats"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop_processes_under(temp)  # this cluster's only (`ray stop` would stop every Ray of the user)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_cluster_runs_the_compare_with_the_same_rows_and_numbers(tmp_path, tiny_demo, registry, ray_cluster):
    local = _compare(tmp_path / "local", tiny_demo, registry)
    on_ray = _compare(tmp_path / "ray", tiny_demo, registry, executor="ray", address=ray_cluster)
    assert {r.status for r in on_ray.runs} == {"trained"}
    assert per_run_numbers(on_ray) == per_run_numbers(local)
    assert [(r.backend, r.metrics) for r in on_ray.rows] == [(r.backend, r.metrics) for r in local.rows]
    assert sorted(r.run_dir.name for r in on_ray.runs) == sorted(r.run_dir.name for r in local.runs)



@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["KILL", "TERM", "INT"])
def test_a_ray_compare_stopped_leaves_no_process_of_its_run(sig, tmp_path, tiny_demo, ray_cluster):
    """``zoo compare --executor ray`` stopped while a run trains in a Ray worker with two
    data-loader workers of its own: 5 s later nothing of the run is alive, neither zoo's
    process nor the worker that ran the task nor the worker's children."""
    from processes import all_gone, descendants, running, wait_for

    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_HOME": str(tmp_path / "home")}
    zoo = subprocess.Popen([sys.executable, "-m", "zoo", "compare", "--task", "classify", "--backends",
                            "mobilenet_v3_small", "--executor", "ray", "--address", ray_cluster, "--data", str(tiny_demo),
                            "--out", str(tmp_path / "runs"), "--device", "cpu", "--epochs", "200", "--imgsz", "32",
                            "--batch", "2", "--set", "workers=2"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    family: list[int] = []

    def training_with_its_loader() -> bool:
        tasks = running("ray::run_cell_task")
        family[:] = [*descendants(zoo.pid), *tasks, *(child for t in tasks for child in descendants(t))]
        return any(len(descendants(t)) >= 2 for t in tasks) or zoo.poll() is not None

    assert wait_for(training_with_its_loader, 300, 0.1) and zoo.poll() is None, zoo.stderr.read()
    zoo.send_signal(sig)
    zoo.wait(30)
    assert all_gone(family) == []
