"""What the values of a mask PNG mean: the class table of an image + mask folder.

A mask pixel is a class index (an index mask: mode ``L``, ``P`` or 16-bit) or a colour (an
RGB mask). Which class each value or colour is comes from, first found:

1. ``--labels FILE`` or ``labels.txt`` / ``class_names.txt`` (labelme's labels.txt rule:
   ``__ignore__`` declares 255 ignored, ``_background_`` is value 0, then one name per
   value; without ``_background_`` the first name is value 1). A ``class_names.txt`` that
   starts with ``_background_`` is labelme2voc's (and ``zoo convert --to masks``'s): 255 is
   ignored there;
2. zoo.yaml ``colors: {name: [r, g, b]}`` (colour masks, in that order) or ``categories``
   (value ``i + 1`` is ``categories[i]``);
3. ``labelmap.txt`` as CVAT and Datumaro write it (``name:r,g,b:parts:actions``, one line
   per class index, ``background`` first);
4. Datumaro's ``dataset_meta.json`` (``label_map``, ``segmentation_colors``,
   ``background_label``);
5. a Pascal VOC layout (``SegmentationClass/``) with none of these: VOC's 20 classes and
   colour map, 255 ignored;
6. nothing: the masks must be binary (any two values, one foreground class named
   ``foreground``).

A table of one class reads every mask as binary. Value 0 (colour black) is background
unless the table says otherwise; 255 is ignored only when a source above declares it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zoo.data.labels import BACKGROUND_LABEL, IGNORE_LABEL, LabelList
from zoo.errors import DataError
from zoo.files import read_json, read_lines

#: Names a class table may give the background and the ignored value.
BACKGROUND_NAMES = {"background", BACKGROUND_LABEL, "_background", "void"}
IGNORE_NAMES = {IGNORE_LABEL, "ignored", "ignore"}
#: What a binary mask's foreground is called when no file names it.
FOREGROUND = "foreground"

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


@dataclass
class MaskClasses:
    """Mask value -> class name, and colour -> value for colour masks.

    ``names``: foreground values and their class; ``background`` / ``ignore``: values that are
    no object / ignored in training and scoring; ``colors``: ``(r, g, b)`` -> value, empty for
    index masks; ``source``: the file that declared the table (named in errors), "" when no
    file did (binary masks)."""

    names: dict[int, str] = field(default_factory=dict)
    background: set[int] = field(default_factory=lambda: {0})
    ignore: set[int] = field(default_factory=set)
    colors: dict[tuple[int, int, int], int] = field(default_factory=dict)
    source: str = ""

    @property
    def binary(self) -> bool:
        """One foreground class (or none named): every non-background value is it."""
        return len(set(self.names.values())) <= 1

    @property
    def foreground(self) -> str:
        return next(iter(self.names.values()), FOREGROUND)

    def categories(self) -> list[str]:
        """The class names in value order (the order the masks fix)."""
        out: list[str] = []
        for v in sorted(self.names):
            if self.names[v] not in out:
                out.append(self.names[v])
        return out or [FOREGROUND]


def from_names(names: list[str], source: Path | str, *, ignore_255: bool = False) -> MaskClasses:
    """A labels.txt-style list: ``__ignore__`` (255 ignored), ``_background_`` (value 0), then
    one name per value."""
    table = MaskClasses(source=str(source))
    if ignore_255:
        table.ignore.add(255)
    value = 1
    for name in names:
        if name == IGNORE_LABEL:
            table.ignore.add(255)
        elif name != BACKGROUND_LABEL:  # value 0 whether listed or not
            table.names[value] = name
            value += 1
    return table


def from_labelmap(file: Path) -> MaskClasses:
    """CVAT / Datumaro ``labelmap.txt``: ``name:r,g,b:parts:actions`` per line, the line's
    position its class index (comments start with ``#``)."""
    table = MaskClasses(background=set(), source=str(file))
    index = 0
    for line in read_lines(file):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        color = _rgb(rest.split(":", 1)[0], file) if rest.split(":", 1)[0].strip() else None
        value = 255 if name.lower() in IGNORE_NAMES else index
        _declare(table, value, name, color)
        index += 1
    if not table.background and 0 not in table.names:
        table.background.add(0)
    return table


def from_dataset_meta(file: Path) -> MaskClasses:
    """Datumaro's ``dataset_meta.json``: ``label_map`` {index: name}, optional
    ``segmentation_colors`` (a colour per index) and ``background_label``."""
    meta = read_json(file)
    label_map = meta.get("label_map") if isinstance(meta, dict) else None
    if not isinstance(label_map, dict) or not label_map:
        raise DataError(file, "has no 'label_map' {index: name}")
    colors = meta.get("segmentation_colors") or []
    background = str(meta.get("background_label", "0"))
    table = MaskClasses(background=set(), source=str(file))
    for key, name in label_map.items():
        try:
            value = int(key)
        except ValueError:
            raise DataError(file, f"label_map key {key!r} is not a class index") from None
        color = colors[value] if value < len(colors) else None
        if color is not None and not (isinstance(color, list) and len(color) == 3):
            raise DataError(file, f"segmentation_colors[{value}] {color!r} is not [r, g, b]")
        if str(key) == background:
            table.background.add(value)
            if color is not None:
                table.colors[tuple(int(c) for c in color)] = value
        else:
            _declare(table, value, str(name), tuple(int(c) for c in color) if color is not None else None)
    return table


def from_colors(colors: dict, file: Path) -> MaskClasses:
    """zoo.yaml ``colors: {name: [r, g, b]}``; a name ``background`` is value 0."""
    if not isinstance(colors, dict) or not colors:
        raise DataError(file, "'colors' must map class names to [r, g, b]")
    table = MaskClasses(background=set(), source=str(file))
    value = 1
    for name, color in colors.items():
        if not (isinstance(color, list) and len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
            raise DataError(file, f"colour of '{name}' must be [r, g, b] with values 0..255, got {color!r}")
        is_bg = str(name).lower() in BACKGROUND_NAMES
        _declare(table, 0 if is_bg else value, str(name), tuple(color))
        value += 0 if is_bg else 1
    if (0, 0, 0) not in table.colors and 0 not in table.background:
        table.background.add(0)
        table.colors[(0, 0, 0)] = 0
    return table


def voc_classes() -> MaskClasses:
    """Pascal VOC's 20 classes with its colour map; 255 (cream) ignored."""
    pal = voc_palette()
    table = MaskClasses(source="the Pascal VOC class table (no labelmap.txt)", ignore={255})
    for value in (0, *range(1, len(VOC_CLASSES) + 1), 255):
        table.colors[tuple(pal[3 * value:3 * value + 3])] = value
    for i, name in enumerate(VOC_CLASSES, start=1):
        table.names[i] = name
    return table


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


def _declare(table: MaskClasses, value: int, name: str, color) -> None:
    if name.lower() in BACKGROUND_NAMES:
        table.background.add(value)
    elif name.lower() in IGNORE_NAMES:
        table.ignore.add(value)
    else:
        table.names[value] = name
    if color is not None:
        table.colors[color] = value


def _rgb(text: str, file: Path) -> tuple[int, int, int]:
    try:
        rgb = tuple(int(c) for c in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise DataError(file, f"colour {text!r} is not r,g,b with values 0..255")
    return rgb  # type: ignore[return-value]


def find_classes(root: Path, mask_dirs: list[Path], config: dict, labels, voc_layout: bool) -> MaskClasses:
    """The class table of a mask folder, from the first source the module docstring lists."""
    if isinstance(labels, LabelList) and labels.names:
        return from_names(([IGNORE_LABEL] if labels.has_ignore else []) + labels.names, labels.file or "--labels")
    if labels is not None and not isinstance(labels, LabelList):
        ll = LabelList.read(labels)
        return from_names(([IGNORE_LABEL] if ll.has_ignore else []) + ll.names, labels)
    places = [root, *dict.fromkeys(d.parent for d in mask_dirs)]
    for place in places:
        for name in ("labels.txt", "class_names.txt"):
            f = place / name
            if f.is_file():
                names = [n for n in read_lines(f) if n.strip()]
                return from_names(names, f, ignore_255=name == "class_names.txt" and names[:1] == [BACKGROUND_LABEL])
    if config.get("colors") is not None:
        return from_colors(config["colors"], config["_file"])
    if config.get("categories") is not None:
        return from_names(config["categories"], config["_file"])
    for place in places:
        if (place / "labelmap.txt").is_file():
            return from_labelmap(place / "labelmap.txt")
        if (place / "dataset_meta.json").is_file():
            return from_dataset_meta(place / "dataset_meta.json")
    if voc_layout:
        return voc_classes()
    return MaskClasses()
