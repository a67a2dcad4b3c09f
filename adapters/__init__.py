"""Annotation formats in and out, installed as ``zoo.adapters``.

Registered through the ``zoo`` entry-point group like any plugin; readers and writers are
imported only when used (this module imports nothing heavy).

Readers (``read(path, *, labels=None) -> Dataset``): labelme, voc, yolo, coco, folders, masks, cvat, nifti,
objects.
Writers (``write(dataset, out, *, task=None)``): coco, yolo, masks, voc, labelme.
Bad input: see ``POLICY.md`` beside this file.
"""

from zoo import hookimpl
from zoo.specs import TASK_FROM_DATA, ReaderSpec, WriterSpec

_A = "zoo.adapters"


@hookimpl
def zoo_readers():
    return [
        ReaderSpec(name="labelme", entry=f"{_A}.labelme:read", sniff=f"{_A}.labelme:sniff",
                   records=f"{_A}.labelme:iter_records", fix=f"{_A}.labelme_fix:write_fixed_copy",
                   description="labelme / X-AnyLabeling JSON (every version)"),
        ReaderSpec(name="voc", entry=f"{_A}.voc:read", sniff=f"{_A}.voc:sniff",
                   description="Pascal VOC XML (LabelImg), flat or devkit layout"),
        ReaderSpec(name="yolo", entry=f"{_A}.yolo:read", sniff=f"{_A}.yolo:sniff",
                   description="YOLO txt + classes.txt (LabelImg) or data.yaml (ultralytics)"),
        ReaderSpec(name="coco", entry=f"{_A}.coco:read", sniff=f"{_A}.coco:sniff",
                   description="COCO JSON (instances, person_keypoints)"),
        ReaderSpec(name="folders", entry=f"{_A}.folders:read", sniff=f"{_A}.folders:sniff",
                   description="class folders <class>/<image> (classify)"),
        ReaderSpec(name="masks", entry=f"{_A}.masks:read", sniff=f"{_A}.masks:sniff",
                   description="image + mask folders (images/ + masks/, x + x_mask, VOC SegmentationClass)"),
        ReaderSpec(name="cvat", entry=f"{_A}.cvat:read", sniff=f"{_A}.cvat:sniff",
                   description="CVAT for images 1.1 XML (task or project export)"),
        ReaderSpec(name="nifti", entry=f"{_A}.nifti:read", sniff=f"{_A}.nifti:sniff",
                   description="NIfTI volumes as 2D slices (nnU-Net / Decathlon imagesTr + labelsTr, image + label pairs)"),
        ReaderSpec(name="objects", entry=f"{_A}.objects:read", sniff=f"{_A}.objects:sniff",
                   description="per-object mask PNGs (<id>/images + <id>/masks, Data Science Bowl 2018; masks/<stem>_<k>)"),
    ]


@hookimpl
def zoo_writers():
    return [
        WriterSpec(name="coco", entry=f"{_A}.coco:write", tasks=("detect", "instance-seg", "keypoint"),
                   stream=f"{_A}.coco:stream_coco", options=("copy_images", "geometry"), round_trip=True,
                   description="annotations.json + images/"),
        WriterSpec(name="yolo", entry=f"{_A}.yolo:write", tasks=("detect", "instance-seg", "keypoint", "classify"),
                   default_task=TASK_FROM_DATA, round_trip=True,
                   description="ultralytics data.yaml, images/, labels/ (detect, segment, pose, classify)"),
        WriterSpec(name="masks", entry=f"{_A}.masks:write", tasks=("semantic-seg",), default_task="semantic-seg",
                   options=("copy_images",),
                   description="palette PNG label maps (labelme2voc: 0 background, 255 ignore)"),
        WriterSpec(name="voc", entry=f"{_A}.voc:write", tasks=("detect",), default_task="detect", round_trip=True,
                   description="Pascal VOC devkit: Annotations/, JPEGImages/, ImageSets/"),
        WriterSpec(name="labelme", entry=f"{_A}.labelme_out:write", predictions=f"{_A}.labelme_out:prediction_to_labelme",
                   tasks=("classify", "detect", "instance-seg", "semantic-seg", "keypoint"),
                   description="labelme JSON beside each image"),
    ]
