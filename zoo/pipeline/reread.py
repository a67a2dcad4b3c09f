"""A finished run's images, read again from where the run read them: what ``zoo export``'s
parity (val) and the fold ensembles (test) predict and score."""

from __future__ import annotations

from pathlib import Path

from zoo.data.split import data_hash
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.pipeline.options import Source
from zoo.pipeline.predict import recorded_intensity
from zoo.pipeline.prepare import read_input
from zoo.pipeline.runfolder import RunFolder
from zoo.registry import get_registry


def run_images(run_dir: Path, split: str = "val", *, data: Path | None = None, labels: Path | None = None,
               registry=None) -> Dataset:
    """A run's ``split`` images with their ground truth, read again from where the run read
    them (``data`` when it moved) and checked to be the same data (the manifest's hash)."""
    from dataclasses import replace

    folder = RunFolder(run_dir)
    m = folder.manifest()
    source = data if data is not None else (None if m.data.path == "demo" else Path(m.data.path))
    if source is not None and not Path(source).exists():
        raise ZooError(f"{source}: the run's data is not there any more; pass --data where it is now")
    fmt = m.data.format or "auto" if data is None else "auto"
    dataset, _ = read_input(Source(path=source, fmt=fmt, labels=labels), registry or get_registry())
    if data_hash(dataset) != m.data.hash:
        raise ZooError(f"{source or 'the demo data'}: not the data {run_dir} was trained on (its hash differs); "
                       "pass --data (and --labels) as the run had them")
    ids = getattr(folder.read_split(), split) or []
    if not ids:
        raise ZooError(f"{run_dir}: the run has no {split} images")
    images = dataset.subset(ids)
    rule = recorded_intensity(run_dir)  # decoded as the run decoded them
    return replace(images, images=[replace(r, intensity=rule) for r in images.images])
