"""Pascal VOC XML (LabelImg's default format) in and out.

Layouts read:

* flat: each ``.xml`` beside (or near) its image, anywhere below the folder; the image id is
  the XML's path relative to the folder, without extension;
* devkit: ``Annotations/`` + ``JPEGImages/`` (also below ``VOCdevkit/VOC20xx/``), the id is
  the file stem (prefixed by the devkit folder when several are present);
  ``ImageSets/Main/{train,val,trainval,test}.txt`` become ``Dataset.splits``.

The image is found from ``<path>`` (absolute or Windows paths resolved by their file name),
``<filename>`` beside the XML or in ``JPEGImages/``, else a file with the XML's stem.
Coordinates are taken as written, floats or ints, with no 1-based shift (LabelImg and
labelme2voc write them so). ``<difficult>1</difficult>`` -> an ignored instance of its
category. The writer writes the same conventions back (floats as written; ``difficult`` for
ignored instances).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from zoo.adapters.common import ImageIndex, checked_image_size, find_image
from zoo.adapters.writing import OutputNames, copy_image, write_text
from zoo.data.builder import DatasetBuilder, DraftInstance, DraftRecord, warn
from zoo.data.labels import IGNORE_LABEL
from zoo.data.reading import declined
from zoo.dataset import Dataset, ImageRecord, Problem, Source
from zoo.errors import DataError
from zoo.files import is_file, read_bytes, read_head
from zoo.progress import track


#: VOC's root element; CVAT's ``<annotations>`` is another format
_VOC_ROOT = re.compile(rb"<annotation[\s>]")


def _annotation_dirs(root: Path) -> list[Path]:
    if root.name == "Annotations" and root.is_dir():
        return [root]
    out = [d for d in (root / "Annotations",) if d.is_dir()]
    if out:
        return out
    for pattern in ("*/Annotations", "*/*/Annotations"):
        out = sorted(d for d in root.glob(pattern) if d.is_dir())
        if out:
            return out
    return []


def sniff(path: Path) -> float:
    path = Path(path)
    if path.is_file():
        return 1.0 if path.suffix.lower() == ".xml" and _VOC_ROOT.search(read_head(path, 2048)) is not None else 0.0
    dirs = _annotation_dirs(path)
    if dirs:
        return 0.95 if dirs[0].parent == path else 0.85
    n = 0
    for f in sorted(path.glob("*.xml"))[:5] + list(path.rglob("*.xml")):
        if _VOC_ROOT.search(read_head(f, 2048)) is not None:
            # XML at the top beats YOLO txt beside it (LabelImg users save both)
            return 0.92 if f.parent == path else 0.85
        n += 1
        if n > 20:
            break
    return declined("no Annotations/ folder and no XML file with an <annotation> root")


def read(path: str | Path, *, labels=None, images: Path | None = None) -> Dataset:
    path = Path(path)
    root = path.parent if path.is_file() else path
    builder = DatasetBuilder(root, "voc", labels=labels)
    splits: dict[str, list[str]] | None = None
    if path.is_file():
        jobs = [(path, path.stem, ())]
    elif ann_dirs := _annotation_dirs(path):
        jobs, splits = _devkit_jobs(root, ann_dirs)
    else:
        jobs = [(f, f.relative_to(path).with_suffix("").as_posix(), ()) for f in
                sorted((p for p in path.rglob("*.xml") if is_file(p)), key=lambda p: p.relative_to(path).as_posix())]
    index = ImageIndex(root, images)
    for f, rid, img_dirs in track(jobs, "reading VOC XML", total=len(jobs)) if len(jobs) > 200 else jobs:
        rec = read_xml(f, rid, img_dirs, builder.warnings, index)
        if rec is not None:
            builder.add(rec)
    if not builder.records:
        raise DataError(path, "holds no Pascal VOC XML annotation zoo could read"
                        + (f" (first problem: {builder.warnings[0]})" if builder.warnings else ""))
    if splits is not None:
        known = {r.image.id for r in builder.records}
        for name, ids in list(splits.items()):
            missing = [i for i in ids if i not in known]
            if missing:
                builder.warn(path, f"ImageSets/Main/{name}.txt lists {len(missing)} image(s) without "
                                   f"annotation (e.g. {missing[0]}); left out of the split")
            splits[name] = [i for i in ids if i in known]
    builder.splits = splits or None
    return builder.build()


def _devkit_jobs(root: Path, ann_dirs: list[Path]) -> tuple[list[tuple], dict[str, list[str]]]:
    """(XML file, record id, image folders) of every annotation of the devkit folders, and
    the splits their ImageSets/Main lists name (trainval left out beside train or val)."""
    jobs = []
    splits: dict[str, list[str]] = {}
    for ad in ann_dirs:
        base = ad.parent
        prefix = "" if len(ann_dirs) == 1 else base.relative_to(root).as_posix() + "/"
        img_dirs = tuple(d for d in (base / "JPEGImages", base / "images", base / "Images") if d.is_dir())
        for f in sorted(p for p in ad.rglob("*.xml") if is_file(p)):
            sub = f.parent.relative_to(ad)
            # JPEGImages/ mirrors Annotations/ (zoo's own VOC output of ids in subfolders)
            dirs = tuple(d / sub for d in img_dirs) + img_dirs if sub.parts else img_dirs
            jobs.append((f, prefix + f.relative_to(ad).with_suffix("").as_posix(), dirs))
        main = base / "ImageSets" / "Main"
        for name in ("train", "val", "trainval", "test"):
            sf = main / f"{name}.txt"
            if sf.is_file():
                ids = [prefix + ln.split()[0] for ln in sf.read_text(errors="replace").splitlines() if ln.strip()]
                splits.setdefault(name, []).extend(ids)
    if "trainval" in splits and ("train" in splits or "val" in splits):
        splits.pop("trainval")
    return jobs, splits


def _text(el, tag, default=None):
    x = el.find(tag)
    return x.text.strip() if x is not None and x.text is not None else default


def _num(el, tag):
    t = _text(el, tag)
    if t is None:
        return None
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def read_xml(f: Path, rid: str, img_dirs: tuple[Path, ...], warnings: list[Problem], index=None) -> DraftRecord | None:
    try:
        ann = ET.fromstring(read_bytes(f))
    except ET.ParseError as e:
        raise DataError(f, f"is not valid XML ({e})") from None
    if ann.tag != "annotation":
        warn(warnings, f, f"not a VOC annotation (root element <{ann.tag}>); skipped")
        return None
    named = _text(ann, "path") or None
    filename = _text(ann, "filename")
    file = None
    for cand in (named, filename):
        if cand:
            file = find_image(f, cand, img_dirs)
            if file is not None:
                break
    if file is None:
        file = find_image(f, None, img_dirs)
    if file is None and index is not None:
        file = index.find_one(filename, f) or index.find_one(named, f) or index.find_stem(f.stem)
    if file is None:
        warn(warnings, f, f"image not found (filename {filename!r}, path {named!r}); skipped")
        return None
    size = ann.find("size")
    dw = _num(size, "width") if size is not None else None
    dh = _num(size, "height") if size is not None else None
    declared = (int(dw), int(dh)) if dw and dh and dw >= 1 and dh >= 1 else (None, None)
    try:
        w, h = checked_image_size(file, declared, f, warnings)
    except DataError as e:  # never used or copied: not an image (or a bomb)
        warn(warnings, f, f"image {file}: {e.reason}; skipped")
        return None
    fstr = str(f)
    instances = []
    for idx, obj in enumerate(ann.iter("object")):
        name = _text(obj, "name")
        if not name:
            warn(warnings, f, "object without a <name>; skipped", idx)
            continue
        bb = obj.find("bndbox")
        if bb is None:
            warn(warnings, f, f"object '{name}' has no <bndbox>; skipped", idx)
            continue
        vals = [_num(bb, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in vals):
            warn(warnings, f, f"object '{name}' has a missing or non-numeric coordinate; skipped", idx)
            continue
        x0, y0, x1, y1 = vals
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
        c = (max(0.0, min(x0, w)), max(0.0, min(y0, h)), max(0.0, min(x1, w)), max(0.0, min(y1, h)))
        if c != (x0, y0, x1, y1):
            warn(warnings, f, f"box of '{name}' reaches outside the {w}x{h} image; clipped", idx)
        if c[2] - c[0] <= 0 or c[3] - c[1] <= 0:
            warn(warnings, f, f"box of '{name}' has zero area; skipped", idx)
            continue
        difficult = _text(obj, "difficult", "0") in ("1", "true", "True")
        ignore = name == IGNORE_LABEL
        instances.append(DraftInstance(None if ignore else name, c, ignore=difficult or ignore, source=Source(fstr, idx)))
    return DraftRecord(ImageRecord(id=rid, width=w, height=h, file=file, source=Source(fstr)), instances)


def _fmt(v: float) -> str:
    return repr(float(v))


def voc_xml(rec: ImageRecord, dataset: Dataset, filename: str) -> str:
    """The VOC XML text of one record (boxes only; ignored instances as ``difficult``)."""
    from xml.sax.saxutils import escape

    lines = [
        "<annotation>",
        "  <folder>JPEGImages</folder>",
        f"  <filename>{escape(filename)}</filename>",
        "  <size>",
        f"    <width>{rec.width}</width>",
        f"    <height>{rec.height}</height>",
        "    <depth>3</depth>",
        "  </size>",
        "  <segmented>0</segmented>",
    ]
    for inst in rec.instances:
        if inst.category < 0:
            continue  # "ignored for every category" has no VOC form
        x0, y0, x1, y1 = inst.bbox
        lines += [
            "  <object>",
            f"    <name>{escape(dataset.categories[inst.category])}</name>",
            "    <pose>Unspecified</pose>",
            "    <truncated>0</truncated>",
            f"    <difficult>{1 if inst.ignore else 0}</difficult>",
            "    <bndbox>",
            f"      <xmin>{_fmt(x0)}</xmin>",
            f"      <ymin>{_fmt(y0)}</ymin>",
            f"      <xmax>{_fmt(x1)}</xmax>",
            f"      <ymax>{_fmt(y1)}</ymax>",
            "    </bndbox>",
            "  </object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write(dataset: Dataset, out: Path, *, task: str | None = None) -> Path:
    """VOC devkit layout: ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/*.txt``,
    ``class_names.txt``."""
    out = Path(out)
    names = OutputNames()
    for rec in track(dataset.images, "writing VOC", total=len(dataset.images)):
        img = copy_image(rec, out / "JPEGImages", names(rec.id))
        write_text(out / "Annotations", names(rec.id), ".xml", voc_xml(rec, dataset, img.name))
    main = out / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    splits = dataset.splits or {"trainval": [r.id for r in dataset.images]}
    for name, ids in splits.items():
        (main / f"{name}.txt").write_text("".join(names(i) + "\n" for i in ids), encoding="utf-8")
    (out / "class_names.txt").write_text("".join(n + "\n" for n in dataset.categories), encoding="utf-8")
    return out
