"""DICOM images (pydicom, with pylibjpeg's decoders for compressed pixel data): the
pixels in their modality's units, and the facts the header states.

* RescaleSlope / RescaleIntercept applied (pydicom's modality LUT): CT in Hounsfield units;
* MONOCHROME1 (0 is white) inverted into MONOCHROME2's sense, its window with it;
* a multi-frame file is one image per frame, ``scan.dcm#3`` (0-based), decoding that frame only;
* PixelSpacing (else ImagerPixelSpacing) as the pixel size in mm, PatientID (else
  StudyInstanceUID) as the group the image belongs to, Modality, WindowCenter/Width.

In the contract beside :mod:`zoo.pixels` (which it does not import), which hands it DICOM files (sniffed by the
``DICM`` preamble, whatever their name). pydicom is imported here only: ``zoo[medical]``.
"""

from __future__ import annotations

from pathlib import Path
from zoo.errors import DataError

EXTRA = "pip install 'zoo[medical]'"


def _pydicom(where: object):
    try:
        import pydicom
    except ImportError:
        raise DataError(where, f"is a DICOM file: reading it needs pydicom ({EXTRA})") from None
    return pydicom


def read_header(path: Path, where: object = None):
    """The dataset without its pixel data; a DataError naming the file when it does not parse."""
    pydicom = _pydicom(where or path)
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # noqa: BLE001 -- pydicom raises many types on damaged files
        raise DataError(where or path, f"is not a readable DICOM file ({type(e).__name__}: {e})") from None


def frames(ds) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def dicom_size(path: Path, where: object = None, frame: int | None = None) -> tuple[int, int]:
    """(width, height) from the header, the pixel data (and the frame) checked to be there."""
    ds = read_header(path, where)
    _check_image(ds, frame, where or path)
    return int(ds.Columns), int(ds.Rows)


def _check_image(ds, frame: int | None, where: object) -> None:
    if "Rows" not in ds or "Columns" not in ds:
        raise DataError(where, "is a DICOM file without pixel data (a report, a structured document?); not an image")
    n = frames(ds)
    if frame is not None and frame >= n:
        raise DataError(where, f"has {n} frame(s); frame {frame} does not exist")


def dicom_is_deep(path: Path) -> bool:
    """More than 8 bits stored, or a rescale that leaves 0..255 (CT's HU): an intensity rule maps it."""
    try:
        ds = read_header(path)
    except DataError:
        return False  # decoding it says what is wrong
    return int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8) > 8 or _rescaled(ds)


def _rescaled(ds) -> bool:
    return float(ds.get("RescaleSlope", 1) or 1) != 1 or float(ds.get("RescaleIntercept", 0) or 0) != 0


def decode_dicom(path: Path, frame: int | None, where: object) -> dict:
    """The fields of a :class:`zoo.pixels.Decoded` for one frame of a DICOM file."""
    import numpy as np

    ds = read_header(path, where)
    _check_image(ds, frame, where)
    n = frames(ds)
    a = _pixel_array(path, ds, frame if n > 1 else None, where)
    if n > 1 and frame is None:
        a = a[0]  # the file named without a frame: its first
    notes = [f"DICOM {ds.get('Modality', '?')} {ds.get('PhotometricInterpretation', '')}".rstrip()]
    bits = int(ds.get("BitsStored", 8) or 8)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    deep = bits > 8 or _rescaled(ds)
    if photometric.startswith("MONOCHROME"):
        a, lo, hi = _modality(a, ds, bits)
        window = _window(ds)
        if photometric == "MONOCHROME1":
            a = (lo + hi) - a  # MONOCHROME1: the lowest value is white
            window = None if window is None else (lo + hi - window[1], lo + hi - window[0])
            notes.append("inverted (MONOCHROME1)")
        if _rescaled(ds):
            notes.append(f"rescaled x{float(ds.RescaleSlope):g} {float(ds.RescaleIntercept):+g}")
        if not deep:
            a = np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)
        elif a.dtype == np.int32 and lo >= 0 and hi <= 65535:
            a = a.astype(np.uint16)  # unsigned as stored (inverted within its range): half the memory
    else:
        window = None
        if a.dtype != np.uint8:
            deep = True
    if frame is not None:
        notes.append(f"frame {frame} of {n}")
    return dict(array=np.ascontiguousarray(a), how=", ".join(notes), deep=deep, window=window if deep else None,
                spacing=pixel_spacing(ds), group=group_of(ds), modality=ds.get("Modality") or None)


def _pixel_array(path: Path, ds, frame: int | None, where: object):
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(path, index=frame)  # one frame decoded, not the whole file
    except Exception as e:  # noqa: BLE001 -- missing decoders, truncated data: all mean "no pixels"
        syntax = getattr(ds.file_meta, "TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
        if syntax is not None and syntax.is_compressed and _no_decoder(syntax):
            raise DataError(where, f"is compressed as {syntax.name} and no installed decoder reads it "
                                   f"({EXTRA} installs pylibjpeg and its plugins; or decompress it: "
                                   "gdcmconv --raw)") from None
        raise DataError(where, f"DICOM pixel data does not decode ({type(e).__name__}: {e})") from None


def _no_decoder(syntax) -> bool:
    """No installed pydicom plugin decodes ``syntax`` (pydicom knows none for some)."""
    from pydicom.pixels import get_decoder

    try:
        return not get_decoder(syntax).is_available
    except NotImplementedError:
        return True


def _modality(a, ds, bits: int):
    """The pixels in the modality's units (float32 when rescaled, int32 when signed) and the
    range the stored bits reach in those units (MONOCHROME1 inverts within it)."""
    import numpy as np

    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    if not _rescaled(ds):
        return a.astype(np.int32), lo, hi  # room to invert without wrapping
    slope, icpt = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    out = a.astype(np.float32) * np.float32(slope) + np.float32(icpt)
    ends = sorted((lo * slope + icpt, hi * slope + icpt))
    return out, ends[0], ends[1]


def _window(ds) -> tuple[float, float] | None:
    """The first WindowCenter / WindowWidth pair as (low, high), in modality units."""
    c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
    if c is None or w is None:
        return None
    c = float(c[0] if _multi(c) else c)
    w = float(w[0] if _multi(w) else w)
    return (c - w / 2, c + w / 2) if w > 0 else None


def _multi(v) -> bool:
    return hasattr(v, "__len__") and not isinstance(v, (str, bytes))


def pixel_spacing(ds) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else ImagerPixelSpacing (projection X-ray)."""
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(key)
        if v is not None and _multi(v) and len(v) == 2:
            row, col = float(v[0]), float(v[1])
            if row > 0 and col > 0:
                return row, col
    return None


def group_of(ds) -> str | None:
    """The patient the image belongs to (else its study): images of one patient stay in one split."""
    for key in ("PatientID", "StudyInstanceUID"):
        v = str(ds.get(key, "") or "").strip()
        if v:
            return f"{key}:{v}"
    return None
