"""Reading any annotation folder into the canonical Dataset, format detected or named."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.data.headers import adopt_header_facts
from zoo.dataset import Dataset
from zoo.errors import DataError, ZooError
from zoo.registry import Registry, get_registry

#: Left in an output folder while ``zoo convert`` writes it, removed when it has finished: a
#: folder holding it is a partial output (the conversion was killed or failed) and is not read.
UNFINISHED = ".zoo-unfinished"


def refuse_unfinished(path: Path) -> None:
    """A :class:`DataError` when ``path`` (or the folder of a file) is an unfinished output."""
    folder = path if path.is_dir() else path.parent
    if (folder / UNFINISHED).exists():
        raise DataError(folder, f"an unfinished `zoo convert` output ({UNFINISHED} is there: the conversion "
                                "was interrupted or failed); convert again into a new folder")


class NoReader(ZooError):
    """No reader takes a folder; ``details``: each reader tried and why it declined, one line
    each (the CLI prints them under the error line)."""

    def __init__(self, message: str, details: list[str]):
        super().__init__(message)
        self.details = details


class Declined(float):
    """A sniffer's 0: "not this format", with the reason (``zoo check`` on a folder no reader
    takes lists each reader's)."""

    why: str

    def __new__(cls, why: str) -> Declined:
        out = super().__new__(cls, 0.0)
        out.why = why
        return out


def declined(why: str) -> Declined:
    """What a sniffer returns for a folder it does not read, saying why in a few words."""
    return Declined(why)


#: How sure a sniffer's number says it is (adapters follow these bands; docs/data-formats.md).
CONFIDENCE_BANDS = (
    (1.0, "the file itself is in the format (a file named directly)"),
    (0.9, "the format's own files at the top of the folder (labelme JSON, VOC XML, CVAT XML, image + mask folders)"),
    (0.6, "the format's layout found below the top, or a layout other formats share (COCO JSON in a folder)"),
    (0.1, "a weak guess: class folders, or bare images"),
)


def detect_format(path: Path, registry: Registry | None = None) -> str:
    """The reader of ``registry`` whose sniffer is most confident about ``path``; two readers
    equally sure are a question for the user (--from), never a coin toss."""
    refuse_unfinished(path)
    registry = registry or get_registry()
    scores = []
    reasons = []
    for spec in registry.readers.values():
        sniff = spec.load_sniffer()
        if sniff is None:
            continue
        try:
            score = sniff(path)
        except ZooError as e:  # a sniffer that chokes on a file declines, saying on what
            score = declined(str(e))
        scores.append((float(score), spec.name))
        reasons.append(f"{spec.name}: {getattr(score, 'why', '') or 'found nothing it reads'}")
    scores.sort(key=lambda s: -s[0])
    if not scores or scores[0][0] <= 0:
        example = _first_annotation_like(path)
        raise NoReader(
            f"{path}: no annotations found that zoo can read "
            f"(looked for: {', '.join(registry.readers) or 'no reader installed'})"
            + (f"; {example} is in none of these formats (empty, or not what its format needs)" if example else "")
            + "; name the format with --from to see what is wrong",
            details=reasons,
        )
    tied = [name for score, name in scores if score == scores[0][0]]
    if len(tied) > 1:
        raise ZooError(f"{path}: readable as {' and as '.join(tied)} alike; say which with "
                       + " or ".join(f"--from {n}" for n in tied))
    return scores[0][1]


def _first_annotation_like(path: Path) -> Path | None:
    """A file below ``path`` that looks like annotations (text, JSON, XML, YAML), to name in
    the error when no reader took the folder."""
    if path.is_file():
        return path
    for k, p in enumerate(sorted(path.rglob("*"))):
        if k > 2000:
            break
        if p.suffix.lower() in (".json", ".xml", ".txt", ".yaml", ".yml") and p.is_file():
            return p
    return None


def read_dataset(path: str | Path, fmt: str = "auto", labels: str | Path | None = None,
                 images: str | Path | None = None, *, registry: Registry | None = None) -> Dataset:
    """Read ``path`` with the named reader (or the detected one); ``images`` (``--images
    DIR``): the folder holding the images when the annotations live elsewhere.

    ``registry``: whose readers; the pipeline passes the one it was given (a test's plugins
    are read by that test's readers), None is the installed plugins (a script's shorthand).
    """
    path = Path(path)
    if not path.exists():
        raise ZooError(f"{path}: no such file or folder")
    refuse_unfinished(path)
    registry = registry or get_registry()
    name = detect_format(path, registry) if fmt == "auto" else fmt
    reader = registry.reader(name).load()
    kwargs = {"labels": labels}
    if images is not None:
        kwargs["images"] = image_folder(images, name, reader)
    with cyclic_gc_paused():
        dataset = reader(path, **kwargs)
    dataset.format = dataset.format or name
    return adopt_header_facts(dataset)


def image_folder(images: str | Path, reader_name: str, reader) -> Path:
    """``--images DIR`` checked: a folder, and a reader that takes it."""
    import inspect

    folder = Path(images)
    if not folder.is_dir():
        raise ZooError(f"--images {folder}: no such folder")
    if "images" not in inspect.signature(reader).parameters:
        raise ZooError(f"--images: the {reader_name} reader finds its images itself (it takes no --images)")
    return folder


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cycle collector paused while a reader runs.

    Reading makes a few objects per shape (parsed JSON, drafts, instances) and keeps nearly all
    of them, without reference cycles: the collector, started by every 700 allocations, walks
    that growing heap again and again to free nothing (a quarter of the time of reading 3,000
    labelme files, bench/README.md). Memory is still freed by reference counting; any cycle
    made meanwhile is collected once the collector runs again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
