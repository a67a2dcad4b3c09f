"""A third party adds a backend from its own package, without touching zoo.

The package in tests/third_party_plugin is built and pip-installed (into a private target
folder, so the test environment is left as it was) and then seen by a fresh process through
the ``zoo`` entry-point group: in ``zoo list`` and runnable through the registry, where it
passes the same conformance suite as zoo's own backends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_SRC = Path(__file__).parent / "third_party_plugin"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("toy")
    src = work / "src"
    shutil.copytree(PLUGIN_SRC, src)  # build from a copy: the build writes egg-info beside the sources
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(src)],
        check=True, capture_output=True, text=True,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "200"
    return env


def test_zoo_list_shows_the_third_party_backend(plugin_env):
    out = subprocess.run([sys.executable, "-m", "zoo", "list"], env=plugin_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "mean-box" in out.stdout


def test_third_party_backend_runs_through_the_registry(plugin_env, tmp_path):
    code = (
        "from zoo.testing import check_backend\n"
        f"report = check_backend('mean-box', 'detect', {str(tmp_path)!r})\n"
        "print('AP50', report.metrics['AP50'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=plugin_env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ap50 = float(out.stdout.split("AP50")[1])
    assert 0.0 <= ap50 <= 1.0
