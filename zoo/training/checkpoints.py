"""Checkpoints: written atomically and recorded in the run's ledger, read back without
unpickling code, restored with a check of what they were trained for."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.atomic import write_bytes
from zoo.checksums import Ledger
from zoo.errors import ZooError

LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(state: dict[str, Any], path: Path, *, copies: Sequence[Path] = (),
                    ledger: Ledger | None = None) -> Path:
    """Write atomically (a temporary file beside it, then a rename): an interrupted or failed
    save (a full disk) never leaves a truncated ``last.pt`` nor a temporary file behind.

    ``copies`` get the same content (hard links, see :func:`copy_checkpoint`). With ``ledger``
    (the run's checksums) the new sha256 is recorded before the files are replaced, the old
    one dropped after: killed at any moment, the run holds checkpoints its ledger accepts.
    """
    import hashlib
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    if ledger is not None:
        ledger.expect(digest, path, *copies)
    write_bytes(path, data)
    for copy in copies:
        copy_checkpoint(path, copy)
    if ledger is not None:
        ledger.settle(dict.fromkeys([path, *copies], digest))
    return path


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """``dst`` with ``src``'s content: a hard link where the file system allows (no second
    write of a large file; a later atomic replace of ``src`` leaves ``dst`` untouched)."""
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave best.pt.tmp behind
        raise
    return dst


def load_checkpoint(path: str | Path, map_location: Any = "cpu", *, trust: bool = False) -> dict[str, Any]:
    """A checkpoint written by :func:`fit` (or any plain state dict), as a dict.

    Only tensors and plain values are read (``weights_only``): unpickling a file can run any
    code in it. ``trust=True`` (``--trust-weights``, for a user's own starting weights) lifts
    that for a file that needs it.
    """
    import pickle
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no checkpoint there (train first, or point --weights at a .pt file)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's pickle-protocol warnings: the error below says it all
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            if not trust:
                raise ZooError(f"{path}: not a readable checkpoint: {_refused(e)}; zoo reads only tensors, since "
                               "unpickling can run any code (a starting-weights file you trust loads with "
                               "--trust-weights)") from None
        except Exception as e:  # corrupt file, not a torch file
            raise ZooError(f"{path}: not a readable checkpoint ({_first_line(e)})") from None
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e:
            raise ZooError(f"{path}: not a readable checkpoint ({_first_line(e)})") from None


def weights_of(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """The state dict in a starting-weights file: a zoo checkpoint (its ``model``), a plain
    state dict, or (``trust`` only: a pickle) a whole saved module."""
    state = load_checkpoint(path, trust=trust)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if callable(getattr(state, "state_dict", None)):
        state = state.state_dict()
    if not isinstance(state, dict) or not state:
        raise ZooError(f"{path}: holds no model weights (expected a state dict)")
    return state


def _refused(err: Exception) -> str:
    """What torch's weights-only reader refused, in a few words (its message is a page long)."""
    import re

    m = re.search(r"GLOBAL ([\w.]+)", str(err))
    if m:
        return f"it holds a pickled object ({m.group(1)})"
    m = re.search(r"WeightsUnpickler error: (.+)", str(err), re.DOTALL)
    return f"not plain tensors ({m.group(1).strip().splitlines()[0] if m else 'a pickle or not a torch file'})"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def best_checkpoint(checkpoint_dir: str | Path) -> Path:
    """``best.pt`` when there is one, else ``last.pt`` (the path, which may not exist)."""
    d = Path(checkpoint_dir)
    return d / BEST if (d / BEST).is_file() else d / LAST


def restore(model: Any, checkpoint_dir: str | Path, expect: dict[str, Any] | None = None,
            ledger: Ledger | None = None) -> Path:
    """Load the best (else last) checkpoint in ``checkpoint_dir`` into ``model``.

    A checkpoint records what it was trained for in ``extra`` (classes, architecture, ...);
    each key of ``expect`` that it records must match, so a model is never silently
    restored onto another dataset's vocabulary. ``ledger`` (the run's checksums) refuses a
    file changed since the run wrote it. Returns the checkpoint's path.
    """
    path = best_checkpoint(checkpoint_dir)
    if ledger is not None:
        ledger.verify(path)
    state = load_checkpoint(path)
    saved = state.get("extra", {})
    for key, value in (expect or {}).items():
        if key in saved and saved[key] != value:
            raise ZooError(f"{path}: checkpoint was trained on {key} {saved[key]!r}, but this run has {value!r}")
    model.load_state_dict(state["model"])
    return path
