"""No process left behind: SIGKILL, SIGTERM or SIGINT to zoo ends every process it started
(the nnU-Net worker, ``--jobs`` processes, data-loader workers) within 5 s; Ctrl-C and SIGTERM
print the resume command and exit 130. Real processes, real signals (Linux: /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import alive, all_gone, cmdline, descendants, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_a_child_dies_when_its_parent_is_killed(tmp_path):
    """die_with_parent in a grandchild; the middle process killed with SIGKILL."""
    code = (
        "import subprocess, sys, time\n"
        "from zoo.lifetime import die_with_parent\n"
        f"p = subprocess.Popen({SLEEPER!r}, preexec_fn=die_with_parent)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grandchild = int(middle.stdout.readline())
    assert alive(grandchild)
    middle.kill()
    middle.wait()
    assert all_gone([grandchild]) == []


def test_run_group_kills_the_childs_own_children_when_interrupted(tmp_path):
    """run_group's child starts a process that never heard of zoo; Ctrl-C in zoo ends both."""
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({SLEEPER!r})\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(p.pid))\n"
        "time.sleep(120)\n"
    )
    driver = (
        "import sys\n"
        "from zoo.lifetime import run_group, terminate_as_interrupt\n"
        "terminate_as_interrupt()\n"
        f"run_group([sys.executable, '-c', {code!r}])\n"
    )
    zoo = subprocess.Popen([sys.executable, "-c", driver], stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: (tmp_path / "pid").is_file() and (tmp_path / "pid").read_text(), 30)
    family = descendants(zoo.pid)
    assert len(family) == 2
    zoo.send_signal(signal.SIGTERM)  # as a scheduler's timeout would
    assert zoo.wait(10) != 0 and "KeyboardInterrupt" in zoo.stderr.read()
    assert all_gone(family) == []


def _zoo_run(tmp_path: Path, tiny_demo: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_HOME": str(tmp_path / "home")}
    return subprocess.Popen([sys.executable, "-m", "zoo", *args, "--data", str(tiny_demo), "--out",
                             str(tmp_path / "runs"), "--device", "cpu"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _until_children(proc: subprocess.Popen, at_least: int, timeout: float = 240) -> list[int]:
    """zoo's descendants, once there are ``at_least`` (loader workers come and go each epoch:
    the signal must follow at once)."""
    family: list[int] = []

    def grown() -> bool:
        family[:] = descendants(proc.pid)
        return len(family) >= at_least or proc.poll() is not None

    wait_for(grown, timeout, 0.1)
    assert proc.poll() is None and len(family) >= at_least, proc.stderr.read() if proc.poll() is not None else family
    return family


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_zoo_run_with_loader_workers_leaves_nothing_behind(sig, tmp_path, tiny_demo):
    proc = _zoo_run(tmp_path, tiny_demo, "run", "--task", "classify", "--backend", "mobilenet_v3_small",
                    "--epochs", "200", "--imgsz", "32", "--batch", "2", "--set", "workers=2")
    family = _until_children(proc, 2)
    proc.send_signal(sig)
    proc.wait(30)
    assert all_gone(family) == []
    if sig != signal.SIGKILL:  # Ctrl-C and kill: the run folder kept and the way to continue it said
        err = proc.stderr.read()
        assert proc.returncode == 130, err
        assert "--resume" in err and "continue it with" in err


@pytest.mark.slow
def test_zoo_run_nnunet_killed_leaves_no_worker(tmp_path, tiny_demo):
    pytest.importorskip("nnunetv2")
    proc = _zoo_run(tmp_path, tiny_demo, "run", "--task", "semantic-seg", "--backend", "nnunet", "--epochs", "1",
                    "--set", "iterations_per_epoch=1000")

    def worker_started() -> bool:
        return any("zoo.plugins.nnunet.worker" in cmdline(p) for p in descendants(proc.pid)) or proc.poll() is not None

    assert wait_for(worker_started, 240, 0.2) and proc.poll() is None, proc.stderr.read()
    time.sleep(3)  # nnU-Net under way in its worker
    family = descendants(proc.pid)
    proc.kill()
    proc.wait(30)
    assert all_gone(family) == []


@pytest.mark.slow
def test_zoo_compare_jobs_2_killed_leaves_no_worker(tmp_path, tiny_demo):
    proc = _zoo_run(tmp_path, tiny_demo, "compare", "--task", "classify", "--backends",
                    "mobilenet_v3_small,resnet18", "--jobs", "2", "--epochs", "200", "--imgsz", "32", "--batch", "2")
    family = _until_children(proc, 2)
    proc.kill()
    proc.wait(30)
    assert all_gone(family) == []
