"""Label names and record ids made safe as file and folder names inside an output folder:
never a separator, never ``..``, never longer than a filesystem allows, never outside ``out``.
Writers name their files through here, and a backend that must know a writer's folder names
(a classify folder per class) asks here too."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from zoo.errors import DataError

_UNSAFE = re.compile(r"[^\w\-. ]+", re.UNICODE)


def safe_name(name: str) -> str:
    """A label name made safe as ONE path component (``tv/monitor`` -> ``tv_monitor``,
    ``../x`` -> ``__x``): never a separator, never ``.``/``..``, never empty."""
    s = _UNSAFE.sub("_", name.replace("/", "_").replace("\\", "_")).strip()
    s = re.sub(r"\.{2,}", "_", s)
    s = s.lstrip(".") or "_"
    return shorten_name(s)


MAX_NAME_BYTES = 200  # of one path component: filesystems allow 255 bytes, and _2 may be added


def shorten_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes, keeping its extension (``.jpg``) and whole
    characters."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10:
        stem, ext = name, ""
    else:
        ext = "." + ext
    budget = limit - len(ext.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore") + ext


def safe_relpath(rel: str, out: Path) -> Path:
    """``out / rel`` for a record id, proved to stay inside ``out`` (ids come from the
    user's folder structure and could hold ``..``)."""
    parts = [safe_name(p) for p in PurePosixPath(rel.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    target = out.joinpath(*parts) if parts else out / "_"
    base = out.resolve()
    if not target.resolve().is_relative_to(base):
        raise DataError(rel, f"would be written outside {out}")
    return target


def unique_safe_names(names: list[str]) -> list[str]:
    """safe_name of each, made unique (``a/b`` and ``a_b`` must not share a folder)."""
    out, used = [], set()
    for n in names:
        s = base = safe_name(n)
        k = 2
        while s.lower() in used:
            s = f"{base}_{k}"
            k += 1
        used.add(s.lower())
        out.append(s)
    return out
