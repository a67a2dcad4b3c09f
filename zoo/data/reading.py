"""Reading any annotation folder into the canonical Dataset, format detected or named."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.dataset import Dataset
from zoo.errors import DataError, ZooError
from zoo.registry import get_registry

#: Left in an output folder while ``zoo convert`` writes it, removed when it has finished: a
#: folder holding it is a partial output (the conversion was killed or failed) and is not read.
UNFINISHED = ".zoo-unfinished"


def refuse_unfinished(path: Path) -> None:
    """A :class:`DataError` when ``path`` (or the folder of a file) is an unfinished output."""
    folder = path if path.is_dir() else path.parent
    if (folder / UNFINISHED).exists():
        raise DataError(folder, f"an unfinished `zoo convert` output ({UNFINISHED} is there: the conversion "
                                "was interrupted or failed); convert again into a new folder")


def detect_format(path: Path) -> str:
    """The reader whose sniffer is most confident about ``path``."""
    refuse_unfinished(path)
    registry = get_registry()
    scores = []
    for spec in registry.readers.values():
        sniff = spec.load_sniffer()
        if sniff is not None:
            scores.append((float(sniff(path)), spec.name))
    scores.sort(reverse=True)
    if not scores or scores[0][0] <= 0:
        example = _first_annotation_like(path)
        raise ZooError(
            f"{path}: no annotations found that zoo can read "
            f"(looked for: {', '.join(registry.readers) or 'no reader installed'})"
            + (f"; {example} is in none of these formats (empty, or not what its format needs)" if example else "")
            + "; name the format with --from to see what is wrong"
        )
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


def read_dataset(path: str | Path, fmt: str = "auto", labels: str | Path | None = None) -> Dataset:
    """Read ``path`` with the named reader (or the detected one)."""
    path = Path(path)
    if not path.exists():
        raise ZooError(f"{path}: no such file or folder")
    refuse_unfinished(path)
    name = detect_format(path) if fmt == "auto" else fmt
    reader = get_registry().reader(name).load()
    with cyclic_gc_paused():
        dataset = reader(path, labels=labels)
    dataset.format = dataset.format or name
    return dataset


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
