"""Decoding deep images through zoo (``zoo.pixels.decode``) against a bare loop over the same files.

    .venv/bin/python bench/bench_decode.py [--png 1000] [--dicom 200] [--size 512] [--repeat 3]

Generated once in a temporary folder: ``--png`` 16-bit grayscale PNGs (12-bit values, a
smooth ramp with noise, as an X-ray) and ``--dicom`` CT slices (12 bits stored, rescale
slope 1 / intercept -1024, PixelSpacing, a window), written by PIL and pydicom. Timed in
one process, interleaved, best of ``--repeat``:

* PNG anchor: ``np.asarray(Image.open(f))`` (PIL, full range); zoo: ``decode(f).array`` and
  ``ImageRecord.load_rgb()`` under a fitted percentile rule (what an 8-bit backend gets);
* DICOM anchor: ``pydicom.dcmread(f)`` then ``apply_modality_lut(ds.pixel_array, ds)`` (the
  pixels in HU); zoo: ``decode(f)`` (HU too, plus the header's spacing, group and window).

Prints a markdown row for bench/README.md. Target: zoo at most 1.3x the anchor.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def make_pngs(folder: Path, n: int, size: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (3000 / (2 * size))
    out = []
    for k in range(n):
        a = np.clip(ramp + 500 + rng.normal(0, 40, (size, size)) + 10 * k % 300, 0, 4095).astype(np.uint16)
        f = folder / f"xr{k:05d}.png"
        Image.fromarray(a).save(f)
        out.append(f)
    return out


def make_dicoms(folder: Path, n: int, size: int) -> list[Path]:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(1)
    body = (np.hypot(*np.meshgrid(np.arange(size) - size / 2, np.arange(size) - size / 2)) < size * 0.4)
    out = []
    for k in range(n):
        a = np.where(body, 1064, 24) + rng.normal(0, 20, (size, size))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        f = folder / f"ct{k:05d}.dcm"
        ds = FileDataset(str(f), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.StudyInstanceUID = "CT", f"P{k // 50}", generate_uid()
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelSpacing, ds.WindowCenter, ds.WindowWidth = [0.7, 0.7], 40, 400
        ds.PixelData = np.clip(a, 0, 4095).astype(np.uint16).tobytes()
        ds.save_as(f, enforce_file_format=True)
        out.append(f)
    return out


def timed(fn, files) -> float:
    t0 = time.perf_counter()
    for f in files:
        fn(f)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--png", type=int, default=1000)
    ap.add_argument("--dicom", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import pydicom
    from PIL import Image
    from pydicom.pixels import apply_modality_lut

    from zoo.dataset import ImageRecord
    from zoo.pixels import decode, image_rule

    with tempfile.TemporaryDirectory() as tmp:
        pngs = make_pngs(Path(tmp), args.png, args.size)
        dicoms = make_dicoms(Path(tmp), args.dicom, args.size)
        rule = image_rule(decode(pngs[0]).array)
        records = {f: ImageRecord(f.stem, args.size, args.size, file=f, intensity=rule) for f in pngs}

        def pil(f):
            return np.asarray(Image.open(f))

        def dcm(f):
            ds = pydicom.dcmread(f)
            return apply_modality_lut(ds.pixel_array, ds)

        def zoo(f):
            return decode(f).array

        def zoo_rgb(f):
            return records[f].load_rgb()

        runs = {k: [] for k in ("pil", "zoo_png", "zoo_rgb", "pydicom", "zoo_dicom")}
        for _ in range(args.repeat):
            runs["pil"].append(timed(pil, pngs))
            runs["zoo_png"].append(timed(zoo, pngs))
            runs["zoo_rgb"].append(timed(zoo_rgb, pngs))
            runs["pydicom"].append(timed(dcm, dicoms))
            runs["zoo_dicom"].append(timed(zoo, dicoms))
        best = {k: min(v) for k, v in runs.items()}
        assert np.array_equal(zoo(pngs[0]), pil(pngs[0]))
        assert np.allclose(zoo(dicoms[0]), dcm(dicoms[0]))
    print({k: round(v, 3) for k, v in best.items()})
    print(f"| {args.png} PNG / {args.dicom} DICOM, {args.size}² | PIL {best['pil']:.2f} s | "
          f"zoo {best['zoo_png']:.2f} s (**{best['zoo_png'] / best['pil']:.2f}x**) | "
          f"zoo + rule -> RGB {best['zoo_rgb']:.2f} s ({best['zoo_rgb'] / best['pil']:.2f}x) | "
          f"pydicom {best['pydicom']:.2f} s | zoo {best['zoo_dicom']:.2f} s "
          f"(**{best['zoo_dicom'] / best['pydicom']:.2f}x**) |")


if __name__ == "__main__":
    main()
