"""NIfTI volumes with label volumes (``--from nifti``, sniffed), read as 2D slices.

Two layouts:

* the nnU-Net / Medical Segmentation Decathlon raw layout: ``dataset.json``, ``imagesTr/``
  and ``labelsTr/``; an image is ``<case>_0000.nii.gz`` (nnU-Net v2: one file per channel,
  the first is read) or ``<case>.nii.gz`` (Decathlon: 4-D, the first channel), its labels
  ``labelsTr/<case>.nii.gz``; classes from ``dataset.json``'s ``labels`` (v2 ``{name: value}``,
  Decathlon ``{"value": name}``; ``ignore`` is ignored);
* ``image.nii.gz`` + ``label.nii.gz`` pairs, one pair per folder (also ``img`` / ``volume`` /
  ``ct`` and ``seg`` / ``mask`` / ``segmentation``); classes from ``--labels``, labels.txt or
  zoo.yaml (as image + mask folders), else named by value.

Every slice along the axis nnU-Net's 2D configuration cuts (:mod:`zoo.nifti`) is one image,
``<case>/slice_012``, grouped by its volume (a volume stays in one split), its pixel size
from the header (HD95 / ASSD in mm). Each class present in a label slice is one object, as
image + mask folders read them. A label volume of another shape than its image, or holding
a value its class table lacks, is an error naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zoo.adapters.mask_classes import MaskClasses, find_classes
from zoo.adapters.mask_pixels import mask_instances, present_values
from zoo.data.builder import DatasetBuilder, DraftRecord
from zoo.data.dataset_config import load_dataset_config
from zoo.data.reading import declined
from zoo.dataset import Dataset, ImageRecord, Source
from zoo.errors import DataError
from zoo.files import read_json
from zoo.nifti import is_nifti, load_header, slice_axis, slice_spacing, take_slice
from zoo.progress import track

IMAGE_NAMES = ("image", "img", "volume", "ct", "mri")
LABEL_NAMES = ("label", "labels", "seg", "segmentation", "mask")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Case:
    id: str
    image: Path
    label: Path


def _stem(p: Path) -> str:
    name = p.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else p.stem


def _volumes(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if is_nifti(p) and p.is_file() and not p.name.startswith("."))
    except OSError:
        return []


def decathlon_cases(root: Path) -> list[Case]:
    """imagesTr/ + labelsTr/ cases; an image without labels is unannotated (not read)."""
    labels = {_stem(p): p for p in _volumes(root / "labelsTr")}
    cases = {}
    for img in _volumes(root / "imagesTr"):
        m = _CHANNEL.match(_stem(img))
        case, channel = (m["case"], int(m["channel"])) if m else (_stem(img), 0)
        if channel == 0 and case in labels:
            cases[case] = Case(case, img, labels[case])
    return [cases[c] for c in sorted(cases)]


def pair_cases(root: Path) -> list[Case]:
    """Folders holding ``image.nii[.gz]`` + ``label.nii[.gz]`` (or their other names)."""
    out = []
    for folder in sorted({root, *(p for p in root.rglob("*") if p.is_dir())}):
        by_stem = {_stem(p).lower(): p for p in _volumes(folder)}
        image = next((by_stem[n] for n in IMAGE_NAMES if n in by_stem), None)
        label = next((by_stem[n] for n in LABEL_NAMES if n in by_stem), None)
        if image is not None and label is not None:
            rel = folder.relative_to(root).as_posix()
            out.append(Case(rel if rel != "." else _stem(image), image, label))
    return out


def sniff(path: Path) -> float:
    path = Path(path)
    if not path.is_dir():
        return declined("NIfTI volumes are a folder")
    if (path / "dataset.json").is_file() and (path / "imagesTr").is_dir() and (path / "labelsTr").is_dir():
        return 0.95
    if pair_cases(path)[:1]:
        return 0.9
    return declined("no dataset.json + imagesTr/ + labelsTr/ and no image.nii.gz + label.nii.gz pairs")


def decathlon_classes(file: Path):
    """dataset.json's ``labels`` as a mask class table (nnU-Net v2 or Decathlon form)."""
    meta = read_json(file)
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise DataError(file, "has no 'labels' mapping (nnU-Net: {\"background\": 0, \"liver\": 1})")
    table = MaskClasses(source=str(file))
    for key, value in labels.items():
        name, v = (value, key) if str(key).isdigit() else (key, value)  # Decathlon: {"1": "liver"}
        if isinstance(v, list):
            raise DataError(file, f"label '{name}' is a region ({v}); zoo reads one value per class")
        try:
            v = int(v)
        except (TypeError, ValueError):
            raise DataError(file, f"label '{name}' has the value {v!r}, not a whole number") from None
        if str(name).lower() == "ignore":
            table.ignore.add(v)
        elif v == 0:
            table.background = {0}
        else:
            table.names[v] = str(name)
    return table


