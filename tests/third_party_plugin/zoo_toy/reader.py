"""A third party's annotation format: ``boxes.csv`` (image,label,x0,y0,x1,y1) beside the images."""

from __future__ import annotations

import csv
from pathlib import Path

from zoo.data.builder import DatasetBuilder, DraftInstance, DraftRecord
from zoo.dataset import ImageRecord, Source
from zoo.errors import DataError


def sniff(path: Path) -> float:
    return 0.95 if (Path(path) / "boxes.csv").is_file() else 0.0


def read(path, *, labels=None):
    from PIL import Image

    root = Path(path)
    table = root / "boxes.csv"
    if not table.is_file():
        raise DataError(root, "has no boxes.csv")
    rows: dict[str, list] = {}
    with table.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["image"], []).append(row)
    builder = DatasetBuilder(root, "toy-csv", labels=labels)
    for name, boxes in sorted(rows.items()):
        file = root / name
        try:
            with Image.open(file) as img:
                w, h = img.size
        except Exception:  # noqa: BLE001 -- not an image: skipped, as zoo's readers do
            builder.warn(table, f"{name} is not an image; skipped")
            continue
        objects = [DraftInstance(b["label"], tuple(float(b[k]) for k in ("x0", "y0", "x1", "y1")), source=Source(str(table)))
                   for b in boxes]
        builder.add(DraftRecord(ImageRecord(id=Path(name).stem, width=w, height=h, file=file, source=Source(str(table))),
                                objects))
    return builder.build()
