"""Which mask belongs to which image, in an image + mask folder.

Three layouts, first found wins:

* zoo.yaml ``masks: {images: DIR, masks: DIR, pair: REGEX}``: the two folders named, and
  (optionally) a regular expression searched in each file's stem whose first group is the
  key an image and its mask share (``pair: '(?:image_|gt_)(\\d+)'``);
* sibling folders below one parent: ``image(s)``/``img(s)``/``JPEGImages``/``data`` beside
  ``label(s)``/``mask(s)``/``gt``/``annotation(s)``/``ground_truth``/``SegmentationClass``
  (at the top or below split folders: ``train/images`` + ``train/masks``);
* two folders of any names at the top, the masks named as the images + a mask suffix (ISIC:
  ``..._Input/ISIC_1.jpg`` + ``..._GroundTruth/ISIC_1_segmentation.png``);
* one folder with suffixed stems: ``x.png`` + ``x_mask.png`` (also ``_segmentation``,
  ``_seg``, ``_gt``, ``_label``, ``_annotation``).

Keys are compared case-insensitively (annotations made on Windows); a mask stem may carry one
of the suffixes above in sibling folders too (ISIC's ``_segmentation``). Two images with one
key are an error naming both. An image without a mask is unannotated (not read); a mask
without an image is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from zoo.errors import DataError
from zoo.files import IMAGE_SUFFIXES

IMAGE_DIRS = ("images", "image", "imgs", "img", "jpegimages", "data")
MASK_DIRS = ("segmentationclass", "masks", "mask", "labels", "label", "gt", "ground_truth", "groundtruth",
             "annotations", "annotation")
MASK_SUFFIXES = ("_segmentation", "_annotation", "_labels", "_label", "_masks", "_mask", "_seg", "_gt")
#: Folders no walk enters (hidden ones too): where nothing of the user's data is.
_SKIP = {"__pycache__", "node_modules"}


@dataclass(frozen=True)
class Pair:
    """One image and its mask; ``id`` is the image's path below its folder (split folders
    kept), without extension, as every reader's ids."""

    id: str
    image: Path
    mask: Path
    #: more masks of the same image, numbered (BUSI's ``x_mask.png`` + ``x_mask_1.png``): painted over ``mask``
    more: tuple[Path, ...] = ()


@dataclass
class Pairing:
    pairs: list[Pair] = field(default_factory=list)
    mask_dirs: list[Path] = field(default_factory=list)
    unpaired_images: list[Path] = field(default_factory=list)
    layout: str = ""  # how the pairs were found, named in `zoo check`
    voc: bool = False  # a Pascal VOC SegmentationClass folder (its class table applies)


def _files(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP)
        out += [Path(dirpath, f) for f in sorted(files) if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
    return out


def _lower_children(folder: Path) -> dict[str, Path]:
    try:
        return {d.name.lower(): d for d in sorted(folder.iterdir()) if d.is_dir()}
    except OSError:
        return {}


def _holds_images(folder: Path) -> bool:
    """An image file in ``folder`` or below (VOC's Annotations/ of XML beside SegmentationClass/ is no mask folder)."""
    for _dirpath, _dirs, files in os.walk(folder):
        if any(os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES for f in files):
            return True
    return False


def sibling_folders(root: Path, max_depth: int = 3) -> list[tuple[Path, Path]]:
    """(images folder, masks folder) pairs at the top of ``root`` or below it."""
    out = []
    for dirpath, dirs, _files_ in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        children = {d.lower(): here / d for d in dirs}
        img = next((children[n] for n in IMAGE_DIRS if n in children and _holds_images(children[n])), None)
        msk = next((children[n] for n in MASK_DIRS if n in children and _holds_images(children[n])), None)
        if img is not None and msk is not None:
            out.append((img, msk))
            dirs[:] = [d for d in dirs if here / d not in (img, msk)]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP) if depth < max_depth else []
    return out


