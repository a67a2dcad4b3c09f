"""Atomic file writes for run folders: write a temporary file beside the target, then rename.

A run killed mid-write (Ctrl-C, out of memory) leaves either the old file or the new one,
never half a JSON that ``--resume`` or ``zoo compare`` would choke on. A write the file
system refuses (a full disk) removes its temporary file and is one clear error.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from zoo.errors import ZooError

#: errno -> what a write that the file system refused means for the user.
_NO_ROOM = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system (or this process's file-size limit)",
}


@contextmanager
def writing(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content becomes ``path`` only when the block ends without
    an error (for files written piece by piece; :func:`write_bytes` for bytes at hand)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)  # a full disk must not keep a half-written .tmp either
        if isinstance(e, OSError) and e.errno in _NO_ROOM:
            raise ZooError(f"{path}: could not be written: {_NO_ROOM[e.errno]}") from None
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    with writing(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    import orjson

    opts = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    return write_bytes(path, orjson.dumps(data, option=opts, default=_default) + b"\n")


def write_yaml(path: str | Path, data: Any) -> Path:
    import yaml

    return write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def read_json(path: str | Path) -> Any:
    import orjson

    return orjson.loads(Path(path).read_bytes())


def _default(obj: Any) -> Any:
    # numpy scalars that OPT_SERIALIZE_NUMPY does not cover, Paths, sets
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
