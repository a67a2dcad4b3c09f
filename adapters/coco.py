"""COCO JSON in and out: COCO files read into the canonical dataset (:func:`read`, instances
and person_keypoints), and the dataset written as ``annotations.json`` (:func:`write`, through
:func:`zoo.evaluation.ground_truth.to_coco`, whose conventions are the evaluator's; and
:func:`stream_coco` for labelme folders too large to hold)."""

from __future__ import annotations

import datetime
from pathlib import Path

import orjson

from zoo.adapters.common import ImageIndex, checked_image_size, finite, max_image_pixels, visibility
from zoo.adapters.writing import OutputNames, copy_image
from zoo.atomic import write_bytes, writing
from zoo.data import raster
from zoo.data.builder import DatasetBuilder, DraftInstance, DraftRecord, SPLIT_FOLDERS, warn, writable_names
from zoo.data.dataset_config import load_dataset_config
from zoo.data.keypoints import COCO_KEYPOINTS, COCO_SKELETON, keypoint_vocabulary
from zoo.data.labels import LabelList
from zoo.data.reading import cyclic_gc_paused, declined
from zoo.dataset import Dataset, ImageRecord, Source
from zoo.errors import DataError
from zoo.evaluation.ground_truth import annotation_geometry, box_polygon, to_coco
from zoo.files import is_file, read_head, read_json
from zoo.progress import track


# ---------------------------------------------------------------- reading

#: The annotation fields a COCO reader keeps as given (``Instance.coco``): what pycocotools
#: scores a ground-truth annotation by.
GIVEN_FIELDS = ("bbox", "area", "iscrowd", "segmentation", "keypoints", "num_keypoints")


def _is_coco(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list)


def _is_id(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, str)


