"""DICOM images (zoo.dicom through zoo.pixels): pixels in modality units, headers' facts
(spacing, patient), names with or without .dcm, frames, and damaged files in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from zoo.data.reading import read_dataset  # noqa: E402
from zoo.errors import DataError  # noqa: E402
from zoo.files import is_image_file  # noqa: E402
from zoo.pixels import decode  # noqa: E402

H, W = 24, 32


def write_dicom(path: Path, pixels: np.ndarray, *, photometric="MONOCHROME2", slope=1.0, intercept=0.0,
                spacing=(0.5, 0.7), patient="P1", modality="CT", bits=12, signed=False, window=None,
                pixel_data=True) -> Path:
    """A DICOM Part 10 file written by pydicom: ``pixels`` (H, W) or (frames, H, W)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.Modality = patient, generate_uid(), modality
    if pixel_data:
        frames = pixels if pixels.ndim == 3 else pixels[None]
        ds.Rows, ds.Columns = frames.shape[1:]
        if pixels.ndim == 3:
            ds.NumberOfFrames = len(frames)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
        ds.PixelRepresentation = int(signed)
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if spacing is not None:
            ds.PixelSpacing = list(spacing)
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = frames.astype(np.int16 if signed else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(top=4095) -> np.ndarray:
    return (np.arange(H * W).reshape(H, W) * top // (H * W - 1)).astype(np.uint16)


def test_ct_rescale_gives_hounsfield_units_and_the_header_facts(tmp_path):
    f = write_dicom(tmp_path / "ct.dcm", ramp(), slope=1.0, intercept=-1024.0, window=(40, 400))
    d = decode(f)
    assert d.deep and np.allclose(d.array, ramp().astype(np.float32) - 1024)
    assert d.window == (-160.0, 240.0) and d.spacing == (0.5, 0.7) and d.group == "PatientID:P1"
    assert d.modality == "CT" and "rescaled" in d.how


def test_monochrome1_is_inverted_with_its_window(tmp_path):
    f = write_dicom(tmp_path / "xr.dcm", ramp(), photometric="MONOCHROME1", modality="DX", window=(1000, 200))
    d = decode(f)
    assert np.array_equal(d.array, 4095 - ramp()) and "inverted" in d.how
    assert d.window == (4095 - 1100, 4095 - 900)


def test_frames_are_images_of_their_own(tmp_path):
    stack = np.stack([ramp(), ramp() // 2, ramp() // 4])
    f = write_dicom(tmp_path / "cine.dcm", stack, modality="MR")
    assert np.array_equal(decode(f"{f}#2").array, ramp() // 4)
    with pytest.raises(DataError, match="frame 3 does not exist"):
        decode(f"{f}#3")


def test_extension_less_dicom_is_an_image(tmp_path):
    f = write_dicom(tmp_path / "IM000001", ramp())
    (tmp_path / "README").write_text("not an image")
    assert is_image_file(f) and not is_image_file(tmp_path / "README")
    assert np.array_equal(decode(f).array, ramp())


def test_pydicoms_own_files_decode():
    from pydicom.data import get_testdata_file

    ct = decode(get_testdata_file("CT_small.dcm"))
    assert ct.deep and ct.modality == "CT" and ct.array.shape == (128, 128) and ct.array.min() < 0  # HU
    mr = decode(get_testdata_file("MR_small.dcm"))
    assert mr.spacing == (0.3125, 0.3125) and mr.group == "PatientID:4MR1"
    rle = decode(get_testdata_file("MR_small_RLE.dcm"))  # compressed: pydicom's own RLE decoder
    assert np.array_equal(rle.array, mr.array)


def test_damaged_dicoms_are_one_line(tmp_path):
    f = write_dicom(tmp_path / "ok.dcm", ramp())
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(f.read_bytes()[:-300])
    with pytest.raises(DataError, match="cut.dcm: DICOM pixel data does not decode"):
        decode(cut)
    report = write_dicom(tmp_path / "report.dcm", ramp(), pixel_data=False)
    with pytest.raises(DataError, match="without pixel data"):
        decode(report)


def test_compressed_with_and_without_a_decoder(tmp_path):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000MC, RLELossless

    f = write_dicom(tmp_path / "rle.dcm", ramp())
    ds = pydicom.dcmread(f)
    ds.compress(RLELossless)  # pydicom's own codec
    ds.save_as(f, enforce_file_format=True)
    assert np.array_equal(decode(f).array, ramp())

    with pytest.raises(NotImplementedError):  # pydicom has no decoder for it, whatever is installed
        get_decoder(JPEG2000MC)
    ds.file_meta.TransferSyntaxUID = JPEG2000MC
    ds.PixelData = pydicom.encaps.encapsulate([b"\xffO\xffQ htj2k codestream"])
    ds.save_as(tmp_path / "ht.dcm", enforce_file_format=True)
    with pytest.raises(DataError, match=r"ht.dcm: is compressed as JPEG 2000 Part 2 Multi-component.*zoo\[medical\]"):
        decode(tmp_path / "ht.dcm")


def dicom_mask_folder(root: Path, n=6, spacing=(0.5, 0.5), per_patient=2) -> Path:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        a = ramp()
        m = np.zeros((H, W), np.uint8)
        m[4 + k % 3: 14 + k % 3, 6:20] = 1
        a[m == 1] = 3000 + k
        write_dicom(root / "images" / f"case{k}.dcm", a, patient=f"P{k // per_patient}", spacing=spacing, slope=1.0,
                    intercept=-1024.0)
        Image.fromarray(m).save(root / "masks" / f"case{k}.png")
    return root


def test_dicom_and_mask_folders_read_with_groups_and_spacing(tmp_path):
    ds = read_dataset(dicom_mask_folder(tmp_path / "data"), "masks")
    assert len(ds) == 6 and ds.pixel_spacing is None
    assert {r.group for r in ds.images} == {"PatientID:P0", "PatientID:P1", "PatientID:P2"}
    assert ds.spacing_of("case0") == (0.5, 0.5) and (ds.images[0].width, ds.images[0].height) == (W, H)


def train_unet(data: Path, out: Path, *sets: str) -> Path:
    """``zoo run --backend unet`` for one epoch on ``data``, as a user types it; the run folder."""
    from zoo.cli import main

    flags = [a for s in ("encoder_depth=3", *sets) for a in ("--set", s)]
    try:
        main(["run", "--task", "semantic-seg", "--backend", "unet", "--data", str(data), "--epochs", "1",
              "--imgsz", "32", "--batch", "2", "--device", "cpu", "--out", str(out), *flags])
    except SystemExit as e:
        assert e.code in (0, None)
    return out / "unet-semantic-seg"


@pytest.mark.slow
def test_unet_on_dicoms_and_masks_reports_hd95_in_mm_without_zoo_yaml(tmp_path):
    dicom_mask_folder(tmp_path / "data", n=8, spacing=(2.0, 2.0), per_patient=1)
    run = train_unet(tmp_path / "data", tmp_path / "runs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "millimetres" in json.dumps(metrics)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["choices"]["intensity"]["value"].startswith("percentile:")
    assert "intensity: percentile:" in (run / "config.yaml").read_text()

    from zoo.pipeline.predict import predict_to_labelme, recorded_intensity

    assert recorded_intensity(run).kind == "percentile"
    done = predict_to_labelme(run, [tmp_path / "data" / "images" / "case0.dcm"], tmp_path / "pred", device="cpu")
    assert [p.name for p in done.written] == ["case0.json"]


def test_convert_writes_16_bit_png_and_says_where_it_quantises(tmp_path):
    from PIL import Image

    from zoo.pipeline.convert import convert

    root = dicom_mask_folder(tmp_path / "data", n=2)  # CT: HU after the rescale, negative
    write_dicom(root / "images" / "case1.dcm", ramp(), modality="DX")  # plain 12-bit
    done = convert(root, to="coco", out=tmp_path / "coco", fmt="masks")
    assert "1 image(s) hold values a 16-bit PNG cannot (e.g. " in done.title and "case0.dcm" in done.title
    png16 = np.asarray(Image.open(tmp_path / "coco" / "images" / "case1.png"))
    assert png16.dtype == np.uint16 and np.array_equal(png16, ramp())
    png8 = Image.open(tmp_path / "coco" / "images" / "case0.png")
    assert png8.mode == "RGB"
    ann = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert sorted(im["file_name"] for im in ann["images"]) == ["case0.png", "case1.png"]


def test_class_folders_read_extension_less_dicoms_and_every_frame(tmp_path):
    root = tmp_path / "folders"
    (root / "normal").mkdir(parents=True)
    (root / "effusion").mkdir()
    write_dicom(root / "normal" / "IM0001", ramp(), patient="A")
    write_dicom(root / "effusion" / "cine.dcm", np.stack([ramp(), ramp() // 2, ramp() // 4]), patient="B")
    ds = read_dataset(root)
    assert ds.format == "folders"
    assert sorted(r.id for r in ds.images) == ["effusion/cine#0", "effusion/cine#1", "effusion/cine#2", "normal/IM0001"]
    assert np.array_equal(ds.image("effusion/cine#2").pixels().array, ramp() // 4)
    assert {r.group for r in ds.images} == {"PatientID:A", "PatientID:B"}


def test_labelme_names_a_frame_of_a_multi_frame_dicom(tmp_path):
    write_dicom(tmp_path / "cine.dcm", np.stack([ramp(), ramp() // 2]))
    shape = {"label": "lv", "points": [[2, 2], [12, 2], [12, 10]], "shape_type": "polygon", "group_id": None,
             "flags": {}}
    (tmp_path / "cine_1.json").write_text(json.dumps({
        "version": "5.4.1", "flags": {}, "shapes": [shape], "imagePath": "cine.dcm#1", "imageData": None,
        "imageHeight": H, "imageWidth": W}))
    (rec,) = read_dataset(tmp_path, "labelme").images
    assert rec.file.name == "cine.dcm#1" and np.array_equal(rec.pixels().array, ramp() // 2)