def read(path: str | Path, *, labels=None, **_) -> Dataset:
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "NIfTI volumes are a folder (imagesTr/ + labelsTr/ + dataset.json, or "
                              "image.nii.gz + label.nii.gz pairs)")
    if (root / "dataset.json").is_file() and (root / "imagesTr").is_dir():
        cases, table = decathlon_cases(root), decathlon_classes(root / "dataset.json")
    else:
        cases = pair_cases(root)
        table = find_classes(root, [c.label.parent for c in cases], load_dataset_config(root), labels, False)
    if not cases:
        raise DataError(root, "holds no image volume with a label volume")
    return _Slices(root, table, labels).read(cases)


class _Slices:
    """Every case's slices into one dataset."""

    def __init__(self, root: Path, table, labels):
        self.root, self.table = root, table
        self.builder = DatasetBuilder(root, "nifti", labels=labels, categories=table.categories())
        self.spacing: dict[str, tuple[float, float]] = {}
        self.said: set[str] = set()

    def read(self, cases: list[Case]) -> Dataset:
        for case in track(cases, "reading volumes", total=len(cases)) if len(cases) > 20 else cases:
            self.add(case)
        ds = self.builder.build()
        if ds.pixel_spacing is None:
            ds.image_spacing.update({r.id: self.spacing[r.id] for r in ds.images if r.id in self.spacing})
        return ds

    def check_values(self, file: Path, values) -> None:
        """Every value of a label volume is a class, background or ignored, when the table names classes."""
        import numpy as np

        t = self.table
        if not t.names:
            return
        known = set(t.names) | t.background | t.ignore
        unknown = sorted(set(np.unique(values).tolist()) - known)
        if unknown:
            raise DataError(file, f"holds the label value {unknown[0]}, which {t.source or 'the class list'} does not "
                                  f"name (it names {', '.join(map(str, sorted(known)))})")

    def add(self, case: Case) -> None:
        image, label = load_header(case.image), load_header(case.label)
        if tuple(label.shape[:3]) != tuple(image.shape[:3]):
            raise DataError(case.label, f"is {'x'.join(map(str, label.shape))} voxels but its image "
                                        f"{case.image.name} is {'x'.join(map(str, image.shape))}")
        zooms = image.header.get_zooms()
        axis = slice_axis(zooms)
        values = _label_values(case.label, label)
        self.check_values(case.label, values)
        spacing = slice_spacing(zooms, axis)
        for k in range(image.shape[axis]):
            sl = take_slice(values, axis, k)
            rid = f"{case.id}/slice_{k:03d}"
            rec = ImageRecord(id=rid, width=sl.shape[1], height=sl.shape[0], file=Path(f"{case.image}#{k}"),
                              source=Source(f"{case.label}#{k}"), group=f"volume:{case.id}")
            instances = mask_instances(sl, present_values(sl), self.table, Path(f"{case.label}#{k}"), self.said)
            self.builder.add(DraftRecord(rec, instances))
            if spacing is not None:
                self.spacing[rid] = spacing


def _label_values(file: Path, label):
    """The label volume as whole numbers; a DataError when it holds fractions (a resampled
    label volume: its class at a voxel is no longer known)."""
    import numpy as np

    try:
        data = np.asanyarray(label.dataobj)
    except Exception as e:  # noqa: BLE001 -- a truncated .nii.gz fails only here
        raise DataError(file, f"NIfTI data does not decode ({type(e).__name__}: {e})") from None
    if data.dtype.kind == "f":
        if not np.all(data == np.round(data)):
            raise DataError(file, "holds fractional label values (resampled with interpolation?); "
                                  "labels must be whole class numbers")
        data = data.astype(np.int64)
    if data.ndim == 4:
        data = data[..., 0]
    return data
