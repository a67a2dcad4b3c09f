"""The command line: start-up stays light, user errors are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flat_options import compare_options

from zoo import __version__

HEAVY = ("torch", "torchvision", "ultralytics", "segmentation_models_pytorch", "cv2", "matplotlib", "pycocotools")


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["--version"]])
def test_light_commands_import_no_framework(argv):
    code = (
        "import sys\n"
        "from zoo.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


def test_version():
    out = subprocess.run([sys.executable, "-m", "zoo", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"zoo {__version__}"


def test_list_shows_every_backend_and_install_state():
    out = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True,
                         env={"COLUMNS": "200", **__import__("os").environ})
    assert out.returncode == 0, out.stderr
    assert "yolov8" in out.stdout and "yes" in out.stdout


def test_user_error_is_one_line_exit_2_no_traceback(tmp_path):
    missing = tmp_path / "nowhere"
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "run", "--task", "detect", "--backend", "yolov8", "--data", str(missing)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("zoo: error:") and "nowhere" in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_task_suggests(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "run", "--task", "detection", "--backend", "yolov8"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "unknown task 'detection'" in out.stderr and "Traceback" not in out.stderr


def test_debug_shows_the_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "--debug", "run", "--task", "detect", "--backend", "nope"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0 and "Traceback" in out.stderr


@pytest.mark.parametrize("argv", [["run", "--task", "detect"], ["run", "--task", "detect", "--backend", "x", "--bogus"]])
def test_usage_errors_exit_2_without_traceback(argv):
    out = subprocess.run([sys.executable, "-m", "zoo", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "Usage: zoo run" in out.stderr


def test_ci_runs_the_readme_commands_verbatim_and_in_order():
    """README's "Two commands for a fresh machine" are what .ci/run runs, in that order."""
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands for a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.splitlines() if line.startswith("    ")]
    assert len(commands) == 2 and "zoo run" in commands[0] and "pytest" in commands[1]
    ci = (repo / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    where = [next(i for i, line in enumerate(ci) if not line.startswith("#") and command in line) for command in commands]
    assert where == sorted(where)


def zoo_cli(*argv: str, columns: int = 80, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m zoo ARGV`` as a user's shell runs it, off a terminal (pipes) at ``columns``."""
    import os

    env = {**os.environ, "COLUMNS": str(columns), "PYTHONWARNINGS": ""}
    return subprocess.run([sys.executable, "-m", "zoo", *argv], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def labelme_smear(folder: Path, name: str, point_label: str) -> Path:
    """One labelme file: a rectangle (shape 0) with a point (shape 1) of its group."""
    import json

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48)).save(folder / f"{name}.png")
    shapes = [{"label": "rbc", "points": [[4, 4], [30, 30]], "shape_type": "rectangle", "group_id": 1, "flags": {}},
              {"label": point_label, "points": [[10, 10]], "shape_type": "point", "group_id": 1, "flags": {}}]
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{name}.png", "imageData": None,
           "imageHeight": 48, "imageWidth": 64}
    (folder / f"{name}.json").write_text(json.dumps(doc))
    return folder / f"{name}.json"


def test_check_names_the_json_file_and_shape_of_an_undeclared_keypoint(tmp_path):
    data = tmp_path / "smears"
    labelme_smear(data, "smear_000", "top")
    bad = labelme_smear(data, "smear_001", "rbcc")
    (data / "zoo.yaml").write_text("keypoint_names: [top, right]\n")
    out = zoo_cli("check", str(data))
    lines = [line for line in out.stdout.splitlines() if "rbcc" in line and line.startswith("warning")]
    assert len(lines) == 1, out.stdout
    assert f"{bad} (shape 1)" in lines[0] or f"{bad.name} (shape 1)" in lines[0], lines[0]
    assert "keypoint_names (top, right" in lines[0]


@pytest.fixture
def toy_compare(tmp_path, tiny_demo, monkeypatch):
    """``zoo compare`` of the toy (mean box) and oracle (ground truth) backends plus one that
    fails, run in-process (the toy backends are registered in this process only)."""
    import toy_backend

    import zoo.registry
    from zoo.pipeline.compare import compare

    registry = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: registry)
    return compare(compare_options(task="detect", backends=["toy", "oracle", "broken"], registry=registry,
                                   data=tiny_demo, flags={"device": "cpu"}, out=tmp_path / "runs"))


def printed_leaderboard(result, columns: int, monkeypatch, capsys) -> str:
    """The leaderboard as ``zoo compare`` prints it off a terminal ``columns`` wide."""
    from zoo.cli.views import print_leaderboard

    monkeypatch.setenv("COLUMNS", str(columns))
    print_leaderboard(result)
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [80, 200])
def test_compare_screen_has_a_verdict_column_and_cuts_nothing(toy_compare, columns, monkeypatch, capsys):
    out = printed_leaderboard(toy_compare, columns, monkeypatch, capsys)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in out  # no cell cut
    header = next(line for line in lines if "backend" in line)
    assert "vs #1" in header and ("ms/img" in header) == (columns == 200)
    rows = {line.split()[1]: line for line in lines if line.split()[:1] in (["1"], ["2"])}
    assert "1.000 (1.00–1.00)" in rows["oracle"] and "best" in rows["oracle"]
    assert "worse (P 1.00)" in rows["toy"]
    assert "≈" not in out  # no backend is indistinguishable from the winner: no ≈, not even its legend
    words = " ".join(out.split())
    assert "worse: #1 is better beyond chance" in words and "broken on purpose" in words
    if columns == 80:
        assert "ms/img: in leaderboard.md" in words


