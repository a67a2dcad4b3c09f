"""Fetching pretrained weights into a framework's own cache, verified, once.

``pretrained: true`` (``--pretrained``) starts a backend from published weights. Each
backend names the file, its URL and the cache path where its framework looks for it
(torch hub's ``checkpoints/``, ultralytics' assets, detectron2's model zoo); :func:`fetch`
makes that file exist:

- a file already in the cache is used as it is (no request), after the same check as a
  fresh one;
- otherwise it is downloaded with a progress bar into a temporary file beside the target,
  its sha256 checked where the source publishes one (a mismatch is refused and the partial
  file deleted), then renamed into place, so the framework later finds it offline;
- ``ZOO_WEIGHTS_MIRROR=URL`` fetches the same file name from ``URL/<name>`` (an internal
  mirror, as hospital networks need);
- ``ZOO_OFFLINE=1``, or no network, fails at once with one line: the file, its URL and
  where to put it.

Every file used is recorded (path, URL, sha256); a run writes the records made while it
trained into its manifest (key ``weights``): :func:`mark` then :func:`records_since`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from zoo import progress
from zoo.atomic import writing
from zoo.checksums import sha256_file
from zoo.errors import ZooError

_log = logging.getLogger("zoo.training.fetch")

#: Seconds to wait for a server before calling the network unreachable.
TIMEOUT = 15
_CHUNK = 1 << 20
#: Every weights file used in this process, in order (see :func:`records_since`).
_RECORDS: list[dict[str, Any]] = []


def mark() -> int:
    """A position in the record list: :func:`records_since` returns what came after it."""
    return len(_RECORDS)


def records_since(position: int) -> list[dict[str, Any]]:
    return [dict(r) for r in _RECORDS[position:]]


def offline() -> bool:
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def source_url(url: str, mirror_path: str | None = None) -> str:
    """Where the file is fetched from: ``url``, or on the mirror ``mirror_path`` (default:
    the same file name)."""
    mirror = os.environ.get("ZOO_WEIGHTS_MIRROR", "").strip()
    if not mirror:
        return url
    return f"{mirror.rstrip('/')}/{mirror_path or url.rsplit('/', 1)[-1]}"


def fetch(url: str, dest: str | Path, *, sha256: str | None = None, sha256_prefix: str | None = None,
          check_cached: bool = True, mirror_path: str | None = None, what: str = "pretrained weights") -> Path:
    """``dest``, downloaded from ``url`` (or the mirror) unless it is already there.

    ``sha256`` (the full digest) or ``sha256_prefix`` (what torch hub checks: the hex
    after the last ``-`` of the file name) is what the source publishes; a file that does
    not match it, cached or fetched, is refused. ``check_cached=False`` checks only what
    is downloaded, as torch.hub does (a file someone put in its cache is taken as theirs).
    ``mirror_path``: the file's path on a mirror when its name alone is not unique (the
    Hugging Face hub's ``<repo>/resolve/<revision>/<file>``).
    """
    dest = Path(dest)
    if dest.is_file():
        digest = _check(dest, url, sha256 if check_cached else None,
                        sha256_prefix if check_cached else None, what, cached=True)
        _record(dest, url, digest, fetched=False)
        return dest
    src = source_url(url, mirror_path)
    if offline():
        raise ZooError(f"{what}: {dest.name} is not cached and ZOO_OFFLINE is set; "
                       f"download {src} and put it at {dest}")
    digest = _download(src, dest, sha256, sha256_prefix, what)
    _record(dest, src, digest, fetched=True)
    return dest


def _record(path: Path, url: str, digest: str, fetched: bool) -> None:
    _RECORDS.append({"file": str(path), "url": url, "sha256": digest, "fetched": fetched})


def _check(path: Path, url: str, sha256: str | None, prefix: str | None, what: str, cached: bool) -> str:
    digest = sha256_file(path)
    _refuse_mismatch(digest, sha256, prefix, path, url, what, cached)
    return digest


def _refuse_mismatch(digest: str, sha256: str | None, prefix: str | None, path: Path, url: str,
                     what: str, cached: bool) -> None:
    want = (sha256 or prefix or "").lower()
    if want and not digest.startswith(want):
        where = f"the cached {path}" if cached else f"{url}"
        fix = "delete it to fetch it again" if cached else "the download was refused and nothing was kept"
        raise ZooError(f"{what}: {where} has sha256 {digest[:16]}..., but the source publishes {want}: "
                       f"a corrupt or substituted file; {fix}")


def _download(src: str, dest: Path, sha256: str | None, prefix: str | None, what: str) -> str:
    import urllib.error
    import urllib.request

    _log.info("fetching %s -> %s", src, dest)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(src, timeout=TIMEOUT) as response, writing(dest) as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            for block in _progress(response, total, dest.name):
                h.update(block)
                out.write(block)
            # checked before the block ends: a mismatch leaves no file, not even the partial one
            _refuse_mismatch(h.hexdigest(), sha256, prefix, dest, src, what, cached=False)
    except urllib.error.HTTPError as e:
        raise ZooError(f"{what}: {src} answered HTTP {e.code} ({e.reason}); "
                       f"download {dest.name} elsewhere and put it at {dest}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        if isinstance(e, OSError) and getattr(e, "filename", None):
            raise
        reason = getattr(e, "reason", e)
        raise ZooError(f"{what}: cannot fetch {src} (no network? {reason}); "
                       f"download it on a machine with network and put it at {dest}") from None
    return h.hexdigest()


def _progress(response, total: int | None, name: str):
    """The response's blocks, with a bar (zoo.progress: only on a terminal)."""
    blocks = iter(lambda: response.read(_CHUNK), b"")
    if not progress.enabled():
        yield from blocks
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"fetching {name}", total=total)
        for block in blocks:
            bar.update(task, advance=len(block))
            yield block
