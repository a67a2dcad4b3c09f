"""`zoo run` through the command line: a labelme folder in, a run folder out; bad input is
one line on stderr and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import toy_backend

import zoo.registry
from zoo.cli import main


@pytest.fixture
def toy_registry(monkeypatch):
    # The toy backend is not installed as an entry point; the CLI asks get_registry().
    reg = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    return reg


def _zoo(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_run_on_a_labelme_folder(tmp_path, tiny_demo, toy_registry, capsys):
    before = sorted(p.name for p in tiny_demo.iterdir())
    try:
        main(["run", "--task", "detect", "--backend", "toy", "--data", str(tiny_demo),
              "--out", str(tmp_path / "runs"), "--device", "cpu", "--seed", "3", "--epochs", "2",
              "--set", "mode=oracle"])
    except SystemExit as e:  # typer may exit 0
        assert e.code in (0, None)
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "toy-detect"
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "finished" and m["seed"] == 3 and m["data"]["format"] == "labelme"
    assert json.loads((run / "split.json").read_text())["seed"] == 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["AP"] == pytest.approx(1.0)
    assert "AP" in out and "1.000" in out  # the summary table
    assert sorted(p.name for p in tiny_demo.iterdir()) == before  # nothing written into the input

    # report.md's reproduce line gives the same config, split and scores
    line = next(l for l in (run / "report.md").read_text().splitlines() if l.startswith("zoo run "))
    import shlex

    main([*shlex.split(line)[1:], "--out", str(tmp_path / "runs")])
    again = tmp_path / "runs" / "toy-detect-2"
    assert (again / "config.yaml").read_text() == (run / "config.yaml").read_text()
    assert (again / "split.json").read_text() == (run / "split.json").read_text()
    assert json.loads((again / "metrics.json").read_text()) == metrics


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "toy", "--task", "detekt"], "unknown task 'detekt' (did you mean 'detect'?)"),
        (["--backend", "tyo", "--task", "detect"], "unknown backend 'tyo'"),
        (["--backend", "toy", "--task", "detect", "--set", "mdoe=x"], "did you mean 'mode'"),
        (["--backend", "toy", "--task", "detect", "--set", "epochs=many"], "epochs"),
        (["--backend", "toy", "--task", "detect", "--data", "/nonexistent/folder"], "/nonexistent/folder: no such file"),
        (["--backend", "toy", "--task", "detect", "--val", "1.5"], "--val 1.5"),
        (["--backend", "toy", "--task", "detect", "--device", "tpu"], "--device 'tpu'"),
        (["--backend", "toy", "--task", "detect", "--resume"], "no run named 'toy-detect'"),
        (["--backend", "toy", "--task", "detect", "--name", "a/b"], "one folder name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_demo, toy_registry, capsys, argv, message):
    if "--data" not in argv:
        argv = [*argv, "--data", str(tiny_demo)]
    code, _, err = _zoo(["run", *argv, "--out", str(tmp_path / "runs")], capsys)
    assert code == 2, err
    assert err.startswith("zoo: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_data_that_cannot_serve_the_task(tmp_path, toy_registry, capsys):
    from PIL import Image

    folder = tmp_path / "plain"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    (folder / "a.json").write_text(json.dumps({
        "version": "5.5.0", "flags": {}, "shapes": [
            {"label": "cell", "points": [[1, 1], [5, 5]], "shape_type": "rectangle", "group_id": None, "flags": {}}],
        "imagePath": "a.png", "imageData": None, "imageHeight": 8, "imageWidth": 8,
    }))
    code, _, err = _zoo(["run", "--task", "keypoint", "--backend", "toy", "--data", str(folder),
                         "--out", str(tmp_path / "runs")], capsys)
    assert code == 2 and "needs keypoints" in err


def test_subprocess_error_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "run", "--task", "detect", "--backend", "no-such-backend",
         "--data", str(tmp_path), "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown backend 'no-such-backend'" in proc.stderr


def test_train_val_folders_are_the_split(tmp_path, tiny_demo, toy_registry, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_demo, data)
    stems = sorted(p.stem for p in data.glob("*.json"))
    for k, stem in enumerate(stems):
        part = data / ("val" if k < 3 else "train")
        part.mkdir(exist_ok=True)
        for p in data.glob(f"{stem}.*"):
            shutil.move(p, part / p.name)
    main(["run", "--task", "detect", "--backend", "toy", "--data", str(data), "--out", str(tmp_path / "runs"),
          "--device", "cpu"])
    split = json.loads((tmp_path / "runs/toy-detect/split.json").read_text())
    assert split["source"] == "data" and split["val"] == [f"val/{s}" for s in stems[:3]]
    main(["run", "--task", "detect", "--backend", "toy", "--data", str(data), "--out", str(tmp_path / "runs"),
          "--device", "cpu", "--split", "random"])
    split = json.loads((tmp_path / "runs/toy-detect-2/split.json").read_text())
    assert split["source"] == "seeded" and len(split["val"]) == round(len(stems) * 0.2)


def test_ctrl_c_keeps_the_run_and_says_how_to_resume(tmp_path, tiny_demo, toy_registry, capsys, monkeypatch):
    args = ["run", "--task", "detect", "--backend", "toy", "--data", str(tiny_demo), "--out", str(tmp_path / "runs"),
            "--device", "cpu"]
    monkeypatch.setenv("ZOO_TOY_FAIL", "interrupt-fit")
    code, _, err = _zoo(args, capsys)
    assert code == 130 and "interrupted" in err and "--name toy-detect --resume" in " ".join(err.split())
    m = json.loads((tmp_path / "runs/toy-detect/manifest.json").read_text())
    assert m["status"] == "interrupted" and m["done"] == ["prepare"]
    monkeypatch.delenv("ZOO_TOY_FAIL")
    main([*args, "--resume"])
    m = json.loads((tmp_path / "runs/toy-detect/manifest.json").read_text())
    assert m["status"] == "finished"
    assert not (tmp_path / "runs/toy-detect-2").exists()


def test_without_data_the_demo_is_used(tmp_path, toy_registry, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))  # ensure_demo's cache, not ~/.cache
    monkeypatch.setenv("ZOO_TOY_FAIL", "predict")
    args = ["run", "--task", "classify", "--backend", "toy", "--out", str(tmp_path / "runs"), "--device", "cpu"]
    with pytest.raises(RuntimeError):
        main(args)
    m = json.loads((tmp_path / "runs/toy-classify/manifest.json").read_text())
    assert m["data"]["path"] == "demo" and m["data"]["format"] == "labelme"
    assert m["split"]["val"] == 24 and m["split"]["train"] == 96  # the 120-image demo, 20 % held out
    monkeypatch.delenv("ZOO_TOY_FAIL")
    main([*args, "--resume"])  # no --data: the recorded source (the demo) again
    assert json.loads((tmp_path / "runs/toy-classify/manifest.json").read_text())["status"] == "finished"
