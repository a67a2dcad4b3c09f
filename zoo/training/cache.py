"""Training pixels decoded once per run, as nnU-Net preprocesses once.

A backend's sample function (a :class:`DecodedOnce`: the dense networks', the R-CNNs',
yolact's, the classifiers') turns a record into arrays at the training size (decoded by
:mod:`zoo.pixels`, oriented, through the intensity rule, resized or letterboxed, with the
targets drawn to match); before the first epoch :meth:`PixelCache.fill` runs it once per
training image, and every epoch's augmentation starts from :meth:`PixelCache.get`'s
arrays. They stay in memory while they fit in :data:`MEMORY_SHARE` of the machine's RAM; past that every array goes to one file
in the run's ``work/`` folder, read through a memory map (the page cache holds what fits,
the process's own memory stays flat), and a ``--resume`` of the same run reuses the file
when the images and the settings that made it are unchanged.

The file is raw bytes and a JSON index (offsets, dtypes, shapes), never a pickle: a cache
file that was tampered with can give wrong pixels, never run code; one whose size does not
match its index is rebuilt.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.atomic import write_json
from zoo.errors import ZooError
from zoo.pixels import split_frame
from zoo.progress import track
from zoo.training.distributed import initialised, world

#: The share of the machine's RAM the decoded pixels may take before they go to disk.
MEMORY_SHARE = 0.25

_RECORDS: list[dict[str, Any]] = []  # what each cache held, for the run's manifest (zoo.pipeline.run)


def ram_bytes() -> int:
    """The machine's physical memory (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def memory_budget() -> int:
    """How many bytes of decoded pixels stay in memory: :data:`MEMORY_SHARE` of the RAM."""
    return int(ram_bytes() * MEMORY_SHARE)


def cache_folder(work_dir: Path) -> Path:
    """Where a run keeps its decoded pixels: ``work/pixels``, one folder per rank under a
    launcher (each rank decodes its own copy; none reads a file another is writing)."""
    folder = Path(work_dir) / "pixels"
    return folder / f"rank{world().rank}" if initialised() else folder


def source_stamp(record: Any) -> list:
    """What says a record's pixels are still the ones cached: its file's size and mtime."""
    file = getattr(record, "file", None)
    if file is None:
        return [None, None]
    path, _ = split_frame(file)
    try:
        st = Path(path).stat()
    except OSError:
        return [None, None]
    return [st.st_size, st.st_mtime_ns]


def annotated_stamp(record: Any) -> list:
    """:func:`source_stamp` and a checksum of the record's annotations: for arrays drawn from
    them too (label maps, boxes, masks), which an edited annotation file must remake."""
    instances = getattr(record, "instances", None)
    width, height = getattr(record, "width", None), getattr(record, "height", None)
    return [*source_stamp(record), zlib.crc32(repr((instances, width, height)).encode())]


