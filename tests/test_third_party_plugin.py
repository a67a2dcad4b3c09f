"""A third party adds a backend (with its own defaults), a reader and a writer from its own
package, without touching zoo.

The package in tests/third_party_plugin is built and pip-installed (into a private target
folder, so the test environment is left as it was) and then seen by a fresh process through
the ``zoo`` entry-point group: in ``zoo list`` and runnable through the registry, where it
passes the same conformance suite as zoo's own backends, and gets the treatment zoo's own
plugins get: ``zoo convert --to`` its writer, ``zoo run --backend`` with its shipped defaults.
"""

from __future__ import annotations

import csv
import json
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
    written = next(line for line in out.stdout.splitlines() if line.startswith("formats written (--to):"))
    assert "toy-csv" in written and "coco" in written  # a plugin's writer listed beside zoo's own


def test_third_party_backend_passes_each_check_by_name(plugin_env, tmp_path):
    # the plugin author's own pytest: each conformance check is a test of its own, by name
    (tmp_path / "test_mean_box.py").write_text(
        "from zoo.testing import check_backend, parametrize_with_checks\n"
        "\n"
        "@parametrize_with_checks([('mean-box', 'detect')])\n"
        "def test_mean_box(conformance, check):\n"
        "    check(conformance)\n"
        "\n"
        "def test_all_checks_at_once(tmp_path):\n"
        "    report = check_backend('mean-box', 'detect', tmp_path)\n"
        "    print('AP50', report.metrics['AP50'])\n"
        "    assert 0.0 <= report.metrics['AP50'] <= 1.0\n"
    )
    out = _plugin_authors_pytest(plugin_env, tmp_path, "test_mean_box.py")
    from zoo.testing import CHECKS

    for check in CHECKS:
        assert f"test_mean_box[mean-box-detect-{check.__name__}] PASSED" in out.stdout, out.stdout[-3000:]
    assert "test_all_checks_at_once PASSED" in out.stdout


def test_third_party_reader_passes_the_reader_kit(plugin_env, tmp_path):
    # the plugin author's own pytest for a reader: zoo.testing.check_reader on a sample
    (tmp_path / "test_toy_csv.py").write_text(
        "from PIL import Image\n"
        "from zoo.testing import check_reader\n"
        "\n"
        "def test_toy_csv(tmp_path):\n"
        "    sample = tmp_path / 'sample'\n"
        "    sample.mkdir()\n"
        "    for n in ('a', 'b'):\n"
        "        Image.new('RGB', (30, 20), (9, 9, 9)).save(sample / f'{n}.png')\n"
        "    (sample / 'boxes.csv').write_text('image,label,x0,y0,x1,y1\\na.png,cell,1,2,10,12\\nb.png,cell,3,3,9,9\\n')\n"
        "    check_reader('toy-csv', sample, tmp_path / 'kit')\n"
    )
    out = _plugin_authors_pytest(plugin_env, tmp_path, "test_toy_csv.py")
    assert "test_toy_csv PASSED" in out.stdout


def _plugin_authors_pytest(env: dict, folder: Path, test_file: str) -> subprocess.CompletedProcess:
    """The plugin author's pytest run on ``test_file`` in ``folder``, with the plugin installed; it passed."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", test_file],
                         env=env, capture_output=True, text=True, cwd=folder, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return out


def _zoo(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``zoo ARGS`` in a fresh process that sees the installed toy package."""
    out = subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def demo_folder(plugin_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "demo"
    _zoo(plugin_env, "demo", folder)
    return folder


def test_third_party_writer_gets_the_built_in_treatment(plugin_env, demo_folder, tmp_path):
    from zoo.data.reading import read_dataset

    out = _zoo(plugin_env, "convert", demo_folder, "--to", "toy-csv", "--out", tmp_path / "toy")
    assert "(toy-csv, detect)" in out.stdout.replace("\n", " ")  # its spec's default task, as zoo's writers
    demo = read_dataset(demo_folder)
    expected = sorted((r.id + r.suffix, demo.categories[i.category], *map(float, i.bbox))
                      for r in demo.images for i in r.instances if not i.ignore)
    with (tmp_path / "toy" / "boxes.csv").open(newline="", encoding="utf-8") as f:
        written = sorted((row["image"], row["label"], *(float(row[k]) for k in ("x0", "y0", "x1", "y1")))
                         for row in csv.DictReader(f))
    assert written == expected and len(written) > 100
    images = {p.name for p in (tmp_path / "toy").iterdir()} - {"boxes.csv"}
    assert images == {r.id + r.suffix for r in demo.images}

    # --no-images reaches it because its spec lists the option, exactly as for coco and masks
    _zoo(plugin_env, "convert", demo_folder, "--to", "toy-csv", "--out", tmp_path / "bare", "--no-images")
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["boxes.csv"]

    # round_trip: zoo check --fix rewrites a toy-csv folder through its writer, as it does yolo or voc
    _zoo(plugin_env, "check", tmp_path / "toy", "--fix", "--out", tmp_path / "fixed")
    assert (tmp_path / "fixed" / "boxes.csv").read_text() == (tmp_path / "toy" / "boxes.csv").read_text()


def test_third_party_backend_runs_with_the_defaults_it_ships(plugin_env, demo_folder, tmp_path):
    import yaml

    mine = tmp_path / "mine.yaml"
    mine.write_text("empty_slices: 1.0\n")  # --config is layered over the shipped defaults
    _zoo(plugin_env, "run", "--task", "detect", "--backend", "mean-box", "--data", demo_folder,
         "--out", tmp_path / "runs", "--device", "cpu", "--config", mine)
    config = yaml.safe_load((tmp_path / "runs" / "mean-box-detect" / "config.yaml").read_text())
    assert config["batch"] == 5  # zoo_toy/configs/mean-box/detect.yaml, through BackendSpec.defaults
    assert config["empty_slices"] == 1.0
    metrics = json.loads((tmp_path / "runs" / "mean-box-detect" / "metrics.json").read_text())
    assert 0.0 <= metrics["AP50"] <= 1.0
