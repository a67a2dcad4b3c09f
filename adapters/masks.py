"""Image + mask folders in (``--from masks``), and semantic mask PNGs out (labelme2voc's convention).

Reading: which mask is whose image is :mod:`zoo.adapters.mask_pairs`; what a mask value
means, :mod:`zoo.adapters.mask_classes`; pixels to objects, :mod:`zoo.adapters.mask_pixels`.
Each class present in a mask becomes one object (its pixels as an RLE), so the folder reads
as semantic-seg (and as instance-seg / detect with one object per class and image). A mask
of another size than its image is an error naming both sizes: masks are never resized.

Writing:

``SegmentationClass/<id>.png``: a palette (mode ``P``) PNG whose pixel value is the class
index: 0 background, category ``i`` at ``i + 1``, 255 ignored (labelme ``__ignore__``,
COCO crowd, VOC difficult); the palette is the Pascal VOC colour map (255 = cream, as in
VOC). ``JPEGImages/<id><suffix>`` holds the images, ``class_names.txt`` the names by index
(``_background_`` first). Pixels come from :func:`zoo.data.raster.semantic_label_map`.
"""

from __future__ import annotations

from pathlib import Path

from zoo.adapters.common import image_size
from zoo.adapters.mask_classes import find_classes, voc_palette
from zoo.adapters.mask_pairs import (
    find_pairs,
    lone_mask_folders,
    sibling_folders,
    strip_suffix,
    suffixed_pairs,
    suffixed_sibling_folders,
)
from zoo.adapters.mask_pixels import mask_instances, mask_values, object_instances, present_values
from zoo.adapters.writing import OutputNames, copy_image
from zoo.data.builder import DatasetBuilder, DraftRecord
from zoo.data.dataset_config import load_dataset_config
from zoo.data.raster import semantic_label_map
from zoo.data.reading import declined
from zoo.data.safe_paths import safe_relpath
from zoo.dataset import Dataset, ImageRecord, Source
from zoo.errors import DataError
from zoo.files import IMAGE_SUFFIXES, read_yaml_mapping
from zoo.progress import track


def save_label_png(label_map, target: Path) -> None:
    from PIL import Image

    import numpy as np

    label_map = np.ascontiguousarray(label_map, dtype=np.uint8)
    img = Image.frombytes("P", (label_map.shape[1], label_map.shape[0]), label_map.tobytes())
    img.putpalette(voc_palette())
    target.parent.mkdir(parents=True, exist_ok=True)
    img.save(target)


def write(dataset: Dataset, out: Path, *, task: str | None = None, copy_images: bool = True) -> Path:
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


# -- reading ----------------------------------------------------------------------------------


def sniff(path: Path) -> float:
    """0.9 for image + mask folders at the top (0.85 below split folders), 0.8 for suffixed
    stems, 0.99 when zoo.yaml names them; 0 when most masks name no image (per-object masks)."""
    path = Path(path)
    if not path.is_dir():
        return declined("a mask folder is a folder")
    if _config_names_masks(path):
        return 0.99
    folders = sibling_folders(path)
    if folders:
        img_dir, mask_dir = folders[0]
        share = _paired_share(img_dir, mask_dir)
        if share < 0.5:
            return declined(f"most files in {mask_dir.relative_to(path)}/ name no image in "
                            f"{img_dir.relative_to(path)}/")
        return 0.9 if img_dir.parent == path else 0.85
    if suffixed_sibling_folders(path):
        return 0.85
    pairs, _ = suffixed_pairs(path) if _few_files(path) else ([], [])
    if pairs:
        return 0.8
    if lone_mask_folders(path) and any((path / n).is_file() for n in ("labelmap.txt", "class_names.txt")):
        return 0.7  # CVAT's Segmentation mask export without its images: they come with --images
    return declined("no images/ + masks/ folders (masks, labels, gt, SegmentationClass, ...) and no x + x_mask files")


def _config_names_masks(path: Path) -> bool:
    f = path / "zoo.yaml"
    if not f.is_file():
        return False
    try:
        return "masks" in read_yaml_mapping(f, "keys")
    except Exception:  # noqa: BLE001 -- a broken zoo.yaml is the reader's error to report
        return False


def _few_files(path: Path, limit: int = 20000) -> bool:
    """Small enough to list in a sniff (suffix pairing needs every name of a folder)."""
    import os

    n = 0
    for _d, _dirs, files in os.walk(path):
        n += len(files)
        if n > limit:
            return False
    return True


def _paired_share(img_dir: Path, mask_dir: Path, sample: int = 50) -> float:
    """The share of the first masks whose stem (less a mask suffix) names an image."""
    import os

    def stems(d: Path) -> set[str]:
        out = set()
        for dirpath, _dirs, files in os.walk(d):
            out |= {os.path.join(os.path.relpath(dirpath, d), os.path.splitext(f)[0]).lower().removeprefix("./")
                    for f in files if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES}
        return out

    images = stems(img_dir)
    masks = sorted(stems(mask_dir))[:sample]
    if not masks:
        return 0.0
    return sum(strip_suffix(m, dict.fromkeys(images)) in images for m in masks) / len(masks)


def _painted_over(values, more: list) -> tuple:
    """A mask with more masks of its image painted over it (their non-zero pixels win)."""
    import numpy as np

    for m in more:
        values = np.where(m != 0, m, values)
    return values, present_values(values)


def read(path: str | Path, *, labels=None, images: Path | None = None) -> Dataset:
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "an image + mask folder is a folder (images/ beside masks/)")
    config = load_dataset_config(root)
    pairing = find_pairs(root, config, images)
    if not pairing.pairs:
        raise DataError(root, "holds no image with a mask (images/ + masks/ folders of the same file names, "
                              "or x.png + x_mask.png); name other layouts in zoo.yaml masks: {images, masks, pair}, "
                              "or pass --images DIR when the images are elsewhere")
    table = find_classes(root, pairing.mask_dirs, config, labels, pairing.voc)
    builder = DatasetBuilder(root, "masks", labels=labels, categories=table.categories())
    said: set[str] = set()
    pairs = pairing.pairs
    for pair in track(pairs, "reading masks", total=len(pairs)) if len(pairs) > 200 else pairs:
        w, h = image_size(pair.image)
        values, present = mask_values(pair.mask, table, pair.image, (w, h))
        if pair.more:
            values, present = _painted_over(values, [mask_values(m, table, pair.image, (w, h))[0] for m in pair.more])
        rec = ImageRecord(id=pair.id, width=w, height=h, file=pair.image, source=Source(str(pair.mask)))
        objects = pair.mask.parent.parent / "SegmentationObject" / pair.mask.relative_to(pair.mask.parent)
        if pair.mask.parent.name.lower() == "segmentationclass" and objects.is_file():
            ids, _ = mask_values(objects, table, pair.image, (w, h), colour_ids=True)
            instances = object_instances(values, ids, table, pair.mask, said)
        else:
            instances = mask_instances(values, present, table, pair.mask, said)
        builder.add(DraftRecord(rec, instances))
    if "lossy" in said:
        builder.warn(root, "masks are JPEG (lossy): values >= half their range read as foreground")
    if "soft" in said:
        builder.warn(root, "masks have soft (anti-aliased) edges: values >= half their range read as foreground")
    return builder.build()
