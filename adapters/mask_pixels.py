"""A mask file's pixels as class values, and those values as objects (one RLE per class).

Index masks (``1``, ``L``, ``P``, 16-bit ``I;16`` / ``I``) keep their values: a 16-bit mask is
never squeezed to 8 bits. A colour mask (RGB, or a palette image when the class table gives
colours) becomes values through the table's colour map; an RGB mask whose three channels are
equal everywhere is a grey index mask saved as RGB. With one foreground class (binary
masks), a mask holding more than two values is a mask with soft (anti-aliased) edges when its
largest value reaches half its range, and is then thresholded there (value >= 128 for 8 bits,
>= 32768 for 16 bits); a JPEG mask (lossy) is always thresholded so, with a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.adapters.mask_classes import MaskClasses
from zoo.data.builder import DraftInstance
from zoo.data.raster import mask_to_rle
from zoo.dataset import Source
from zoo.errors import DataError

LOSSY_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")


def is_lossy(file: Path) -> bool:
    return file.suffix.lower() in LOSSY_SUFFIXES


def mask_values(file: Path, table: MaskClasses, image: Path, size: tuple[int, int], *,
                colour_ids: bool = False) -> tuple[np.ndarray, list[int]]:
    """The ``(H, W)`` class values of a mask file (colours mapped through ``table``; with
    ``colour_ids`` each colour an object number instead, for SegmentationObject masks) and the
    values present; a mask of another size than its ``image`` (``size``: width, height) is an
    error naming both, found from the header before anything is decoded."""
    import warnings as pywarnings

    from PIL import Image

    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                if img.size != tuple(size):
                    raise DataError(file, f"is {img.width}x{img.height} but its image {image.name} is "
                                          f"{size[0]}x{size[1]}; zoo never resizes a mask (it would move the outlines)")
                if img.mode == "P" and (table.colors or colour_ids):
                    img = img.convert("RGB")
                elif img.mode in ("LA", "PA"):
                    img = img.getchannel(0)
                elif img.mode == "1":
                    img = img.convert("L")
                elif img.mode not in ("L", "P", "I;16", "I;16B", "I;16L", "I", "RGB"):
                    img = img.convert("RGB")
                arr = np.asarray(img)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 -- PIL raises many types on damaged files; all mean "unreadable"
        raise DataError(file, f"is not a mask PIL can read ({type(e).__name__}: {e})") from None
    if arr.ndim == 3:
        arr = _colour_ids(arr[..., :3]) if colour_ids else _colour_values(arr[..., :3], file, table)
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise DataError(file, "holds negative values; a mask holds class indices 0, 1, 2, ...")
    return arr, present_values(arr)


def _colour_values(rgb: np.ndarray, file: Path, table: MaskClasses) -> np.ndarray:
    if not table.colors:
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0])  # a grey mask saved as RGB
        raise DataError(file, "is a colour mask, and no colour map says which colour is which class: add "
                              "labelmap.txt (name:r,g,b:: per line, as CVAT writes it) or zoo.yaml colors: {name: [r, g, b]}")
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    lut = np.empty(len(colours), dtype=np.uint16)
    for i, c in enumerate(colours.tolist()):
        rgb_c = (c >> 16, (c >> 8) & 255, c & 255)
        if rgb_c not in table.colors:
            raise DataError(file, f"holds the colour {rgb_c}, which is no class of {table.source}; add it there")
        lut[i] = table.colors[rgb_c]
    return lut[inverse].reshape(packed.shape)


#: Colours that are no object in a SegmentationObject mask: black (background) and VOC's
#: cream border (255 in its palette), which VOC leaves unlabelled round every object.
NO_OBJECT = ((0, 0, 0), (224, 224, 192))


def _colour_ids(rgb: np.ndarray) -> np.ndarray:
    """Each colour of an object mask numbered 1, 2, ... (in colour order); no object: 0."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    none = {(r << 16) | (g << 8) | b for r, g, b in NO_OBJECT}
    ids = np.cumsum([c not in none for c in colours.tolist()]) * [c not in none for c in colours.tolist()]
    return ids.astype(np.uint16)[inverse].reshape(packed.shape)


