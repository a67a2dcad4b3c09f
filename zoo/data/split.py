"""The reproducible train / val (/ test) split: the same data and seed give the same split
for every backend, which is what makes ``zoo compare`` fair.

* Deterministic from content, not from reading order: images are sorted by id, and the
  dataset is identified by :func:`data_hash` (image ids, sizes, labels and every
  annotation; not the pixels, which would mean reading every image).
* Stratified by :meth:`zoo.tasks.Task.stratum` (the image's main category, or its class
  for classify): each stratum gives the held-out splits its share, rounded by the largest
  remainder so that the totals are exact. A stratum of one image cannot be split; it simply
  lands where its share rounds to.
* Images the task cannot use (:meth:`zoo.tasks.Task.is_annotated`, e.g. an image with no
  or several class labels for classify) are left out and listed in ``excluded``.
* The randomness is ``random.Random(f"{seed}:{stratum}")``: string seeds are hashed with
  SHA-512 by the standard library, stable across Python versions and platforms.

Where it comes from (``--split``):

* ``auto`` (default): the split the data itself defines when it has one with both a training
  and an evaluation part (``train/`` and ``val/`` or ``test/`` folders, VOC ImageSets, COCO
  ``instances_train`` / ``instances_val`` files; :attr:`zoo.dataset.Dataset.splits`), else a
  seeded one as above. A source with ``train`` and ``test`` but no ``val`` is scored on
  ``test``. Images in none of its parts, or unusable for the task, are excluded;
* ``random``: always the seeded split, whatever the data defines;
* a ``split.json`` file (e.g. another run's): reused as it is, refused if the data changed.

Model selection (:mod:`zoo.selection`) takes its images from the training part, never from
val or test: :func:`carve_selection` sets aside ``--select-frac`` of the training images,
seeded and stratified like the rest, as ``selection`` (empty when the protocol scores
nothing during training).

Written to ``split.json`` in each run folder (``source`` says which of the above).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.tasks import Task

SPLIT_VERSION = 1


@dataclass
class Split:
    """Image ids per split and what they were drawn from."""

    task: str
    seed: int
    val_fraction: float
    test_fraction: float
    data_hash: str
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    #: carved from the training images for model selection (zoo.selection); never scored
    selection: list[str] = field(default_factory=list)
    selection_fraction: float = 0.0
    stratified: bool = True
    source: str = "seeded"  # "seeded", or "data" (the split the dataset defines)
    version: int = SPLIT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "split.json") -> Split:
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as e:
            raise ZooError(f"{where}: not a zoo split file ({e})") from None

    @property
    def key(self) -> str:
        """A short fingerprint of the split itself (which ids went where)."""
        h = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            h.update("\n".join(part).encode())
            h.update(b"\0")
        if self.selection:  # only then: splits without one keep the key they always had
            h.update(b"selection\0" + "\n".join(self.selection).encode())
        return h.hexdigest()[:16]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "selection": len(self.selection), "val": len(self.val),
                "test": len(self.test), "excluded": len(self.excluded)}


def data_hash(dataset: Dataset) -> str:
    """SHA-256 over the vocabularies and every image's id, size, labels and annotations."""
    import orjson

    h = hashlib.sha256()
    vocab = {
        "categories": dataset.categories,
        "classes": dataset.classes,
        "keypoint_names": dataset.keypoint_names,
        "skeleton": [list(s) for s in dataset.skeleton],
    }
    h.update(orjson.dumps(vocab, option=orjson.OPT_SORT_KEYS))
    for r in sorted(dataset.images, key=lambda r: r.id):
        rec = {
            "id": r.id,
            "size": [r.width, r.height],
            "labels": sorted(r.labels),
            "instances": [
                [i.category, [round(v, 4) for v in i.bbox], i.polygons, i.mask,
                 i.keypoints, i.ignore]
                for i in r.instances
            ],
        }
        if r.scored_only:  # a COCO file's zero-area annotations: the scored ground truth changes
            rec["scored_only"] = [i.coco for i in r.scored_only]
        h.update(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=_plain))
        h.update(b"\n")
    return h.hexdigest()