def suffixed_sibling_folders(root: Path, sample: int = 20) -> list[tuple[Path, Path]]:
    """(images folder, masks folder) pairs among the folders at the top of ``root``, whatever
    their names, when most masks are an image's stem + a mask suffix (ISIC's
    ``..._Training_Input/ISIC_0000000.jpg`` + ``..._GroundTruth/ISIC_0000000_segmentation.png``).
    Same names in two folders are never taken for pairs (``train/`` and ``val/`` share them)."""
    try:
        dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in _SKIP)
    except OSError:
        return []
    stems = {}
    for d in dirs:
        with os.scandir(d) as entries:
            stems[d] = {os.path.splitext(e.name)[0].lower() for e in entries
                        if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES}
    out = []
    for masks in dirs:
        first = sorted(stems[masks])[:sample]
        for images in dirs:
            hits = sum(suffixed_base(s, stems[images]) is not None for s in first) if images != masks else 0
            if first and hits * 2 > len(first):
                out.append((images, masks))
                break
    return out


def strip_suffix(key: str, known) -> str:
    """``key`` when it names an image, else without one mask suffix when that names one
    (``isic_1_segmentation`` -> ``isic_1``); else ``key`` itself."""
    return key if key in known else (suffixed_base(key, known) or key)


_NUMBERED = re.compile(r"^(.*)_\d+$")


def suffixed_base(key: str, known) -> str | None:
    """The image key a suffixed mask stem names (``x_mask`` -> ``x`` when ``x`` is known;
    also a numbered one, ``x_mask_1``)."""
    for k in (key, *(m.group(1) for m in [_NUMBERED.match(key)] if m)):
        for s in MASK_SUFFIXES:
            if k.endswith(s) and k[: -len(s)] in known:
                return k[: -len(s)]
    return None


def _grouped(pairs: list[Pair]) -> list[Pair]:
    """Pairs of one image made one: the first mask in name order (``x_mask`` before
    ``x_mask_1``) and the others as ``more``."""
    by_id: dict[str, list[Pair]] = {}
    for p in pairs:
        by_id.setdefault(p.id, []).append(p)
    out = []
    for same in by_id.values():
        same.sort(key=lambda p: (len(p.mask.stem), p.mask.name))
        out.append(Pair(same[0].id, same[0].image, same[0].mask, tuple(p.mask for p in same[1:])))
    return out


def _image_keys(images: list[Path], key_of) -> dict[str, Path]:
    by_key: dict[str, Path] = {}
    for p in images:
        k = key_of(p)
        if k is None:
            continue
        if k in by_key:
            raise DataError(p, f"and {by_key[k]} are one image name up to case or extension; rename one "
                               "(zoo would not know which one its mask belongs to)")
        by_key[k] = p
    return by_key


def pair_folders(img_dir: Path, mask_dir: Path, root: Path, regex: re.Pattern | None = None) -> tuple[list[Pair], list[Path]]:
    """The pairs of an images folder and a masks folder, and the images without a mask."""
    base = mask_dir.parent.relative_to(root).as_posix() if mask_dir.parent != root else ""

    def key_of(p: Path, folder: Path) -> str | None:
        rel = p.relative_to(folder).with_suffix("").as_posix()
        if regex is None:
            return rel.lower()
        m = regex.search(p.stem)
        return None if m is None else (Path(rel).parent / m.group(1)).as_posix().lower()

    images = _image_keys(_files(img_dir), lambda p: key_of(p, img_dir))
    pairs, used = [], set()
    for mask in _files(mask_dir):
        k = key_of(mask, mask_dir)
        if k is None:
            continue
        k = strip_suffix(k, images)
        image = images.get(k)
        if image is None:
            raise DataError(mask, f"is a mask without an image (no file named like it in {img_dir}); "
                                  "move it out, or name the pairing in zoo.yaml masks: {pair: REGEX}")
        if k in used and suffixed_base(_key_of_mask(mask, mask_dir), images) is None:
            raise DataError(mask, f"is a second mask of {image}; keep one (or number them: x_mask_1, x_mask_2)")
        used.add(k)
        rid = image.relative_to(img_dir).with_suffix("").as_posix()
        pairs.append(Pair(f"{base}/{rid}" if base else rid, image, mask))
    return _grouped(pairs), [p for k, p in images.items() if k not in used]


def _key_of_mask(mask: Path, mask_dir: Path) -> str:
    return mask.relative_to(mask_dir).with_suffix("").as_posix().lower()


