"""``zoo convert``: any folder a registered reader reads, written by a registered writer, with
what was read returned for the CLI to show (images, instances per class, warnings); and, for
library callers, :func:`check_folder`: a folder read as ``zoo run`` reads it and checked for a
task (``zoo check`` itself lints, :mod:`zoo.data.lint`).

The source folder is only ever read (:mod:`zoo.data.output`: the output folder may not be
the source, lie inside it, or already hold files). Where the reader can hand over its files
one image at a time and the writer can take them so (``ReaderSpec.records``,
``WriterSpec.stream``: labelme -> COCO), the conversion streams, and its memory follows the
output's size rather than the dataset's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.output import check_out, writer_task, writing_to, zoo_task
from zoo.data.reading import detect_format, read_dataset
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.files import COMMON_IMAGE_SUFFIXES
from zoo.pixels import fits_uint16, own_rule
from zoo.specs import WriterSpec
from zoo.tasks import get_task


@dataclass
class Converted:
    """What ``zoo convert`` read and wrote."""

    #: the dataset read (a streamed conversion: its categories and warnings only)
    dataset: Dataset
    #: ``SRC (labelme) -> OUT (coco)``
    title: str
    #: ``Dataset.summary()`` of what was read (a streamed conversion: the writer's count)
    summary: dict[str, Any] = field(default_factory=dict)


def convert(src: str | Path, *, to: str, out: str | Path, fmt: str = "auto", task: str | None = None,
            labels: str | Path | None = None, copy_images: bool = True, geometry: str = "exact",
            images: str | Path | None = None, registry=None) -> Converted:
    """Read ``src`` (its images under ``images`` when given) and write it as ``to`` under ``out``,
    by ``registry``'s reader and writer (None: the installed plugins)."""
    from zoo.registry import get_registry

    src, out = Path(src), Path(out)
    if not src.exists():
        raise ZooError(f"{src}: no such file or folder")
    registry = registry or get_registry()
    writer_spec = registry.writer(to)  # unknown format: error before any reading
    if geometry not in ("exact", "pixels"):
        raise ZooError(f"--geometry must be 'exact' or 'pixels', not '{geometry}'")
    check_out(src, out)
    fmt = detect_format(src, registry) if fmt == "auto" else fmt
    task = zoo_task(task)
    reader_spec = registry.readers.get(fmt)
    streams = reader_spec is not None and reader_spec.records and writer_spec.stream and images is None
    if streams and task in (None, *writer_spec.tasks):
        with writing_to(out):
            return _stream(reader_spec, writer_spec, src, out, labels=labels, geometry=geometry,
                           copy_images=copy_images)
    return _convert_whole(writer_spec, src, out, fmt=fmt, task=task, labels=labels, copy_images=copy_images,
                          geometry=geometry, images=images, registry=registry)


def convert_folder(src: str | Path, **options: Any) -> Dataset:
    """:func:`convert`, for a caller that wants the dataset read."""
    return convert(src, **options).dataset


def _convert_whole(writer_spec, src: Path, out: Path, *, fmt: str, task: str | None, labels, copy_images: bool,
                   geometry: str, images: str | Path | None = None, registry=None) -> Converted:
    """Read the whole dataset, then write it."""
    ds = read_dataset(src, fmt=fmt, labels=labels, images=images, registry=registry)
    _check_pixels(ds, writer_spec, copy_images)
    quantised = quantise_what_png_cannot_hold(ds) if copy_images else []
    wtask = writer_task(writer_spec, task, ds)
    if wtask is not None:
        get_task(wtask)  # unknown task names fail here, with a suggestion
    writer = writer_spec.load()
    offered = {"copy_images": copy_images, "geometry": geometry}  # zoo.specs.WRITER_OPTIONS
    options = {k: v for k, v in offered.items() if k in writer_spec.options}
    with writing_to(out):
        out.mkdir(parents=True, exist_ok=True)
        writer(ds, out, task=wtask, **options)
    title = f"{src} ({ds.format}) -> {out} ({writer_spec.name}{', ' + wtask if wtask else ''})"
    if task is None and wtask is not None:
        title += "\n" + _chosen_task_note(wtask, ds)
    if quantised:
        title += (f"\n{len(quantised)} image(s) hold values a 16-bit PNG cannot (e.g. {quantised[0]}: CT in HU, "
                  "floats): written as 8-bit through each one's own window (DICOM) or 0.5-99.5 percentiles; "
                  "16-bit images are written as 16-bit PNG")
    return Converted(ds, title, ds.summary())


def quantise_what_png_cannot_hold(ds: Dataset) -> list[str]:
    """The DICOM / NIfTI images whose values no 16-bit PNG holds (negative or fractional),
    given their own 8-bit rule so the writers can write them (in place: the dataset was just
    read for this conversion); their files, to say so."""
    out = []
    for rec in ds.images:
        if rec.file is None or rec.suffix in COMMON_IMAGE_SUFFIXES and rec.file.suffix.lower() == rec.suffix:
            continue  # a common format is copied as it is
        decoded = rec.pixels()
        if decoded.deep and not fits_uint16(decoded.array):
            rec.intensity = own_rule(decoded)
            out.append(str(rec.file))
    return out


def _chosen_task_note(task: str, ds: Dataset) -> str:
    """Said when the writer chose the task from the data: what it wrote, and how to choose."""
    if task == "keypoint":
        what = (f"keypoint (pose) labels, {len(ds.keypoint_names)} points per object, "
                f"named {', '.join(ds.keypoint_names)}")
    else:
        what = f"{task} labels"
    return f"wrote {what}: the task was chosen from what the data holds; --task names another"


def _stream(reader_spec, writer_spec, src: Path, out: Path, *, labels, geometry: str, copy_images: bool) -> Converted:
    """Reader to writer one image at a time, without holding the dataset."""
    root = src.parent if src.is_file() else src
    warnings: list = []
    records = reader_spec.load_records()(src, warnings, set())
    summary = writer_spec.load_stream()(records, out, root=root, warnings=warnings, labels=labels, geometry=geometry,
                                        copy_images=copy_images)
    ds = Dataset(categories=summary["categories"], root=root, format=reader_spec.name, warnings=warnings)
    return Converted(ds, f"{src} ({reader_spec.name}) -> {out} ({writer_spec.name})", summary)


def _check_pixels(ds: Dataset, writer: WriterSpec, copy_images: bool) -> None:
    """Images known only by their size (a COCO file without its image files) cannot be
    copied: an error before anything is written, not half way."""
    can_skip_images = "copy_images" in writer.options
    if can_skip_images and not copy_images:
        return
    missing = [r.id for r in ds.images if not r.has_pixels]
    if missing:
        hint = "; add --no-images to write the annotations alone" if can_skip_images else ""
        raise ZooError(f"{len(missing)} image(s) have no image file (e.g. {missing[0]!r}) and {writer.name} output "
                       f"copies the images{hint}")


def check_folder(data: str | Path, *, fmt: str = "auto", labels: str | Path | None = None,
                 task: str | None = None) -> Dataset:
    """``data`` read as ``zoo run`` would; with ``task``, also checked that the data can serve
    that task (an error when it cannot)."""
    ds = read_dataset(data, fmt=fmt, labels=labels)
    if task is not None:
        t = get_task(zoo_task(task))
        t.check(ds)
        if not any(t.is_annotated(r) for r in ds.images):
            raise ZooError(f"{data}: no image is annotated for {t.name}")
    return ds
