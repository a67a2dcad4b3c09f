"""Writing a dataset to a new folder, safely: the rules ``zoo convert`` and ``zoo check --fix``
share.

The source is only ever read: the output folder may not be the source, lie inside it, or
already hold files; while a writer works, the folder is marked unfinished
(:data:`zoo.data.reading.UNFINISHED`), so a killed conversion is never read as a whole dataset.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from zoo.data.reading import UNFINISHED
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.specs import TASK_FROM_DATA, WriterSpec

#: the writers' task names (ultralytics', ...) -> zoo's
TASK_ALIASES = {"segment": "instance-seg", "pose": "keypoint", "detection": "detect", "semantic": "semantic-seg"}


def zoo_task(task: str | None) -> str | None:
    """A task as zoo names it (``segment`` -> ``instance-seg``, ...)."""
    return None if task is None else TASK_ALIASES.get(task, task)


def check_out(src: Path, out: Path) -> None:
    """A clear error unless ``out`` is a new (or empty) folder outside ``src``."""
    s, o = Path(src).resolve(), Path(out).resolve()
    s_dir = s if s.is_dir() else s.parent
    if o == s_dir or o.is_relative_to(s_dir):
        raise ZooError(f"--out {out} lies inside the source folder {src}; zoo never writes into your data: "
                       "choose a folder outside it")
    if o.exists() and (not o.is_dir() or any(o.iterdir())):
        if _unfinished_by_zoo(o):
            _start_again(o)
            return
        raise ZooError(f"--out {out} already exists and is not empty; choose a new folder (or delete it)")


_MARKER_TEXT = "zoo convert has not finished writing this folder\n"


def _unfinished_by_zoo(folder: Path) -> bool:
    """``folder`` is what a killed ``zoo convert`` (or ``zoo check --fix``) left: its marker,
    as zoo writes it, is still there."""
    marker = folder / UNFINISHED
    try:
        return marker.is_file() and not marker.is_symlink() and marker.read_text(encoding="utf-8") == _MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _start_again(folder: Path) -> None:
    """An interrupted conversion's output (zoo's own, never a source) is written again from
    the start: half-written files and temporary ones must not mix with the new ones."""
    import shutil

    for p in list(folder.iterdir()):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@contextmanager
def writing_to(out: Path):
    """``out`` marked unfinished (:data:`zoo.data.reading.UNFINISHED`) until the writer is done, so
    a killed or failed conversion is never read as a whole dataset. A disk that refuses a
    write (read-only or full --out, a path longer than the filesystem allows) is the user's to
    fix: one line naming the file, not a traceback."""
    marker = out / UNFINISHED
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text(_MARKER_TEXT, encoding="utf-8")
        yield
        marker.unlink()
    except OSError as e:
        where = e.filename if e.filename is not None else out
        raise ZooError(f"cannot write {where} under --out {out}: {e.strerror or e}") from None


def writer_task(writer: WriterSpec, task: str | None, ds: Dataset) -> str | None:
    """The task ``writer`` writes ``ds`` for: the one given, else its spec's default
    (``WriterSpec.default_task``: a task, the one the data holds, or None: all it holds)."""
    task = zoo_task(task)
    if task is not None:
        return task
    if writer.default_task == TASK_FROM_DATA:
        return task_the_data_holds(ds)
    return writer.default_task


def task_the_data_holds(ds: Dataset) -> str:
    """The richest task ``ds``'s annotations serve: keypoint, classify (image labels and no
    objects), instance-seg (shapes), else detect."""
    if ds.keypoint_names:
        return "keypoint"
    if not any(r.instances for r in ds.images) and ds.classes:
        return "classify"
    if any(i.polygons or i.mask for r in ds.images for i in r.instances):
        return "instance-seg"
    return "detect"