def _plain(obj: Any) -> Any:
    # RLE counts may be bytes (pycocotools' own type); the hash must not care which.
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("ascii")
    raise TypeError(type(obj).__name__)


def _counts(n: int, val: float, test: float) -> tuple[int, int]:
    """How many images go to val and test: at least one each when asked for, and at
    least one left to train on."""
    n_val = max(1, round(n * val)) if val > 0 else 0
    n_test = max(1, round(n * test)) if test > 0 else 0
    if n_val + n_test >= n:
        raise ZooError(
            f"{n} usable image(s) cannot be split into train, val ({val:g}) and test ({test:g}): "
            "add images or lower --val / --test"
        )
    return n_val, n_test


def _largest_remainder(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """Share ``total`` among strata in proportion to their sizes, exactly."""
    n = sum(sizes.values())
    raw = {s: total * c / n for s, c in sizes.items()}
    out = {s: math.floor(v) for s, v in raw.items()}
    left = total - sum(out.values())
    # Ties broken by the larger stratum, then by name: deterministic.
    for s in sorted(raw, key=lambda s: (-(raw[s] - out[s]), -sizes[s], s))[:left]:
        out[s] += 1
    return out


def make_split(dataset: Dataset, task: Task, *, val: float = 0.2, test: float = 0.0,
               seed: int = 0, digest: str | None = None) -> Split:
    """Split ``dataset`` for ``task`` (see module doc)."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ZooError(f"--val {val:g} and --test {test:g} must be fractions that sum below 1")
    usable = sorted((r for r in dataset.images if task.is_annotated(r)), key=lambda r: r.id)
    excluded = sorted(r.id for r in dataset.images if not task.is_annotated(r))
    n_val, n_test = _counts(len(usable), val, test)

    strata: dict[str, list[str]] = defaultdict(list)
    for r in usable:
        strata[task.stratum(r)].append(r.id)
    sizes = {s: len(ids) for s, ids in strata.items()}
    val_share = _largest_remainder(n_val, sizes)
    # The test share is drawn from what val left behind, so the totals stay exact.
    left = {s: sizes[s] - val_share[s] for s in sizes}
    test_share = _largest_remainder(n_test, left) if n_test and sum(left.values()) else {s: 0 for s in sizes}

    train, val_ids, test_ids = [], [], []
    for s in sorted(strata):
        ids = list(strata[s])
        random.Random(f"{seed}:{s}").shuffle(ids)
        a, b = val_share[s], val_share[s] + test_share[s]
        val_ids += ids[:a]
        test_ids += ids[a:b]
        train += ids[b:]
    return Split(
        task=task.name, seed=seed, val_fraction=val, test_fraction=test,
        data_hash=digest or data_hash(dataset),
        train=sorted(train), val=sorted(val_ids), test=sorted(test_ids), excluded=excluded,
        stratified=len(strata) > 1,
    )


def carve_selection(split: Split, dataset: Dataset, task: Task, fraction: float) -> Split:
    """``split`` with ``fraction`` of its training images set aside as the selection split.

    Seeded (``seed:selection:stratum``) and stratified like :func:`make_split`, drawn from
    the training images only (any earlier selection goes back into that pool first, so the
    result depends only on the split's training part, the seed and ``fraction``). At least
    one image is set aside and at least one left to train on. ``fraction`` 0: no selection
    split, every training image trains.
    """
    pool = sorted(split.train + split.selection)
    if fraction <= 0:
        return replace(split, train=pool, selection=[], selection_fraction=0.0)
    if not fraction < 1:
        raise ZooError(f"--select-frac {fraction:g}: expected a fraction of the training images, below 1")
    n = max(1, round(len(pool) * fraction))
    if n >= len(pool):
        raise ZooError(
            f"{len(pool)} training image(s) cannot spare a selection split (--select-frac {fraction:g}): "
            "add images, or use --select last"
        )
    by_id = {r.id: r for r in dataset.images}
    strata: dict[str, list[str]] = defaultdict(list)
    for image_id in pool:
        strata[task.stratum(by_id[image_id])].append(image_id)
    share = _largest_remainder(n, {s: len(ids) for s, ids in strata.items()})
    chosen: list[str] = []
    for s in sorted(strata):
        ids = list(strata[s])
        random.Random(f"{split.seed}:selection:{s}").shuffle(ids)
        chosen += ids[: share[s]]
    taken = set(chosen)
    return replace(split, train=[i for i in pool if i not in taken], selection=sorted(chosen),
                   selection_fraction=fraction)


def write_split(split: Split, path: Path) -> None:
    from zoo.atomic import write_json

    write_json(path, split.to_dict())


def read_split(path: str | Path) -> Split:
    import orjson

    path = Path(path)
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as e:
        raise ZooError(f"{path}: cannot read split ({e.strerror or e})") from None
    except orjson.JSONDecodeError:
        raise ZooError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict):
        raise ZooError(f"{path}: not a zoo split file")
    return Split.from_dict(data, str(path))


def check_split(split: Split, dataset: Dataset, task: Task, digest: str, where: str) -> None:
    """Refuse a split made for other data or another task: scores would not be comparable."""
    if split.task != task.name:
        raise ZooError(f"{where}: split was made for task {split.task}, not {task.name}")
    if split.data_hash != digest:
        ids = {r.id for r in dataset.images}
        missing = [i for i in (*split.train, *split.selection, *split.val, *split.test) if i not in ids]
        detail = f" ({len(missing)} of its images are gone, e.g. {missing[0]})" if missing else ""
        raise ZooError(
            f"{where}: the data changed since this split was made{detail}; "
            "start a new run (or drop --split) to split the current data"
        )


def source_split(dataset: Dataset, task: Task, *, seed: int = 0, digest: str | None = None) -> Split | None:
    """The split the data itself defines (see module doc), or None when it has none usable."""
    parts = {k.lower(): v for k, v in (dataset.splits or {}).items()}
    train_ids = parts.get("train") or parts.get("trainval")
    eval_name = "val" if parts.get("val") else "test" if parts.get("test") else None
    if not train_ids or eval_name is None:
        return None
    usable = {r.id for r in dataset.images if task.is_annotated(r)}
    train = sorted(set(train_ids) & usable)
    val = sorted((set(parts[eval_name]) & usable) - set(train))
    test = sorted((set(parts.get("test") or []) & usable) - set(train) - set(val)) if eval_name == "val" else []
    if not train or not val:
        return None
    placed = set(train) | set(val) | set(test)
    return Split(
        task=task.name, seed=seed, val_fraction=round(len(val) / max(1, len(placed)), 4),
        test_fraction=round(len(test) / max(1, len(placed)), 4), data_hash=digest or data_hash(dataset),
        train=train, val=val, test=test, excluded=sorted(r.id for r in dataset.images if r.id not in placed),
        stratified=False, source="data",
    )


def choose_split(how: str | Path | None, dataset: Dataset, task: Task, *, val: float, test: float, seed: int,
                 digest: str) -> Split:
    """``--split``: ``auto`` / ``random`` / a split.json path (see module doc)."""
    how = "auto" if how is None else how
    if str(how) in ("auto", "random"):
        if str(how) == "auto":
            split = source_split(dataset, task, seed=seed, digest=digest)
            if split is not None:
                return split
        return make_split(dataset, task, val=val, test=test, seed=seed, digest=digest)
    path = Path(how)
    if not path.is_file():
        raise ZooError(f"--split {how}: expected auto, random or a split.json file")
    split = read_split(path)
    check_split(split, dataset, task, digest, str(path))
    return split