class PixelCache:
    """``record id -> tuple of arrays``, made once by :meth:`fill`.

    name:          the file's name in ``folder`` (one cache per backend's sample shape)
    folder:        where the arrays go when they outgrow memory (the run's ``work/``);
                   None keeps everything in memory
    params:        the settings the arrays depend on (training size, letterbox, intensity
                   rule): a saved file made with others is not reused
    memory_bytes:  the in-memory limit (default :func:`memory_budget`)
    stamp:         ``stamp(record) -> list``: what says a saved record is still the same
                   (default :func:`source_stamp`, its file's size and mtime; a backend whose
                   arrays hold annotations adds theirs)
    """

    def __init__(self, name: str, folder: Path | None, params: dict[str, Any], memory_bytes: int | None = None,
                 stamp: Callable[[Any], list] | None = None):
        self.name, self.folder = name, Path(folder) if folder is not None else None
        self.stamp = stamp or source_stamp
        self.params = json.loads(json.dumps(params, default=str))  # as the index will hold them
        self.limit = memory_budget() if memory_bytes is None else memory_bytes
        self.held: dict[str, tuple[np.ndarray, ...]] = {}  # in memory
        self.stamps: dict[str, list] = {}  # id -> source_stamp, for the file's index
        self.index: dict[str, dict[str, Any]] = {}  # on disk: id -> {"stamp", "arrays": [[offset, dtype, shape]]}
        self.nbytes = 0
        self._map: np.memmap | None = None

    # -- where the file is --------------------------------------------------------------------

    @property
    def data_path(self) -> Path:
        return self.folder / f"{self.name}.bin"

    @property
    def index_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    @property
    def on_disk(self) -> bool:
        return bool(self.index)

    # -- filling --------------------------------------------------------------------------------

    def fill(self, records: Sequence[Any], make: Callable[[Any], tuple[np.ndarray, ...]],
             description: str = "decode") -> PixelCache:
        """``make(record)`` once for each record (a saved file's arrays where it is still
        good), kept in memory while they fit, else all on disk."""
        if self.folder is not None and self._reuse(records):
            return self._opened()
        for record in track(list(records), f"{description}: pixels once", total=len(records)):
            arrays = tuple(np.ascontiguousarray(a) for a in make(record))
            self._add(str(record.id), self.stamp(record), arrays)
        if self.on_disk:
            self._write_index()
            return self._opened()
        _RECORDS.append(self.summary())
        return self

    def _add(self, key: str, stamp: list, arrays: tuple[np.ndarray, ...]) -> None:
        size = sum(a.nbytes for a in arrays)
        self.stamps[key] = stamp
        if not self.on_disk and (self.folder is None or self.nbytes + size <= self.limit):
            self.held[key] = arrays
            self.nbytes += size
            return
        if not self.on_disk:  # the first array past the limit: everything moves to the file
            self.folder.mkdir(parents=True, exist_ok=True)
            self.data_path.write_bytes(b"")
            self.nbytes, held, self.held = 0, self.held, {}
            for k, a in held.items():
                self._append(k, a)
        self._append(key, arrays)

    def _append(self, key: str, arrays: tuple[np.ndarray, ...]) -> None:
        entry = []
        try:
            with open(self.data_path, "ab") as f:
                for a in arrays:
                    entry.append([self.nbytes, a.dtype.str, list(a.shape)])
                    f.write(a.tobytes())
                    self.nbytes += a.nbytes
        except OSError as e:
            raise ZooError(f"{self.data_path}: the decoded training pixels could not be written ({e.strerror}); "
                           "free some disk space") from None
        self.index[key] = {"stamp": self.stamps[key], "arrays": entry}

    def _write_index(self) -> None:
        write_json(self.index_path, {"params": self.params, "bytes": self.nbytes, "entries": self.index})

    def _reuse(self, records: Sequence[Any]) -> bool:
        """Whether the saved file holds every record's arrays made with these settings from
        the same files (a resumed run); if so its index is adopted."""
        try:
            saved = json.loads(self.index_path.read_text())
            size = self.data_path.stat().st_size
        except (OSError, ValueError):
            return False
        try:
            entries = saved["entries"]
            if saved["params"] != self.params or size != saved["bytes"]:
                return False
            if any(entries.get(str(r.id), {}).get("stamp") != self.stamp(r) for r in records):
                return False
            arrays = [a for e in entries.values() for a in e["arrays"]]
            if any(np.dtype(d).kind not in "biuf" for _, d, _ in arrays):  # numbers only: never objects
                return False
            if any(o < 0 or o + int(np.dtype(d).itemsize * np.prod(s)) > size for o, d, s in arrays):
                return False
        except (KeyError, TypeError, ValueError, AttributeError):  # an index zoo did not write as it reads it
            return False
        self.index, self.nbytes = entries, size
        return True

    def _opened(self) -> PixelCache:
        self._map = np.memmap(self.data_path, dtype=np.uint8, mode="r") if self.nbytes else None
        _RECORDS.append(self.summary())
        return self

    # -- reading ----------------------------------------------------------------------------------

    def get(self, key: str) -> tuple[np.ndarray, ...] | None:
        """The arrays of ``key`` (read-only views of the file when on disk); None if not cached."""
        if not self.on_disk:
            return self.held.get(key)
        entry = self.index.get(key)
        if entry is None:
            return None
        if self._map is None:  # after unpickling in a loader worker
            self._map = np.memmap(self.data_path, dtype=np.uint8, mode="r")
        out = []
        for offset, dtype, shape in entry["arrays"]:
            n = int(np.dtype(dtype).itemsize * np.prod(shape))
            out.append(self._map[offset:offset + n].view(dtype).reshape(shape))
        return tuple(out)

    def __contains__(self, key: str) -> bool:
        return key in (self.index if self.on_disk else self.held)

    def __len__(self) -> int:
        return len(self.index if self.on_disk else self.held)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_map"] = None  # a worker maps the file itself
        return state

    def summary(self) -> dict[str, Any]:
        """Where the pixels are and how much they take, for the manifest."""
        return {"images": len(self), "bytes": self.nbytes, "where": "disk" if self.on_disk else "memory",
                "memory_limit_bytes": self.limit}


class DecodedOnce:
    """A sample function in two halves, so that the first runs once per run: ``decode(record)``
    (the deterministic part: pixels through the intensity rule at the training size, and the
    targets drawn to match, as numeric arrays) and ``sample(arrays)`` (every step: the random
    augmentation and the tensors). :meth:`decode_once` fills a :class:`PixelCache` with every
    training record's ``decode``; a record it does not hold is decoded as it comes.
    Subclasses set :attr:`cache_name`, :attr:`decoding` (what the progress bar says) and
    :meth:`params` (the settings ``decode`` depends on), and stay picklable for DataLoader
    workers."""

    cache_name = "decoded"
    decoding = "resize"
    cache: PixelCache | None = None

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def decode(self, record: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def sample(self, arrays: tuple[np.ndarray, ...]) -> Any:
        raise NotImplementedError

    def decode_once(self, records: Sequence[Any], folder: Path | None) -> None:
        """Every record's ``decode`` made once, before the first epoch (``folder``: where the
        arrays go when they outgrow memory, the run's :func:`cache_folder`; None keeps them
        in memory)."""
        intensity = sorted({r.intensity.spec for r in records if getattr(r, "intensity", None) is not None})
        self.cache = PixelCache(self.cache_name, folder, {**self.params(), "intensity": intensity},
                                stamp=annotated_stamp).fill(records, self.decode, self.decoding)

    def __call__(self, record: Any) -> Any:
        arrays = self.cache.get(str(record.id)) if self.cache is not None else None
        return self.sample(arrays if arrays is not None else self.decode(record))


def mark() -> int:
    return len(_RECORDS)


def records_since(position: int) -> list[dict[str, Any]]:
    return [dict(r) for r in _RECORDS[position:]]
