"""An interrupted `zoo convert`: its output is marked unfinished until the writer is done,
and nothing reads an unfinished output; annotations.json appears whole or not at all."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from zoo.errors import DataError


def _labelme_folder(root, points: int):
    from PIL import Image

    root.mkdir()
    Image.new("RGB", (64, 64), (200, 180, 190)).save(root / "a.png")
    ring = [[32 + 30 * math.cos(2 * math.pi * k / points), 32 + 30 * math.sin(2 * math.pi * k / points)]
            for k in range(points)]
    shape = {"label": "cell", "points": ring, "shape_type": "polygon", "group_id": None, "flags": {}}
    (root / "a.json").write_text(json.dumps({"version": "5.4.1", "shapes": [shape], "imagePath": "a.png",
                                             "imageHeight": 64, "imageWidth": 64, "imageData": None, "flags": {}}))
    return root


def _convert_with_file_limit(src, out, to: str, limit: int, cwd):
    import resource
    import signal

    def small_files_only():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "zoo", "convert", str(src), "--to", to, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, preexec_fn=small_files_only, cwd=cwd)


@pytest.mark.parametrize("to", ["coco", "yolo"])
def test_a_failed_convert_leaves_an_output_nothing_reads(to, tmp_path):
    """The disk refuses the big annotation file (a real file-size limit, as a full disk would)."""
    from zoo.pipeline.convert import check_folder, convert_folder
    from zoo.data.reading import read_dataset

    src = _labelme_folder(tmp_path / "src", points=20000)  # a polygon of ~700 KB as text
    out = tmp_path / "out"
    r = _convert_with_file_limit(src, out, to, 200_000, tmp_path)
    errors = [line for line in r.stderr.splitlines() if line.startswith("zoo: error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "File too large" in errors[0] or "too large" in errors[0]
    # no half-written annotation file and no temporary one; the marker says "unfinished"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert ".zoo-unfinished" in written and not [w for w in written if w.endswith((".tmp", ".json", ".txt"))], written

    for read in (read_dataset, check_folder):
        with pytest.raises(DataError, match=r"unfinished `zoo convert` output"):
            read(out)
    r = subprocess.run([sys.executable, "-m", "zoo", "check", str(out)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "unfinished" in r.stderr and "Traceback" not in r.stderr
    # the same command again, into the same --out: the interrupted output is written anew
    convert_folder(src, to=to, out=out)
    assert not (out / ".zoo-unfinished").exists() and not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert len(read_dataset(out).images) == 1


def test_kill_9_during_convert_then_the_same_command_again(tmp_path):
    """A real SIGKILL while the writer works; the rerun into the same --out finishes, with no
    temporary file or marker left; a folder that is not zoo's unfinished output is still refused."""
    import signal
    import time

    src = tmp_path / "src"
    src.mkdir()
    for k in range(40):  # enough work for the kill to land while the writer runs
        _labelme_folder(tmp_path / f"one{k}", points=20000)
        for f in (tmp_path / f"one{k}").iterdir():
            f.rename(src / f"{k}{f.suffix}" if f.suffix == ".png" else src / f"{k}.json")
    for f in src.glob("*.json"):
        f.write_text(f.read_text().replace('"imagePath": "a.png"', f'"imagePath": "{f.stem}.png"'))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "zoo", "convert", str(src), "--to", "coco", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / ".zoo-unfinished").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode != -signal.SIGKILL or not (out / ".zoo-unfinished").exists():
        pytest.skip("the conversion finished before the kill landed")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    left = [p.name for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == ".zoo-unfinished"]
    assert left == []
    from zoo.data.reading import read_dataset

    assert len(read_dataset(out).images) == 40

    (out / ".zoo-unfinished").write_text("not zoo's marker\n")  # someone else's folder: never emptied
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2 and "already exists and is not empty" in r.stderr
    assert (out / "annotations.json").is_file() or any(out.rglob("*.json"))
