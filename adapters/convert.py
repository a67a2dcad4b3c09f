"""``zoo convert`` and ``zoo check``: read any folder the adapters read, write another
format, and show what was read (images, instances per class, warnings) in one table.

The source folder is only ever read: the output folder may not be the source, lie inside
it, or already hold files.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from zoo.dataset import Dataset
from zoo.errors import ZooError

# zoo task names -> what the writers call them
_TASK_ALIASES = {"segment": "instance-seg", "pose": "keypoint", "detection": "detect", "semantic": "semantic-seg"}
DEFAULT_TASK = {"coco": None, "yolo": "detect", "masks": "semantic-seg", "voc": "detect", "labelme": None}


def _check_out(src: Path, out: Path) -> None:
    s, o = src.resolve(), out.resolve()
    s_dir = s if s.is_dir() else s.parent
    if o == s_dir or o.is_relative_to(s_dir):
        raise ZooError(f"--out {out} lies inside the source folder {src}; zoo never writes into your data: "
                       "choose a folder outside it")
    if o.exists() and (not o.is_dir() or any(o.iterdir())):
        from zoo.data.reading import UNFINISHED

        what = "holds an unfinished conversion" if (o / UNFINISHED).exists() else "already exists and is not empty"
        raise ZooError(f"--out {out} {what}; choose a new folder (or delete it)")


@contextmanager
def _writing_to(out: Path):
    """``out`` marked unfinished (:data:`zoo.data.reading.UNFINISHED`) until the writer is done, so
    a killed or failed conversion is never read as a whole dataset. A disk that refuses a
    write (read-only or full --out, a path longer than the filesystem allows) is the user's to
    fix: one line naming the file, not a traceback."""
    from zoo.data.reading import UNFINISHED

    marker = out / UNFINISHED
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text("zoo convert has not finished writing this folder\n", encoding="utf-8")
        yield
        marker.unlink()
    except OSError as e:
        where = e.filename if e.filename is not None else out
        raise ZooError(f"cannot write {where} under --out {out}: {e.strerror or e}") from None


def _check_pixels(ds: Dataset, to: str, copy_images: bool) -> None:
    """Images known only by their size (a COCO file without its image files) cannot be
    copied: an error before anything is written, not half way."""
    if to in ("coco", "masks") and not copy_images:
        return
    missing = [r.id for r in ds.images if r.file is None and r.embedded is None]
    if missing:
        hint = "; add --no-images to write the annotations alone" if to in ("coco", "masks") else ""
        raise ZooError(f"{len(missing)} image(s) have no image file (e.g. {missing[0]!r}) and {to} output "
                       f"copies the images{hint}")


def _writer_task(to: str, task: str | None, ds: Dataset) -> str | None:
    if task is not None:
        task = _TASK_ALIASES.get(task, task)
    if to == "yolo" and task is None:
        if ds.keypoint_names:
            return "keypoint"
        if not any(r.instances for r in ds.images) and ds.classes:
            return "classify"
        if any(i.polygons or i.mask for r in ds.images for i in r.instances):
            return "instance-seg"
        return "detect"
    return task or DEFAULT_TASK.get(to)


def convert_folder(src: str | Path, *, to: str, out: str | Path, fmt: str = "auto", task: str | None = None,
                   labels: str | Path | None = None, copy_images: bool = True, geometry: str = "exact",
                   quiet: bool = False) -> Dataset:
    """Read ``src`` and write it as ``to`` under ``out``; returns the dataset read."""
    from zoo.data.reading import read_dataset
    from zoo.registry import get_registry

    src, out = Path(src), Path(out)
    if not src.exists():
        raise ZooError(f"{src}: no such file or folder")
    writer_spec = get_registry().writer(to)  # unknown format: error before any reading
    if geometry not in ("exact", "pixels"):
        raise ZooError(f"--geometry must be 'exact' or 'pixels', not '{geometry}'")
    _check_out(src, out)
    if fmt == "auto":
        from zoo.data.reading import detect_format

        fmt = detect_format(src)
    if task is not None:
        task = _TASK_ALIASES.get(task, task)
    if to == "coco" and fmt == "labelme" and task in (None, "detect", "instance-seg", "keypoint"):
        with _writing_to(out):
            return _stream_labelme_to_coco(src, out, labels=labels, geometry=geometry, copy_images=copy_images,
                                           quiet=quiet)
    ds = read_dataset(src, fmt=fmt, labels=labels)
    _check_pixels(ds, to, copy_images)
    wtask = _writer_task(to, task, ds)
    if wtask is not None:
        from zoo.tasks import get_task

        get_task(wtask)  # unknown task names fail here, with a suggestion
    writer = writer_spec.load()
    kwargs = {"task": wtask}
    if to in ("coco", "masks") and not copy_images:
        kwargs["copy_images"] = False
    if to == "coco":
        kwargs["geometry"] = geometry
    with _writing_to(out):
        out.mkdir(parents=True, exist_ok=True)
        writer(ds, out, **kwargs)
    if not quiet:
        print_summary(ds, title=f"{src} ({ds.format}) -> {out} ({to}{', ' + wtask if wtask else ''})")
    return ds


def _stream_labelme_to_coco(src: Path, out: Path, *, labels, geometry: str, copy_images: bool, quiet: bool) -> Dataset:
    """labelme -> COCO without holding the dataset: memory follows the output's size."""
    from zoo.adapters.coco import stream_coco
    from zoo.adapters.labelme import iter_records

    root = src.parent if src.is_file() else src
    warnings: list = []
    summary = stream_coco(iter_records(src, warnings, set()), out, root=root, warnings=warnings, labels=labels,
                          geometry=geometry, copy_images=copy_images)
    ds = Dataset(categories=summary["categories"], root=root, format="labelme", warnings=warnings)
    if not quiet:
        print_summary(ds, title=f"{src} (labelme) -> {out} (coco)", summary=summary)
    return ds