def object_instances(values: np.ndarray, ids: np.ndarray, table: MaskClasses, file: Path,
                     warnings_said: set[str]) -> list[DraftInstance]:
    """A class mask split into objects by an object mask (VOC's and CVAT's
    SegmentationObject): each object number one object, of the class most of its pixels
    hold; class pixels no object covers stay one object per class."""
    values_t, ids_t = column_major(values), column_major(ids)
    source = Source(str(file))
    out, covered = [], np.zeros(values_t.shape, dtype=bool)
    fg_values = [v for v in present_values(values) if v not in table.background and v not in table.ignore]
    for k in present_values(ids):
        if k == 0 or (k == 255 and ids.dtype == np.uint8):  # none, VOC's border
            continue
        m = ids_t == k
        held = [(int(np.count_nonzero(m & (values_t == v))), v) for v in fg_values]
        count, v = max(held, default=(0, None))
        if not count:
            continue
        label = table.foreground if table.binary else table.names.get(v)
        if label is None:
            raise DataError(file, f"holds the value {v}, which is no class of {table.source}")
        out.append(mask_instance(label, m.T, source))
        covered |= m
    rest = np.where(covered.T, 0, values)
    out += [i for i in mask_instances(rest, present_values(rest), table, file, warnings_said) if not i.ignore]
    return out + [i for i in mask_instances(values, present_values(values), table, file, warnings_said) if i.ignore]


def half_range(values: np.ndarray) -> int:
    """Half of the value range of the mask's type: 128 for 8 bits, 32768 for 16."""
    return 128 if values.dtype == np.uint8 else 32768


def present_values(values: np.ndarray) -> list[int]:
    """The values in a mask, sorted. Most masks hold two (binary) or one: found from the
    extremes in three quick passes; a histogram only for more."""
    if not values.size:
        return []
    lo, hi = int(values.min()), int(values.max())
    if lo == hi or not np.count_nonzero((values != lo) & (values != hi)):
        return sorted({lo, hi})
    if values.dtype in (np.uint8, np.uint16):
        return np.flatnonzero(np.bincount(values.ravel())).tolist()
    return np.unique(values).tolist()


def column_major(values: np.ndarray) -> np.ndarray:
    """``values`` transposed into its own memory: a comparison on it, transposed back, is a
    column-major (H, W) array, the order COCO RLE is encoded in (no copy per class)."""
    return np.ascontiguousarray(values.T)


def binary_foreground(values_t: np.ndarray, present: list[int], table: MaskClasses, file: Path,
                      warnings_said: set[str]) -> np.ndarray | None:
    """The foreground pixels of a binary mask (None: none), thresholded when soft or lossy;
    ``values_t`` and the result are column-major (:func:`column_major`)."""
    fg = [v for v in present if v not in table.background and v not in table.ignore]
    if not fg:
        return None
    if len(fg) == 1 and not is_lossy(file):
        return (values_t == fg[0]).T
    half = half_range(values_t)
    if is_lossy(file) or max(fg) >= half:
        warnings_said.add("lossy" if is_lossy(file) else "soft")
        m = values_t >= half
        if table.ignore:
            m &= ~np.isin(values_t, list(table.ignore))
        return m.T if m.any() else None
    named = f"{table.source} names one class" if table.source else "no class list names its classes"
    raise DataError(file, f"holds the values {_listed(present)}: more than one class, but {named}; list them, "
                          "one per value, in class_names.txt (_background_ first) or zoo.yaml categories")


def mask_instances(values: np.ndarray, present: list[int], table: MaskClasses, file: Path,
                   warnings_said: set[str]) -> list[DraftInstance]:
    """One object per class present (its pixels as an RLE) and one ignored region per
    ignored value; background gives none."""
    values_t = column_major(values)
    source = Source(str(file))
    out = []
    if table.binary:
        fg = binary_foreground(values_t, present, table, file, warnings_said)
        if fg is not None:
            out.append(mask_instance(table.foreground, fg, source))
    else:
        if is_lossy(file):
            raise DataError(file, "is a JPEG mask of several classes: JPEG changes pixel values, so class "
                                  "indices cannot be trusted; save the masks as PNG")
        for v in present:
            if v in table.background or v in table.ignore:
                continue
            if v not in table.names:
                raise DataError(file, f"holds the value {v}, which is no class of {table.source} "
                                      f"(values {_listed(sorted(table.names))})")
            out.append(mask_instance(table.names[v], (values_t == v).T, source))
    for v in sorted(set(present) & table.ignore):
        out.append(mask_instance(None, (values_t == v).T, source))
    return out


def mask_instance(label: str | None, mask: np.ndarray, source: Source) -> DraftInstance:
    """One object: the pixels of ``mask`` (best column-major: encoded without a copy) as an
    RLE and its box; ``label`` None: an ignored region."""
    from pycocotools import mask as mask_utils

    rle = mask_to_rle(mask)
    x, y, w, h = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).tolist()
    return DraftInstance(label, (x, y, x + w, y + h), mask=rle, ignore=label is None, source=source)


def _listed(values: list[int], n: int = 8) -> str:
    return ", ".join(map(str, values[:n])) + (", ..." if len(values) > n else "")
