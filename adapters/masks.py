"""Semantic mask PNGs, labelme2voc's convention.

``SegmentationClass/<id>.png``: a palette (mode ``P``) PNG whose pixel value is the class
index: 0 background, category ``i`` at ``i + 1``, 255 ignored (labelme ``__ignore__``,
COCO crowd, VOC difficult); the palette is the Pascal VOC colour map (255 = cream, as in
VOC). ``JPEGImages/<id><suffix>`` holds the images, ``class_names.txt`` the names by index
(``_background_`` first). Pixels come from :func:`zoo.data.raster.semantic_label_map`.
"""

from __future__ import annotations

from pathlib import Path

from zoo.dataset import Dataset


def voc_palette() -> list[int]:
    """The Pascal VOC colour map, 256 RGB triples flattened (imgviz.label_colormap's)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += (r, g, b)
    return pal


def save_label_png(label_map, target: Path) -> None:
    from PIL import Image

    import numpy as np

    label_map = np.ascontiguousarray(label_map, dtype=np.uint8)
    img = Image.frombytes("P", (label_map.shape[1], label_map.shape[0]), label_map.tobytes())
    img.putpalette(voc_palette())
    target.parent.mkdir(parents=True, exist_ok=True)
    img.save(target)


def write(dataset: Dataset, out: Path, *, task: str | None = None, copy_images: bool = True) -> Path:
    from zoo.adapters.writing import OutputNames, copy_image
    from zoo.data.raster import semantic_label_map
    from zoo.data.safe_paths import safe_relpath
    from zoo.progress import track

    from zoo.errors import DataError

    if len(dataset.categories) > 254:
        raise DataError(dataset.root or out, f"has {len(dataset.categories)} categories; a mask PNG holds at most "
                                             "254 (0 is background, 255 ignored)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = OutputNames()
    for rec in track(dataset.images, "writing masks", total=len(dataset.images)):
        lm = semantic_label_map(rec, dataset)
        save_label_png(lm, safe_relpath(names(rec.id) + ".png", out / "SegmentationClass"))
        if copy_images:
            copy_image(rec, out / "JPEGImages", names(rec.id))
    (out / "class_names.txt").write_text("".join(n + "\n" for n in dataset.semantic_classes()), encoding="utf-8")
    return out
