"""zoo check as a linter: each kind of annotator mistake gives exactly its findings, a clean
folder none, and --fix writes a copy that re-checks clean without touching the source."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli import main
from zoo.data.lint import lint_folder
from zoo.data.lint_fix import fix_dataset, plan_fixes


def rect(label, x0, y0, x1, y1, gid=None):
    return {"label": label, "points": [[x0, y0], [x1, y1]], "group_id": gid, "shape_type": "rectangle", "flags": {}}


def point(label, x, y, gid):
    return {"label": label, "points": [[x, y]], "group_id": gid, "shape_type": "point", "flags": {}}


def write_image(folder: Path, name: str, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / name)


def write_json(folder: Path, stem: str, shapes: list, image: str | None = None) -> None:
    doc = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image or f"{stem}.png",
           "imageData": None, "imageHeight": 64, "imageWidth": 64}
    (folder / f"{stem}.json").write_text(json.dumps(doc))


def clean_folder(folder: Path, n: int = 10) -> Path:
    """n images, each with two 'cell' boxes and one 'dot' box: nothing to find."""
    folder.mkdir(parents=True)
    for i in range(n):
        write_image(folder, f"img_{i:02d}.png", seed=i)
        write_json(folder, f"img_{i:02d}", [rect("cell", 2, 2, 20, 20), rect("cell", 30, 30, 50, 52),
                                            rect("dot", 40, 5, 50, 15)])
    return folder


def add_shapes(folder: Path, stem: str, *shapes) -> None:
    f = folder / f"{stem}.json"
    doc = json.loads(f.read_text())
    doc["shapes"] += list(shapes)
    f.write_text(json.dumps(doc))


def copy_image_and_json(folder: Path, stem: str, new: str) -> None:
    shutil.copyfile(folder / f"{stem}.png", folder / f"{new}.png")
    doc = json.loads((folder / f"{stem}.json").read_text())
    doc["imagePath"] = f"{new}.png"
    (folder / f"{new}.json").write_text(json.dumps(doc))


def fixable_mistakes(folder: Path) -> Path:
    """Mistakes --fix repairs alone: a look-alike label, a shape drawn twice, an image twice."""
    clean_folder(folder)
    add_shapes(folder, "img_00", rect("Cell ", 5, 40, 20, 60))
    add_shapes(folder, "img_01", rect("cell", 2, 2, 20, 20))
    copy_image_and_json(folder, "img_03", "img_03_copy")
    return folder


def every_mistake(folder: Path) -> Path:
    fixable_mistakes(folder)
    add_shapes(folder, "img_02", rect("cell", 2.1, 2.1, 20.1, 20.1))  # near-identical, not exact
    write_image(folder, "lonely.png", seed=99)  # no annotation file
    write_json(folder, "ghost", [rect("cell", 1, 1, 9, 9)])  # its image is missing
    add_shapes(folder, "img_04", rect("dot", 10, 50, 11, 51))  # 1 x 1 px
    add_shapes(folder, "img_05", rect("nucleus", 20, 40, 30, 50))  # one rare class on one image
    add_shapes(folder, "img_06", rect("cell", 5, 30, 15, 40, gid=7), point("tip", 60, 2, gid=7))
    add_shapes(folder, "img_07", {"label": "cell", "points": [[1, 1], [5, 5]], "shape_type": "polygon"})
    return folder


def exit_status(argv: list[str]) -> int:
    """``zoo ARGV``'s exit status (main returns normally on 0)."""
    try:
        main(argv)
    except SystemExit as e:
        return e.code
    return 0


def found(report) -> set[tuple[str, str, int | None]]:
    return {(f.check, Path(f.file).name, f.shape) for f in report.findings}


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        h.update(f.relative_to(folder).as_posix().encode())
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def test_clean_folder_has_no_findings(tmp_path):
    report = lint_folder(clean_folder(tmp_path / "clean"))
    assert report.findings == []
    assert report.exit_status == 0


def test_each_mistake_gives_exactly_its_finding(tmp_path):
    folder = every_mistake(tmp_path / "bad")
    report = lint_folder(folder)
    root = folder.name
    assert found(report) == {
        ("near-duplicate-label", "img_00.json", 3),
        ("duplicate-shape", "img_01.json", 3),
        ("duplicate-shape", "img_02.json", 3),
        ("duplicate-image", "img_03_copy.png", None),  # the image, not its annotation
        ("unannotated-image", "lonely.png", None),
        ("missing-image", "ghost.json", None),
        ("tiny-instance", "img_04.json", 3),
        ("class-imbalance", root, None),
        ("too-few-to-split", root, None),
        ("keypoint-outside", "img_06.json", 3),
        ("reader", "img_07.json", 3),
    }
    by_check = {f.check: f for f in report.findings}
    assert by_check["near-duplicate-label"].message == "'Cell' (1) looks like 'cell' (25)"
    assert by_check["near-duplicate-label"].level == "error"
    assert "'cell'" in by_check["near-duplicate-label"].fix
    assert "nucleus" in by_check["too-few-to-split"].message and by_check["too-few-to-split"].level == "error"
    assert "exact copy of shape 0" in next(f.message for f in report.findings if f.file.endswith("img_01.json"))
    assert "IoU 0.98" in next(f.message for f in report.findings if f.file.endswith("img_02.json"))
    assert report.exit_status == 1


