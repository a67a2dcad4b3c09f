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
    with pytest.raises(Exception, match="holds an unfinished conversion"):
        convert_folder(src, to=to, out=out)

    # finished: no marker, and the output reads back
    done = tmp_path / "done"
    convert_folder(src, to=to, out=done)
    assert not (done / ".zoo-unfinished").exists()
    assert len(read_dataset(done).images) == 1
