"""The sha256 of every checkpoint a run wrote, so that a file changed since is never loaded.

A run folder is something people copy, share and unpack; a checkpoint in it could be swapped
for another file. zoo therefore records each checkpoint's sha256 in the run's
``manifest.json`` (key ``checkpoints``: path relative to the run folder -> hex digest) when
it writes it, and checks it before reading it back (``zoo predict --run``, ``zoo run
--resume``). zoo's own checkpoints hold tensors only, read without unpickling code; the
check matters most where a framework's resume file is a pickle (ultralytics' ``last.pt``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from zoo.errors import ZooError

#: The manifest key that holds the records.
KEY = "checkpoints"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class Ledger:
    """The checksums of one run folder's checkpoints.

    ``hashes`` is the manifest's ``checkpoints`` dict itself (updated in place) and ``save``
    writes the manifest after each record. ``hashes=None`` is an untracked ledger (a backend
    used outside a run, or a run written before zoo recorded checksums): it records nothing
    and checks nothing, and :attr:`tracked` tells callers that nothing was verified.
    """

    def __init__(self, root: str | Path | None = None, hashes: dict[str, str] | None = None,
                 save: Callable[[], None] | None = None):
        self.root = Path(root).resolve() if root is not None else None
        self.hashes = hashes
        self._save = save

    @property
    def tracked(self) -> bool:
        return self.hashes is not None and self.root is not None

    def _key(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            raise ZooError(f"{path}: a checkpoint outside the run folder {self.root}") from None

    def record(self, *paths: str | Path) -> None:
        """Remember the current content of each file (call right after writing it)."""
        self.settle({p: sha256_file(p) for p in paths} if self.tracked else {})

    def expect(self, digest: str, *paths: str | Path) -> None:
        """Before replacing ``paths`` with content of sha256 ``digest``: accept the old
        content or the new one, so that a kill between the write and :meth:`settle` leaves
        a file the run still accepts."""
        if not self.tracked:
            return
        for p in paths:
            old = self.hashes.get(self._key(Path(p)))
            self.hashes[self._key(Path(p))] = [*([old] if isinstance(old, str) else old or []), digest]
        self._persist()

    def settle(self, digests: dict[str | Path, str]) -> None:
        """The files written: each path now has exactly the content of its digest."""
        if not self.tracked:
            return
        for p, digest in digests.items():
            self.hashes[self._key(Path(p))] = digest
        self._persist()

    def _persist(self) -> None:
        if self._save is not None:
            self._save()

    def recorded(self, path: str | Path) -> bool:
        return self.tracked and self._key(Path(path)) in self.hashes

    def verify(self, path: str | Path) -> Path:
        """``path`` if it is the file this run wrote, else a :class:`ZooError` saying why."""
        path = Path(path)
        if not self.tracked:
            return path
        key = self._key(path)
        want = self.hashes.get(key)
        if not want:
            raise ZooError(f"{path}: not a checkpoint this run wrote (no sha256 of it in "
                           f"{self.root / 'manifest.json'}); refusing to load it")
        if not path.is_file():
            raise ZooError(f"{path}: missing; this run folder is incomplete")
        if sha256_file(path) not in ([want] if isinstance(want, str) else want):
            raise ZooError(f"{path}: changed since its run wrote it (sha256 differs from the one in "
                           f"{self.root / 'manifest.json'}); refusing to load it")
        return path

    def verify_all(self, under: str = "") -> list[Path]:
        """Every recorded file (below ``under``, a folder relative to the run), checked."""
        if not self.tracked:
            return []
        prefix = under.rstrip("/") + "/" if under else ""
        return [self.verify(self.root / k) for k in sorted(self.hashes) if k.startswith(prefix)]


class FollowerLedger(Ledger):
    """The ledger of a process that reads a run another process writes (a rank other than 0
    under a launcher, zoo.training.distributed): it records nothing, and checks each file against
    the sha256 the writer has saved in ``manifest.json`` by then."""

    def __init__(self, root: str | Path, key: str = KEY):
        super().__init__(root, {})
        self.key = key

    def expect(self, digest: str, *paths: str | Path) -> None:
        pass

    def settle(self, digests: dict[str | Path, str]) -> None:
        pass

    def verify(self, path: str | Path) -> Path:
        import json

        manifest = json.loads((self.root / "manifest.json").read_text(encoding="utf-8"))
        self.hashes = manifest.get(self.key) or {}
        return super().verify(path)
