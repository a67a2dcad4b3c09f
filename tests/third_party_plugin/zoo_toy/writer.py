"""A third party's output format: the toy reader's ``boxes.csv`` (image,label,x0,y0,x1,y1)
beside copies of the images, so what it writes reads back through ``toy-csv``."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from zoo.errors import ZooError


def write(dataset, out: Path, *, task: str | None = None, copy_images: bool = True) -> Path:
    if task != "detect":
        raise ZooError(f"toy-csv holds boxes (detect), not {task}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "boxes.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        rows = csv.writer(f)
        rows.writerow(["image", "label", "x0", "y0", "x1", "y1"])
        for record in dataset.images:
            name = Path(record.id).name + record.suffix
            if copy_images:
                shutil.copyfile(record.file, out / name)
            for inst in record.instances:
                if inst.category >= 0 and not inst.ignore:
                    rows.writerow([name, dataset.categories[inst.category], *(repr(float(v)) for v in inst.bbox)])
    return table