def test_compare_screen_marks_and_explains_a_tie(toy_compare, monkeypatch, capsys):
    from zoo.pipeline.verdict import Verdict

    toy_compare.verdicts = {"toy": Verdict("toy", 0.01, [-0.02, 0.04], 0.62)}
    out = printed_leaderboard(toy_compare, 80, monkeypatch, capsys)
    toy = next(line for line in out.splitlines() if " toy " in line)
    assert "≈ (P 0.62)" in toy
    words = " ".join(out.split())
    assert "≈: not distinguishable from #1" in words and "worse:" not in words


@pytest.mark.parametrize("mode", ["oracle", "mean"])
def test_run_points_at_report_html_and_explains_a_missing_samples_png(tmp_path, tiny_demo, mode, monkeypatch,
                                                                      capsys):
    import toy_backend

    import zoo.registry
    from zoo.cli import main

    registry = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: registry)
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "a folder name long enough to be wrapped by an eighty column terminal" / "runs"
    main(["run", "--task", "detect", "--backend", "toy", "--data", str(tiny_demo), "--out", str(out),
          "--device", "cpu", "--set", f"mode={mode}"])
    run = out / "toy-detect"
    err = capsys.readouterr().err.splitlines()
    assert f"report: {run / 'report.html'} (open it in a browser; report.md beside it)" in err  # one line, whole
    samples, note = run / "plots" / "samples.png", run / "plots" / "samples.txt"
    if mode == "oracle":  # every image right: no picture, and the folder says why
        assert not samples.exists()
        text = note.read_text()
        assert "none of the" in text and "is wrong" in text and "Nothing failed" in text
    else:
        assert samples.stat().st_size > 0 and not note.exists()


def test_convert_to_yolo_says_it_writes_pose_labels_and_keeps_keypoint_names(tmp_path, tiny_demo):
    import yaml

    from zoo.data.reading import read_dataset
    from zoo.data.split import make_split
    from zoo.tasks import get_task

    out = tmp_path / "yolo"
    done = zoo_cli("convert", str(tiny_demo), "--to", "yolo", "--out", str(out))
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "wrote keypoint (pose) labels, 4 points per object, named top, right, bottom, left" in said
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["val"] == "images/val" and data["kpt_names"][0] == ["top", "right", "bottom", "left"]
    back = read_dataset(out)
    source = read_dataset(tiny_demo)
    assert back.keypoint_names == source.keypoint_names
    # val is the split zoo run draws by default: held-out images, none of them in train
    expected = make_split(source, get_task("keypoint"), val=0.2, seed=0)
    assert sorted(i.removeprefix("val/") for i in back.splits["val"]) == expected.val
    assert not set(back.splits["val"]) & set(back.splits["train"])


def test_a_unet_run_prints_no_framework_future_warning(tmp_path, tiny_demo):
    pytest.importorskip("segmentation_models_pytorch")
    done = zoo_cli("run", "--task", "semantic-seg", "--backend", "unet", "--data", str(tiny_demo), "--epochs", "1",
                   "--imgsz", "64", "--batch", "4", "--device", "cpu", "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr[-2000:]


def test_list_shows_whole_install_commands_at_80_columns(monkeypatch, capsys):
    import toy_backend

    import zoo.registry
    from zoo.cli import main

    registry = toy_backend.registry()
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: registry)
    monkeypatch.setenv("COLUMNS", "80")
    main(["list"])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    absent = next(line for line in out.splitlines() if "│ absent" in line)
    assert "no" in absent
    assert "pip install 'zoo[absent]'  # absent" in out.splitlines()  # the extra whole, not eaten as markup


def test_zoo_install_detectron2_hides_only_pips_complaint_about_detectron2s_pins():
    from zoo.plugins.detectron2.install import without_detectron2_conflicts

    pip_said = ("ERROR: pip's dependency resolver does not currently take into account all the packages that are "
                "installed. This behaviour is the source of the following dependency conflicts.\n"
                "detectron2 0.6 requires black, which is not installed.\n"
                "detectron2 0.6 requires numpy<2, but you have numpy 2.2.6 which is incompatible.\n"
                "WARNING: something else worth reading\n")
    assert without_detectron2_conflicts(pip_said) == "WARNING: something else worth reading\n"
    other = "ERROR: pip's dependency resolver ...\nfoo 1.0 requires bar<2, but you have bar 3\n"
    assert without_detectron2_conflicts(other + pip_said.splitlines(keepends=True)[1]) == other


def test_help_lists_every_command_on_one_whole_line_at_80_columns():
    out = zoo_cli("--help", columns=80)
    commands = out.stdout.split("Commands:", 1)[1].splitlines()
    assert commands and all(len(line) <= 80 and not line.rstrip().endswith("...") for line in commands), out.stdout


def test_check_of_a_folder_of_plain_images_says_nothing_is_annotated(tmp_path, tiny_demo):
    import shutil

    for image in sorted(tiny_demo.glob("*.jpg"))[:3]:
        shutil.copy2(image, tmp_path / image.name)
    out = zoo_cli("check", str(tmp_path))
    assert out.returncode == 1, out.stdout  # a finding, not "clean"
    assert "clean" not in out.stdout
    assert "none of its 3 image(s) has a label or an object" in " ".join(out.stdout.split())