def check_folder(data: str | Path, *, fmt: str = "auto", labels: str | Path | None = None,
                 task: str | None = None, quiet: bool = False) -> Dataset:
    """Read ``data`` as ``zoo run`` would, print what is there and every warning; with
    ``task``, also check the data can serve that task (an error when it cannot)."""
    from zoo.data.reading import read_dataset

    ds = read_dataset(data, fmt=fmt, labels=labels)
    if not quiet:
        print_summary(ds, title=f"{data} ({ds.format})", all_warnings=True)
    if task is not None:
        from zoo.tasks import get_task

        t = get_task(_TASK_ALIASES.get(task, task))
        t.check(ds)
        usable = sum(1 for r in ds.images if t.is_annotated(r))
        if usable == 0:
            raise ZooError(f"{data}: no image is annotated for {t.name}")
        if not quiet:
            from rich.console import Console

            Console().print(f"[green]ok[/green] for {t.name}: {usable} of {len(ds.images)} images usable")
    return ds


def print_summary(ds: Dataset, *, title: str, all_warnings: bool = False, max_warnings: int = 10,
                  summary: dict | None = None) -> None:
    """The rich table: images, instances per category, image classes, warnings."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = summary or ds.summary()
    console.print(f"[bold]{title}[/bold]", highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("name")
    table.add_column("count", justify="right")
    table.add_row("images", "", str(s["images"]))
    for i, (name, n) in enumerate(s["instances"].items()):
        table.add_row("instances" if i == 0 else "", name, str(n))
    if s["ignored"]:
        table.add_row("ignored regions", "", str(s["ignored"]))
    for i, (name, n) in enumerate(s["labels"].items()):
        table.add_row("image classes" if i == 0 else "", name, str(n))
    if ds.keypoint_names:
        table.add_row("keypoints", ", ".join(ds.keypoint_names), str(len(ds.keypoint_names)))
    for i, (name, ids) in enumerate(ds.splits.items()):
        table.add_row("splits in source" if i == 0 else "", name, str(len(ids)))
    table.add_row("warnings", "", str(s["warnings"]), style="yellow" if s["warnings"] else None)
    console.print(table)
    shown = ds.warnings if all_warnings else ds.warnings[:max_warnings]
    from rich.text import Text

    for w in shown:
        console.print(Text.assemble(("warning", "yellow"), f": {w}"), highlight=False, soft_wrap=True)
    if len(ds.warnings) > len(shown):
        console.print(f"... and {len(ds.warnings) - len(shown)} more warnings (zoo check lists them all)")
