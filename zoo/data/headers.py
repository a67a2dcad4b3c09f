"""What image headers state about the images, adopted once a reader has built the dataset:
a DICOM's PatientID (else StudyInstanceUID) as the image's group, so one patient's images
stay in one split, and its PixelSpacing as the image's pixel size in mm (HD95 / ASSD in mm
with no zoo.yaml). A group the reader set and zoo.yaml's ``pixel_spacing`` win."""

from __future__ import annotations

from zoo.data.builder import warn
from zoo.dataset import Dataset, ImageRecord
from zoo.dicom import group_of, pixel_spacing, read_header
from zoo.files import COMMON_IMAGE_SUFFIXES, is_dicom_head, read_head
from zoo.pixels import split_frame


def dicom_records(dataset: Dataset) -> list[tuple[ImageRecord, object]]:
    """The records whose file is DICOM (common image formats are not opened to check), with the file."""
    out = []
    for r in dataset.images:
        if r.file is None:
            continue
        path, _ = split_frame(r.file)
        if path.suffix.lower() not in COMMON_IMAGE_SUFFIXES and is_dicom_head(read_head(path, 132)):
            out.append((r, path))
    return out


def adopt_header_facts(dataset: Dataset) -> Dataset:
    """``dataset`` (its records updated in place, as the reader just built them) with the
    groups and pixel spacings its DICOM headers state."""
    found = dicom_records(dataset)
    if not found:
        return dataset
    spacing: dict[str, tuple[float, float]] = {}
    for rec, path in found:
        header = read_header(path)
        if rec.group is None:
            rec.group = group_of(header)
        s = pixel_spacing(header)
        if s is not None:
            spacing[rec.id] = s
    if dataset.pixel_spacing is not None or not spacing:
        return dataset
    if len(spacing) == len(dataset.images):
        dataset.image_spacing.update(spacing)
    else:
        missing = next(r for r in dataset.images if r.id not in spacing)
        warn(dataset.warnings, missing.file or missing.id,
             f"states no pixel spacing while {len(spacing)} other image(s) do: HD95 and ASSD stay in pixels "
             "(give pixel_spacing in zoo.yaml to have them in mm)")
    return dataset