def suffixed_pairs(root: Path) -> tuple[list[Pair], list[Path]]:
    """``x.png`` + ``x_mask.png`` (any suffix of :data:`MASK_SUFFIXES`) in one folder."""
    pairs, unpaired = [], []
    by_dir: dict[Path, list[Path]] = {}
    for p in _files(root):
        by_dir.setdefault(p.parent, []).append(p)
    for folder, files in by_dir.items():
        stems = {p.stem.lower() for p in files}
        masks = [p for p in files if suffixed_base(p.stem.lower(), stems) is not None]
        mask_set = set(masks)
        images = _image_keys([p for p in files if p not in mask_set], lambda p: p.stem.lower())
        used = set()
        for mask in masks:
            k = suffixed_base(mask.stem.lower(), images)
            if k is None:
                continue
            used.add(k)
            image = images[k]
            pairs.append(Pair(image.relative_to(root).with_suffix("").as_posix(), image, mask))
        if masks:
            unpaired += [p for k, p in images.items() if k not in used]
    return _grouped(pairs), unpaired


def lone_mask_folders(root: Path) -> list[Path]:
    """Mask folders with no images folder beside them (CVAT's Segmentation mask export
    without its images): SegmentationClass/, masks/, ... at the top of ``root``."""
    children = _lower_children(root)
    return [children[n] for n in MASK_DIRS if n in children and _holds_images(children[n])][:1]


def find_pairs(root: Path, config: dict, images: Path | None = None) -> Pairing:
    """Every (image, mask) pair below ``root``, by the first layout that finds any; with
    ``images`` (``--images DIR``) the masks' images are looked for there."""
    spec = config.get("masks")
    if spec is not None:
        return _configured(root, spec, config["_file"])
    if images is not None:
        mask_dirs = [m for _i, m in sibling_folders(root)] or lone_mask_folders(root)
        return _paired_folders(root, [(images, m) for m in mask_dirs],
                               f"masks in {', '.join(str(m.relative_to(root)) for m in mask_dirs)}/ + --images {images}")
    folders = sibling_folders(root)
    if folders:
        return _paired_folders(root, folders, "sibling folders " + ", ".join(
            f"{i.relative_to(root)}/ + {m.relative_to(root)}/" for i, m in folders[:3]))
    folders = suffixed_sibling_folders(root)
    if folders:
        return _paired_folders(root, folders, "folders of suffixed masks " + ", ".join(
            f"{i.relative_to(root)}/ + {m.relative_to(root)}/" for i, m in folders[:3]))
    pairs, unpaired = suffixed_pairs(root)
    return Pairing(pairs, sorted({p.mask.parent for p in pairs}), unpaired, "suffixed file names (x + x_mask)")


def _paired_folders(root: Path, folders: list[tuple[Path, Path]], layout: str) -> Pairing:
    """The pairs of each (images folder, masks folder)."""
    out = Pairing(layout=layout)
    for img_dir, mask_dir in folders:
        pairs, unpaired = pair_folders(img_dir, mask_dir, root)
        out.pairs += pairs
        out.unpaired_images += unpaired
        out.mask_dirs.append(mask_dir)
        out.voc = out.voc or mask_dir.name.lower() == "segmentationclass"
    return out


def _configured(root: Path, spec, file: Path) -> Pairing:
    if not isinstance(spec, dict) or not {"images", "masks"} <= set(spec) or set(spec) - {"images", "masks", "pair"}:
        raise DataError(file, "'masks' must be {images: DIR, masks: DIR, pair: REGEX (optional)}")
    folders = []
    for k in ("images", "masks"):
        d = (root / str(spec[k])).resolve()
        if not d.is_dir() or not d.is_relative_to(root.resolve()):
            raise DataError(file, f"masks.{k} '{spec[k]}' is not a folder inside {root}")
        folders.append(root / str(spec[k]))
    regex = None
    if spec.get("pair") is not None:
        try:
            regex = re.compile(str(spec["pair"]))
        except re.error as e:
            raise DataError(file, f"masks.pair {spec['pair']!r} is not a regular expression ({e})") from None
        if regex.groups < 1:
            raise DataError(file, f"masks.pair {spec['pair']!r} needs a group: (...) is the key image and mask share")
    pairs, unpaired = pair_folders(folders[0], folders[1], root, regex)
    return Pairing(pairs, [folders[1]], unpaired, f"zoo.yaml masks: {spec['images']}/ + {spec['masks']}/")