def _size_or_none(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def well_formed(data: dict, f: Path, warnings: list) -> tuple[list[dict], list[tuple[int, dict]], list[dict]]:
    """(images, (index, annotation) pairs, categories) of a COCO dict, keeping only entries
    of the right JSON types, each left-out entry a warning naming it: an image needs an id
    and a ``file_name``, an annotation an ``image_id`` found among the images, a category
    an id; a size that is not a positive integer counts as absent (read from the image)."""
    images = _well_formed_images(data["images"], f, warnings)
    ids = {im["id"] for im in images}
    annotations = []
    for k, a in enumerate(data["annotations"]):
        if not isinstance(a, dict):
            warn(warnings, f, f"annotations[{k}] is not an object; skipped", k)
        elif not _is_id(a.get("image_id")) or a["image_id"] not in ids:
            warn(warnings, f, f"annotation {a.get('id')!r} refers to image_id {a.get('image_id')!r}, "
                              "which is not in 'images'; skipped", k)
        else:
            annotations.append((k, a))
    raw_cats = data.get("categories")
    return images, annotations, _well_formed_categories(raw_cats if isinstance(raw_cats, list) else [], f, warnings)


def _well_formed_images(entries: list, f: Path, warnings: list) -> list[dict]:

    images, ids = [], {}
    for k, im in enumerate(entries):
        if not (isinstance(im, dict) and _is_id(im.get("id")) and isinstance(im.get("file_name"), str)
                and im["file_name"].strip()):
            warn(warnings, f, f"images[{k}] is not an object with an id and a file_name; skipped")
            continue
        if im["id"] in ids:
            # pycocotools keeps one image per id (the last entry) with all its annotations:
            # the same when the entries agree, and a different image when they do not
            first = ids[im["id"]]
            if any(first.get(key) != im.get(key) for key in ("file_name", "width", "height")):
                raise DataError(f, f"images[{k}] repeats image id {im['id']!r} with another file_name or size "
                                   "than the first entry; give each image one entry")
            warn(warnings, f, f"images[{k}] repeats image id {im['id']!r}; counted once (as pycocotools does)")
            continue
        ids[im["id"]] = im
        images.append({**im, "width": _size_or_none(im.get("width")), "height": _size_or_none(im.get("height"))})
    return images


def _well_formed_categories(entries: list, f: Path, warnings: list) -> list[dict]:
    """The categories with an integer id (the first of a repeated id), keypoint names and a
    skeleton that are not what COCO says dropped (with a warning)."""
    cats, cat_ids = [], set()
    for k, c in enumerate(entries):
        if not (isinstance(c, dict) and isinstance(c.get("id"), int) and not isinstance(c["id"], bool)):
            warn(warnings, f, f"categories[{k}] is not an object with an integer id; skipped")
            continue
        if c["id"] in cat_ids:
            warn(warnings, f, f"categories[{k}] repeats category id {c['id']}; skipped")
            continue
        cat_ids.add(c["id"])
        c = dict(c)
        kp, sk = c.get("keypoints"), c.get("skeleton")
        if kp is not None and not (isinstance(kp, list) and all(isinstance(n, str) for n in kp)):
            warn(warnings, f, f"categories[{k}] keypoints is not a list of names; ignored")
            c.pop("keypoints")
            kp = None
        if sk is not None and not (isinstance(sk, list) and all(
                isinstance(e, list) and len(e) == 2 and all(isinstance(i, int) and 1 <= i <= len(kp or [])
                                                            for i in e) for e in sk)):
            warn(warnings, f, f"categories[{k}] skeleton is not pairs of 1-based keypoint numbers; ignored")
            c.pop("skeleton")
        cats.append(c)
    return cats


def annotation_problem(a: dict, height: int, width: int) -> str | None:
    """Why a COCO annotation cannot be read on a ``height x width`` image, or None: a bbox
    that is not 4 finite numbers, polygon coordinates that are not finite numbers, an RLE
    that does not fit the image (checked before pycocotools decodes it, see
    :func:`zoo.data.raster.rle_problem`), keypoints that are not numbers in threes."""
    bb = a.get("bbox")
    if bb is not None and not (isinstance(bb, list) and len(bb) == 4 and all(finite(v) for v in bb)):
        return f"bbox {bb!r} is not 4 finite numbers"
    seg = a.get("segmentation")
    if isinstance(seg, list):
        for p in seg:
            if not (isinstance(p, list) and all(finite(v) for v in p)):
                return "a segmentation polygon holds something other than finite numbers"
    elif isinstance(seg, dict):
        problem = raster.rle_problem(seg, height, width)
        if problem is not None:
            return problem
    elif seg is not None:
        return f"segmentation is a {type(seg).__name__}, not polygons or an RLE"
    kp = a.get("keypoints")
    if kp is not None and not (isinstance(kp, list) and len(kp) % 3 == 0 and all(finite(v) for v in kp)):
        return "keypoints is not a list of x, y, v numbers"
    # kept as given (Instance.coco) and scored by pycocotools: they must be what it expects
    area = a.get("area")
    if area is not None and not (finite(area) and area >= 0):
        return f"area {area!r} is not a finite number >= 0"
    if a.get("iscrowd") not in (None, 0, 1):
        return f"iscrowd {a.get('iscrowd')!r} is not 0 or 1"
    nk = a.get("num_keypoints")
    if nk is not None and not (finite(nk) and nk >= 0):
        return f"num_keypoints {nk!r} is not a number >= 0"
    return None


def _coco_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    out = []

    for f in sorted(path.rglob("*.json")):
        head = read_head(f, 65536)
        if b'"images"' in head or b'"annotations"' in head or b'"categories"' in head:
            out.append(f)
    return out


def sniff(path: Path) -> float:
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".json":
            return 0.0
        head = read_head(path, 65536)
        return 0.95 if b'"annotations"' in head or b'"images"' in head else 0.0
    files = _coco_files(path)
    return 0.6 if files else declined("no JSON file with \"images\" and \"annotations\"")


def _split_name(f: Path) -> str | None:
    """instances_train2017.json -> train; else the folder's name (Roboflow:
    train/_annotations.coco.json, valid/..., test/...)."""
    s = f.stem.lower()
    for key, name in (("train", "train"), ("val", "val"), ("test", "test")):
        if key in s:
            return name
    return SPLIT_FOLDERS.get(f.parent.name.lower())


def read(path: str | Path, *, labels=None, images: Path | None = None) -> Dataset:
    """COCO instances / person_keypoints JSON: one file, or every COCO JSON below a folder
    (``instances_train.json`` / ``instances_val.json`` become splits). Images are looked for
    by ``file_name`` relative to ``images`` (``--images DIR``), the JSON's folder, its
    ``images/`` and ``../images/``, the folder read, and by file name alone; else the one file
    of that name (any case) below ``images`` or the folder (CVAT's export names the folder
    inside its zip), with a warning naming the rule."""
    path = Path(path)
    root = path.parent if path.is_file() else path
    index = ImageIndex(root, images)
    files = _coco_files(path)
    builder = DatasetBuilder(root, "coco", labels=labels, categories=[])
    seen: dict[str, tuple[Path, object]] = {}  # record id -> (COCO file, image id), across files
    splits: dict[str, list[str]] = {}
    for f in files:
        data = read_json(f)
        if not _is_coco(data):
            if path.is_file():
                raise DataError(f, "is not a COCO file (needs 'images' and 'annotations' lists)")
            continue
        _read_file(f, data, builder, root=root, several=len(files) > 1, seen=seen, splits=splits, index=index)
    if not builder.records:
        raise DataError(path, "holds no COCO annotations with images zoo could find"
                        + (f" (first problem: {builder.warnings[0]})" if builder.warnings else ""))
    builder.splits = splits if len(splits) > 1 else None
    return builder.build()


def _read_file(f: Path, data: dict, builder, *, root: Path, several: bool, seen: dict, splits: dict, index) -> None:
    """The images of one COCO file into ``builder``; ``several``: one of several files (ids
    then keep the file's split or subfolder), ``seen``: the ids read so far, ``splits``: the
    ids of each file's split (instances_train.json, train/)."""
    images, annotations, cats = well_formed(data, f, builder.warnings)
    cat_by_id = _add_categories(cats, builder)
    split = _split_name(f)
    search = _image_dirs(f, root, split)
    if index.images is not None:
        search[:0] = [index.images] + ([index.images / split] if split else [])
    # several COCO files in subfolders (one per split): ids keep the subfolder, so the
    # same file name in train/ and valid/ stays two images
    rel_dir = f.parent.relative_to(root).as_posix() if f.parent != root else ""
    prefix = (f"{split}/" if split else (f"{rel_dir}/" if rel_dir else "")) if several else ""
    by_image: dict = {}
    for idx, a in annotations:
        by_image.setdefault(a["image_id"], []).append((idx, a))
    no_pixels: list[str] = []
    by_name: list[tuple[str, Path]] = []
    for im in images:
        found = _image(im, f, prefix, search, seen, no_pixels, builder, index, by_name)
        if found is None:
            continue
        rid, file, w, h = found
        instances = [d for idx, a in by_image.get(im["id"], [])
                     if (d := _draft_instance(a, idx, f, cat_by_id, w, h, builder)) is not None]
        builder.add(DraftRecord(ImageRecord(id=rid, width=w, height=h, file=file, source=Source(str(f))), instances))
        if split is not None:
            splits.setdefault(split, []).append(rid)
    if by_name:
        fn, file = by_name[0]
        builder.warn(f, f"{len(by_name)} image(s) found by file name below {index.images or root}, not at the path "
                        f"the file records (e.g. '{fn}' is {file}): used, as each name matched one file")
    if no_pixels:
        builder.warn(f, f"{len(no_pixels)} image(s) not found (looked beside the JSON and in images/), "
                        f"e.g. '{no_pixels[0]}': kept for scoring (sizes from the JSON); training or drawing needs them")


def _add_categories(cats: list[dict], builder) -> dict:
    """The file's categories added to the builder's (order by id, a name first seen in an
    earlier file kept there; the first keypoint names and skeleton; the file's own ids);
    returns category id -> name."""
    cats = sorted(cats, key=lambda c: c["id"])
    cat_by_id = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    builder.categories += [n for n in (cat_by_id[c["id"]] for c in cats) if n not in builder.categories]
    for c in cats:
        if c.get("keypoints") and builder.keypoint_names is None:
            builder.keypoint_names = [str(k) for k in c["keypoints"]]
            builder.skeleton = [(a - 1, b - 1) for a, b in c.get("skeleton") or []]
        # the file's own ids (the first file's, for a name in several)
        builder.category_ids.setdefault(cat_by_id[c["id"]], c["id"])
    return cat_by_id


def _image_dirs(f: Path, root: Path, split: str | None) -> list[Path]:
    """Where the images of COCO file ``f`` may be, in the order looked at."""
    search = [f.parent, f.parent / "images", f.parent.parent / "images", root, root / "images"]
    # COCO 2017: annotations/instances_train2017.json with the images in train2017/
    tag = f.stem.split("_", 1)[-1]
    search += [root / tag, f.parent.parent / tag]
    if split is not None:
        search.insert(1, root / "images" / split)
        search.insert(1, root / split)
    return search


def _image(im: dict, f: Path, prefix: str, search: list[Path], seen: dict, no_pixels: list[str],
           builder, index, by_name: list) -> tuple[str, Path | None, int, int] | None:
    """(record id, image file or None, width, height) of a COCO image entry, or None (with a
    warning) when it cannot be used. An image not found is kept, sized by the JSON, for
    scoring (its name added to ``no_pixels``)."""
    fn = im["file_name"]
    name = Path(fn.replace("\\", "/"))
    if not name.name:
        builder.warn(f, f"image file_name {fn!r} is not a file name; skipped")
        return None
    rid = prefix + name.with_suffix("").as_posix().lstrip("/")
    file = next((c for d in search for c in (d / fn, d / name.name) if is_file(c)), None)
    if file is None:
        file = index.find_one(name.name, f)
        if file is not None:
            by_name.append((fn, file))
    w, h = im["width"] or 0, im["height"] or 0  # positive integers or None (well_formed)
    if file is None and (w <= 0 or h <= 0):
        builder.warn(f, f"image '{fn}' not found (looked beside the JSON and in images/) and "
                        "the JSON gives no width/height; skipped")
        return None
    if rid in seen:
        if seen[rid][0] == f:  # pycocotools would score two images: zoo holds one per file
            raise DataError(f, f"image id {im['id']!r} has the file_name '{fn}' of image id {seen[rid][1]!r} "
                               f"(both read as image '{rid}'); give each image its own file_name")
        builder.warn(f, f"image '{fn}' appears twice (also in {seen[rid][0].name}); the first kept")
        return None
    seen[rid] = (f, im["id"])
    if file is None:
        if w * h > max_image_pixels():
            builder.warn(f, f"image '{fn}' is not found and declares {w}x{h} pixels, more than zoo's "
                            f"limit of {max_image_pixels():,}; skipped")
            return None
        no_pixels.append(fn)  # scored from the JSON's size; pixels are needed only to train or draw
        return rid, None, w, h
    try:
        w, h = checked_image_size(file, (im["width"], im["height"]), f, builder.warnings)
    except DataError as e:  # never used or copied: not an image (or a bomb)
        builder.warn(f, f"image '{fn}': {e.reason}; skipped")
        return None
    return rid, file, w, h


def _draft_instance(a: dict, idx: int, f: Path, cat_by_id: dict, w: int, h: int, builder):
    """The DraftInstance of annotation ``a`` (number ``idx`` in file ``f``) on a ``w x h``
    image, or None (with a warning) when it cannot be read. One pycocotools scores but
    nothing can train on (no geometry, zero area) is kept ``scored_only``."""
    cid = a.get("category_id")
    if not _is_id(cid) or cid not in cat_by_id:
        builder.warn(f, f"annotation {a.get('id')} has unknown category_id {cid}; skipped", idx)
        return None
    problem = annotation_problem(a, h, w)
    if problem is not None:
        builder.warn(f, f"annotation {a.get('id')}: {problem}; skipped", idx)
        return None
    polys, rle = _segmentation(a.get("segmentation"))
    given = {k: a[k] for k in GIVEN_FIELDS if k in a}
    _repair_bbox(given, a.get("id"), lambda why: builder.warn(f, f"annotation {a.get('id')}: {why}", idx))
    box = _annotation_box(given.get("bbox"), polys, rle)
    source = Source(str(f), idx)
    unusable = None  # why pycocotools scores it but nothing can train on it
    clipped = (0.0, 0.0, 0.0, 0.0)
    if box is None:
        unusable = ("has no bbox and no segmentation; not trained on, and scoring it is refused "
                    "(pycocotools cannot score it)")
    else:
        clipped = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
        if clipped != box:
            builder.warn(f, f"annotation {a.get('id')} reaches outside the image; box clipped", idx)
        if (clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0) and not a.get("iscrowd"):
            unusable = "has zero area; not trained on, kept for scoring (pycocotools counts it)"
    label = cat_by_id[cid]
    if unusable is not None:
        builder.warn(f, f"annotation {a.get('id')} {unusable}", idx)
        return DraftInstance(label, clipped, source=source, coco=given, scored_only=True)
    return DraftInstance(label, clipped, polys, rle, _keypoints(a.get("keypoints"), builder.keypoint_names),
                         bool(a.get("iscrowd")), source, given)


def _repair_bbox(given: dict, ann_id, warn) -> None:
    """A COCO ``bbox`` as pycocotools needs it, repaired in ``given`` (what writers copy):
    ``null`` is dropped, so that the box is taken from the segmentation as for any other
    source (an annotation with neither is then written by no writer); a negative width or
    height (a box drawn from its far corner) is turned the right way round."""
    if "bbox" in given and given["bbox"] is None:
        del given["bbox"]
        warn("bbox is null; taken from its segmentation (dropped when it has none)")
        return
    bb = given.get("bbox")
    if isinstance(bb, list) and len(bb) == 4 and (bb[2] < 0 or bb[3] < 0):
        x, y, w, h = bb
        given["bbox"] = [min(x, x + w), min(y, y + h), abs(w), abs(h)]
        warn(f"bbox {bb} has a negative width or height (drawn from its far corner); read as {given['bbox']}")


def _segmentation(seg) -> tuple[list[list[float]], dict | None]:
    """(polygons, compressed RLE) of a COCO ``segmentation`` (checked by annotation_problem)."""
    if isinstance(seg, list):
        return [[float(v) for v in p] for p in seg if isinstance(p, list) and len(p) >= 6], None
    if isinstance(seg, dict) and "counts" in seg:
        return [], raster.mask_to_rle(raster.rle_to_mask(seg)) if isinstance(seg["counts"], list) else dict(seg)
    return [], None


def _annotation_box(bb, polys: list[list[float]], rle: dict | None):
    """``(x0, y0, x1, y1)`` from the bbox, else the polygons' extent, else the mask's; None
    when the annotation has no geometry."""
    if bb and len(bb) == 4 and all(isinstance(v, (int, float)) for v in bb):
        x, y, bw, bh = (float(v) for v in bb)
        return (x, y, x + bw, y + bh)
    if polys:
        xs = [v for p in polys for v in p[0::2]]
        ys = [v for p in polys for v in p[1::2]]
        return (min(xs), min(ys), max(xs), max(ys))
    if rle:
        return raster.rle_bbox(rle)
    return None


def _keypoints(kp, names: list[str] | None) -> dict[str, tuple] | None:
    """A COCO ``keypoints`` list as ``{name: (x, y, v)}`` of its labelled points (v > 0)."""
    if not (kp and names):
        return None
    out = {}
    for k in range(min(len(names), len(kp) // 3)):
        x, y, v = kp[3 * k: 3 * k + 3]
        if v > 0:
            out[names[k]] = (float(x), float(y), visibility(v))
    return out


# ---------------------------------------------------------------- writing


def write(dataset: Dataset, out: Path, *, task: str | None = None, geometry: str = "exact",
          copy_images: bool = True) -> Path:
    """``out/annotations.json`` and the images in ``out/images/`` (COCO ``file_name`` is
    relative to that folder). ``geometry="pixels"`` gives labelme's labelme2coco.py output
    (area and box of the painted pixels; rasterising every polygon costs ~0.3 ms each). ``copy_images=False``
    writes the annotations alone (``file_name`` = record id + suffix)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    coco = to_coco(dataset, geometry=geometry)
    if copy_images:
        images_dir = out / "images"
        names = OutputNames()
        for rec, im in track(zip(dataset.images, coco["images"]), "copying images", total=len(dataset.images)):
            im["file_name"] = copy_image(rec, images_dir, names(rec.id)).relative_to(images_dir).as_posix()
    f = out / "annotations.json"
    write_bytes(f, orjson.dumps(coco, option=orjson.OPT_SERIALIZE_NUMPY))  # atomic: never half a JSON
    return f


# ---------------------------------------------------------------- streaming


def stream_coco(records, out: Path, *, root: Path, warnings: list, labels=None, geometry: str = "exact",
                copy_images: bool = True, fmt: str = "labelme") -> dict:
    """Write ``out/annotations.json`` from a reader's drafts (label *names*: a
    :class:`zoo.data.builder.DraftRecord` each, as :func:`zoo.adapters.labelme.iter_records`
    yields them), one image at a time: each annotation is serialised as soon as it is read and
    spooled to a temporary file, so memory stays flat in the number of files (one small tuple
    per annotation). Category and keypoint order are fixed at the end exactly as
    :class:`zoo.data.builder.DatasetBuilder` fixes them, and the result equals
    ``to_coco(read_dataset(...))``. Returns ``Dataset.summary()``-style counts."""
    config = load_dataset_config(root)
    label_list = labels if isinstance(labels, LabelList) or labels is None else LabelList.read(labels)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # no cycle collection while streaming: it would walk every file's parsed JSON for nothing
    with cyclic_gc_paused(), _Spool(out, geometry=geometry, copy_images=copy_images) as spool:
        for draft in records:
            spool.add(draft)
        given = label_list.names if label_list is not None else config.get("categories")
        cat_names = writable_names(list(given) if given is not None else sorted(spool.found_cats), warnings,
                                   str(label_list.file) if label_list is not None else "the labels")
        kpt_names = keypoint_vocabulary(spool.found_kpts, config)
        with writing(out / "annotations.json") as fh:  # atomic: it appears whole, or not at all
            counts, ignored, dropped = spool.write(fh, fmt, cat_names, kpt_names, config.get("skeleton"))
    where = str(label_list.file) if label_list is not None else str(config.get("_file", "the label list"))
    for name, n in sorted(dropped.items()):
        warn(warnings, where, f"label '{name}' is not in the label list; its {n} shape(s) skipped")
    return {"images": spool.n_images, "instances": counts, "ignored": ignored, "labels": {},
            "warnings": len(warnings), "categories": cat_names}


class _Spool:
    """The images and annotations of :func:`stream_coco`, serialised as they are read and kept
    in temporary files (outside the source and ``--out``) until the category order is known;
    memory keeps one small tuple per annotation."""

    def __init__(self, out: Path, *, geometry: str, copy_images: bool):
        import tempfile

        self.copy_image = copy_image
        self.out, self.geometry, self.copy_images = out, geometry, copy_images
        self.names = OutputNames()
        self.images = tempfile.TemporaryFile()
        self.annotations = tempfile.TemporaryFile()
        self.index: list[tuple] = []  # (category name or None for all, keypoint dict or None, byte length)
        self.found_cats: set[str] = set()
        self.found_kpts: set[str] = set()
        self.n_images = 0

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.images.close()
        self.annotations.close()

    def add(self, draft) -> None:
        """One image: its entry, and each annotation without id, category and keypoints."""


        rec = draft.image
        self.n_images += 1
        image_id = self.n_images
        name = rec.id + rec.suffix
        if self.copy_images:
            images_dir = self.out / "images"
            name = self.copy_image(rec, images_dir, self.names(rec.id)).relative_to(images_dir).as_posix()
        self.images.write((b"," if image_id > 1 else b"") + orjson.dumps(
            {"id": image_id, "file_name": name, "width": rec.width, "height": rec.height}))
        for inst in draft.instances:
            self._add_annotation(inst, rec, image_id)

    def _add_annotation(self, inst, rec, image_id: int) -> None:
        area, bbox = annotation_geometry(inst, rec, self.geometry)
        if inst.ignore:
            seg = inst.mask or raster.mask_to_rle(raster.instance_mask(inst, rec.height, rec.width))
            if self.geometry != "pixels" and inst.mask is None:
                area = raster.rle_area(seg)
        else:
            seg = inst.polygons or inst.mask or [box_polygon(inst.bbox)]
        if inst.label is not None:
            self.found_cats.add(inst.label)
        kp = inst.keypoints if isinstance(inst.keypoints, dict) and not inst.ignore else None
        if kp:
            self.found_kpts.update(kp)
        rest = orjson.dumps({"image_id": image_id, "bbox": bbox, "area": area, "iscrowd": int(inst.ignore),
                             "segmentation": seg}, option=orjson.OPT_SERIALIZE_NUMPY)
        self.annotations.write(rest)
        self.index.append((inst.label, kp, len(rest)))

    def write(self, fh, fmt: str, cat_names: list[str], kpt_names: list[str], skeleton) -> tuple[dict, int, dict]:
        """The whole COCO file into ``fh``, the spooled annotations given ids, category ids and
        keypoints. Returns (instances per category, ignored regions, shapes per dropped label)."""
        import shutil


        info = {"description": f"written by zoo from {fmt}", "date_created": datetime.date.today().isoformat()}
        fh.write(b'{"info":' + orjson.dumps(info) + b',"licenses":[],"images":[')
        self.images.seek(0)
        shutil.copyfileobj(self.images, fh)
        fh.write(b'],"annotations":[')
        counts, ignored, dropped = self._write_annotations(fh, cat_names, kpt_names)
        fh.write(b'],"categories":' + orjson.dumps(_stream_categories(cat_names, kpt_names, skeleton)) + b"}")
        return counts, ignored, dropped

    def _write_annotations(self, fh, cat_names: list[str], kpt_names: list[str]) -> tuple[dict, int, dict]:
        cat_index = {n: i for i, n in enumerate(cat_names)}
        kpt_index = {n: i for i, n in enumerate(kpt_names)}
        counts = dict.fromkeys(cat_names, 0)
        dropped: dict[str, int] = {}
        ignored = 0
        self.annotations.seek(0)
        next_id = 1
        for cat, kp, size in self.index:
            rest = self.annotations.read(size)
            if cat is None:  # ignored for every category
                targets = range(len(cat_names))
                ignored += 1
            elif cat in cat_index:
                targets = [cat_index[cat]]
                if b'"iscrowd":1' in rest:
                    ignored += 1
                else:
                    counts[cat] += 1
            else:
                dropped[cat] = dropped.get(cat, 0) + 1
                continue
            kp_bytes = _keypoint_bytes(kp, kpt_index, len(kpt_names)) if kpt_names else b""
            for c in targets:
                head = b'{"id":%d,"category_id":%d,' % (next_id, c + 1)
                fh.write((b"," if next_id > 1 else b"") + head + kp_bytes + rest[1:])
                next_id += 1
        self.index.clear()
        return counts, ignored, dropped


def _keypoint_bytes(kp: dict | None, kpt_index: dict[str, int], n: int) -> bytes:
    """The ``"keypoints":[...],"num_keypoints":N,`` of an annotation (all zeros without points)."""
    flat = [0] * (3 * n)
    num = 0
    for k, (x, y, v) in (kp or {}).items():
        j = kpt_index.get(k)
        if j is not None and v > 0:
            flat[3 * j: 3 * j + 3] = (x, y, int(v))
            num += 1
    return b'"keypoints":' + orjson.dumps(flat) + b',"num_keypoints":%d,' % num


def _stream_categories(cat_names: list[str], kpt_names: list[str], skeleton) -> list[dict]:
    """The ``categories`` of a streamed file: ids 1..K; keypoints and the skeleton (zoo.yaml's,
    else COCO's for COCO's body points) on each when there are keypoints."""
    skeleton = skeleton or (COCO_SKELETON if kpt_names == COCO_KEYPOINTS else [])
    cats = []
    for k, n in enumerate(cat_names):
        c = {"id": k + 1, "name": n, "supercategory": ""}
        if kpt_names:
            c["keypoints"] = kpt_names
            c["skeleton"] = [[a + 1, b + 1] for a, b in skeleton]
        cats.append(c)
    return cats
