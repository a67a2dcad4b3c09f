"""NIfTI volumes (nibabel) as 2D slices: ``case_0000.nii.gz#12`` is slice 12 along the axis
nnU-Net's 2D configuration would cut (the lowest resolution one: the largest voxel size; the
last axis when they tie), rows along the later of the other two axes.

:func:`slice_axis` is the one choice of axis the reader
(``adapters/nifti.py``, labels) and the decoder (images) share, so an image slice and its
label slice are cut alike. A decoded slice reads that slice only (with indexed_gzip a
``.nii.gz`` is not decompressed again up to it for each slice).

In the contract beside :mod:`zoo.pixels` (which it does not import); nibabel is imported
here only: ``zoo[medical]``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from zoo.errors import DataError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: Path | str) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _nibabel(where: object):
    try:
        import nibabel
    except ImportError:
        raise DataError(where, "is a NIfTI volume: reading it needs nibabel (pip install 'zoo[medical]')") from None
    return nibabel


def load_header(path: Path):
    """The image object (header and a lazy array); a DataError naming the file when it does not parse."""
    nib = _nibabel(path)
    try:
        return nib.load(str(path))
    except Exception as e:  # noqa: BLE001 -- nibabel raises many types on damaged files
        raise DataError(path, f"is not a readable NIfTI file ({type(e).__name__}: {e})") from None


def slice_axis(zooms) -> int:
    """The axis nnU-Net's 2D configuration slices along: the largest voxel size, the last on a tie."""
    z = [float(v) for v in zooms[:3]]
    return max(range(3), key=lambda a: (round(z[a], 6), a))


def take_slice(volume, axis: int, k: int):
    """Slice ``k`` along ``axis`` of a 3D (or 4D: first channel) array, rows along the later axis."""
    import numpy as np

    if volume.ndim == 4:
        volume = volume[..., 0]
    return np.ascontiguousarray(np.take(volume, k, axis=axis).T)


def slice_spacing(zooms, axis: int) -> tuple[float, float] | None:
    """(row, column) size in mm of a slice's pixels (rows along the later remaining axis)."""
    early, late = (a for a in range(3) if a != axis)
    row, col = float(zooms[late]), float(zooms[early])
    return (row, col) if row > 0 and col > 0 else None


@functools.lru_cache(maxsize=8)
def _opened(path: str, _stamp: tuple):
    """The image with its file kept open: with indexed_gzip (``zoo[medical]``) a ``.nii.gz``
    keeps its seek points, so a later slice is read without decompressing what lies before it."""
    nib = _nibabel(path)
    try:
        return nib.load(path, keep_file_open=True)
    except Exception as e:  # noqa: BLE001 -- nibabel raises many types on damaged files
        raise DataError(path, f"is not a readable NIfTI file ({type(e).__name__}: {e})") from None


def opened(path: Path):
    """The volume's image object (header, and its data read slice by slice), kept for the next slice."""
    st = os.stat(path)
    return _opened(str(path), (st.st_mtime_ns, st.st_size))


def decode_nifti(path: Path, k: int | None, where: object) -> dict:
    """The fields of a :class:`zoo.pixels.Decoded` for slice ``k`` of a volume, reading that
    slice only (scaling applied)."""
    import numpy as np

    img = opened(path)
    shape, zooms = img.shape, img.header.get_zooms()
    if len(shape) not in (3, 4):
        raise DataError(where, f"is a {len(shape)}-D NIfTI volume; zoo reads 3-D volumes (4-D: the first channel)")
    axis = slice_axis(zooms)
    if k is None or not 0 <= k < shape[axis]:
        raise DataError(where, f"names no slice of this volume (slices 0..{shape[axis] - 1} along axis {axis})")
    index: list = [slice(None)] * len(shape)
    index[axis] = k
    if len(shape) == 4:
        index[3] = 0
    try:
        a = np.ascontiguousarray(np.asanyarray(img.dataobj[tuple(index)]).T)
    except Exception as e:  # noqa: BLE001 -- a truncated .nii.gz fails only here
        raise DataError(where, f"NIfTI data does not decode ({type(e).__name__}: {e})") from None
    return dict(array=a, how=f"NIfTI {a.dtype} slice {k} along axis {axis} of {tuple(shape)}",
                deep=a.dtype != np.uint8, spacing=slice_spacing(zooms, axis))