def test_labels_not_in_the_list_are_findings_with_a_suggestion(tmp_path):
    folder = clean_folder(tmp_path / "data")
    add_shapes(folder, "img_00", rect("Dot", 5, 40, 20, 60), rect("blob", 30, 5, 38, 12))
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\ncell\ndot\n")
    report = lint_folder(folder, labels=labels)
    assert found(report) == {("undeclared-label", "img_00.json", 3), ("undeclared-label", "img_00.json", 4)}
    dot, blob = sorted(report.findings, key=lambda f: f.shape)
    assert "did you mean 'dot'?" in dot.message and dot.rename == ("Dot", "dot")
    assert blob.rename is None and "add 'blob'" in blob.fix


def test_fix_writes_a_copy_that_rechecks_clean_and_leaves_the_source(tmp_path):
    folder = fixable_mistakes(tmp_path / "data")
    before = tree_digest(folder)
    out = tmp_path / "fixed"
    # what remains after the fix decides the status: nothing
    assert exit_status(["check", str(folder), "--fix", "--out", str(out), "--format", "json"]) == 0
    assert tree_digest(folder) == before
    assert lint_folder(out).findings == []
    report = lint_folder(folder)
    _, changes = fix_dataset(report.dataset, plan_fixes(report.findings))
    assert sorted(c.split(": ", 1)[1] for c in changes) == [
        "dropped (exact copy of another shape)",
        "dropped (same pixels and annotation as another image)",
        "label 'Cell' -> 'cell'",
    ]
    assert not (out / "img_03_copy.json").exists() and not (out / "img_03_copy.png").exists()
    # labelme is copied file for file: what no fix touched is byte for byte the source
    assert (out / "img_05.json").read_bytes() == (folder / "img_05.json").read_bytes()
    fixed = json.loads((out / "img_00.json").read_text())
    assert [s["label"] for s in fixed["shapes"]] == ["cell", "cell", "dot", "cell"]
    assert len(json.loads((out / "img_01.json").read_text())["shapes"]) == 3


def test_fix_map_renames_as_told(tmp_path):
    folder = clean_folder(tmp_path / "data")
    out = tmp_path / "fixed"
    assert exit_status(["check", str(folder), "--fix", "--out", str(out), "--map", "dot =spot"]) == 0
    fixed = lint_folder(out).dataset
    assert fixed.categories == ["cell", "spot"]


def test_cli_exit_status_and_json(tmp_path, capsys):
    folder = every_mistake(tmp_path / "bad")
    assert exit_status(["check", str(folder), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"error": 2, "warning": 9}
    assert {f["check"] for f in doc["findings"]} >= {"near-duplicate-label", "duplicate-image"}
    (folder / "img_09.json").write_text("{ not json")
    assert exit_status(["check", str(folder)]) == 2  # unreadable input


def test_run_strict_refuses_errors(tmp_path):
    from zoo.errors import ZooError
    from zoo.data.lint import refuse_errors

    refuse_errors(clean_folder(tmp_path / "clean"))
    with pytest.raises(ZooError, match="--strict: 2 error"):
        refuse_errors(every_mistake(tmp_path / "bad"))


def test_zoo_run_strict_refuses_before_training(tmp_path, capsys):
    bad = every_mistake(tmp_path / "bad")
    runs = tmp_path / "runs"
    argv = ["run", "--task", "detect", "--backend", "yolov8", "--data", str(bad), "--out", str(runs), "--strict"]
    assert exit_status(argv) == 2
    assert "--strict: 2 error(s)" in capsys.readouterr().err
    assert not runs.exists()


def test_fix_other_formats_through_their_writer(tmp_path):
    from zoo.pipeline.convert import convert_folder

    voc = tmp_path / "voc"
    convert_folder(fixable_mistakes(tmp_path / "data"), to="voc", out=voc)
    before = tree_digest(voc)
    report = lint_folder(voc)
    assert {f.check for f in report.findings} == {"near-duplicate-label", "duplicate-shape", "duplicate-image"}
    assert exit_status(["check", str(voc), "--fix", "--out", str(tmp_path / "fixed")]) == 0
    assert tree_digest(voc) == before
    fixed = lint_folder(tmp_path / "fixed")
    assert fixed.dataset.format == "voc" and fixed.dataset.categories == ["cell", "dot"]
    assert len(fixed.dataset) == 10


def test_the_split_asked_for_sets_how_rare_is_too_rare(tmp_path):
    folder = clean_folder(tmp_path / "data", n=6)
    assert lint_folder(folder, val=0.2).findings == []
    (f,) = [f for f in lint_folder(folder, val=0.2, test=0.1).findings if f.check == "too-few-to-split"][:1]
    assert f.level == "warning" and "at least 10 images" in f.fix
