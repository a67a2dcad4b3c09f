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

Groups (:mod:`zoo.data.groups`: patients, studies, volumes, duplicate images): a seeded split
deals whole groups instead of images (each group in its images' most common stratum, taken
while it brings the part nearer its share), so no group is on two sides; the selection split
sets whole groups aside too. The data's own split or a split file that puts a group or a
duplicate image on two sides is refused (``--allow-leak`` keeps it, listed under ``leaks``).
``split.json`` states ``group_rule`` and lists the groups of more than one image.

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
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo.atomic import write_json
from zoo.data.groups import Grouping, leaks, refuse_leaks
from zoo.dataset import Dataset, ImageRecord
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
    #: how images were grouped (zoo.data.groups): every group is whole in one part
    group_rule: str = ""
    #: the groups of more than one image, with their image ids (the rest are one image each)
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: groups or duplicates the data's own split puts on two sides, kept by --allow-leak
    leaks: list[str] = field(default_factory=list)

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

    def grouping_note(self) -> str:
        """One sentence for reports: the group rule, the groups in each part, any kept leak."""
        if not self.group_rule:
            return ""
        if not self.groups:
            note = f"groups: {self.group_rule}"
        else:
            counts = self.group_counts()
            note = (f"grouped by {self.group_rule}, every group whole in one part: "
                    + ", ".join(f"{part} {n}" for part, n in counts.items() if n) + " groups")
        if self.leaks:
            note += f"; LEAKS kept by --allow-leak ({len(self.leaks)}): " + "; ".join(self.leaks)
        return note

    def group_counts(self) -> dict[str, int]:
        """How many groups (patients, ...) each part holds; an image outside ``groups`` is one."""
        of = {i: g for g, ids in self.groups.items() for i in ids}
        return {part: len({of.get(i, i) for i in getattr(self, part)})
                for part in ("train", "selection", "val", "test")}


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


def _counts(n: int, val: float, test: float, n_groups: int | None = None) -> tuple[int, int]:
    """How many images go to val and test: at least one each when asked for, and at
    least one left to train on (``n_groups``: and a whole group for each part)."""
    n_val = max(1, round(n * val)) if val > 0 else 0
    n_test = max(1, round(n * test)) if test > 0 else 0
    if n_val + n_test >= n:
        raise ZooError(
            f"{n} usable image(s) cannot be split into train, val ({val:g}) and test ({test:g}): "
            "add images or lower --val / --test"
        )
    parts = 1 + (val > 0) + (test > 0)
    if n_groups is not None and n_groups < parts:
        raise ZooError(f"{n_groups} group(s) cannot be split into {parts} parts with every group whole: "
                       "add patients (groups), or check the group rule")
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
               seed: int = 0, digest: str | None = None, grouping: Grouping | None = None) -> Split:
    """Split ``dataset`` for ``task`` (see module doc); ``grouping``: every group whole."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ZooError(f"--val {val:g} and --test {test:g} must be fractions that sum below 1")
    usable = sorted((r for r in dataset.images if task.is_annotated(r)), key=lambda r: r.id)
    excluded = sorted(r.id for r in dataset.images if not task.is_annotated(r))
    units = dealing_units(usable, task, grouping)
    n_val, n_test = _counts(len(usable), val, test, len(units) if _grouped(grouping) else None)

    strata = by_stratum(units)
    train, val_ids, test_ids = _deal(units, strata, n_val, n_test, seed)
    if _grouped(grouping) and not (train and (val_ids or not n_val) and (test_ids or not n_test)):
        # whole groups too large for some stratum's share: deal them unstratified
        train, val_ids, test_ids = _deal(units, {"": sorted(units)}, n_val, n_test, seed)
    split = Split(
        task=task.name, seed=seed, val_fraction=val, test_fraction=test,
        data_hash=digest or data_hash(dataset),
        train=sorted(train), val=sorted(val_ids), test=sorted(test_ids), excluded=excluded,
        stratified=len(strata) > 1,
    )
    _refuse_empty_parts(split, val, test)
    return with_groups(split, grouping)


def by_stratum(units: dict[str, tuple[str, list[str]]]) -> dict[str, list[str]]:
    """Stratum -> its units, in units' order."""
    strata: dict[str, list[str]] = defaultdict(list)
    for key, (stratum, _ids) in units.items():
        strata[stratum].append(key)
    return strata


def _share(total: int, units: dict, strata: dict[str, list[str]]) -> dict[str, int]:
    """``total`` images shared among the strata in proportion to their images."""
    return _largest_remainder(total, {s: sum(len(units[k][1]) for k in keys) for s, keys in strata.items()})


def _deal(units: dict, strata: dict[str, list[str]], n_val: int, n_test: int, seed: int):
    """(train, val, test) image ids: each stratum's units shuffled, val then test taken."""
    sizes = {s: sum(len(units[k][1]) for k in keys) for s, keys in strata.items()}
    val_share = _share(n_val, units, strata)
    # The test share is drawn from what val left behind, so the totals stay exact.
    left = {s: sizes[s] - val_share[s] for s in sizes}
    test_share = _largest_remainder(n_test, left) if n_test and sum(left.values()) else {s: 0 for s in sizes}
    train, val_ids, test_ids = [], [], []
    for s in sorted(strata):
        keys = list(strata[s])
        random.Random(f"{seed}:{s}").shuffle(keys)
        to_val, rest = _take(keys, units, val_share[s])
        to_test, to_train = _take(rest, units, test_share[s])
        val_ids += _images(to_val, units)
        test_ids += _images(to_test, units)
        train += _images(to_train, units)
    return train, val_ids, test_ids


def _grouped(grouping: Grouping | None) -> bool:
    return grouping is not None and grouping.grouped


def dealing_units(usable: list[ImageRecord], task: Task, grouping: Grouping | None) -> dict[str, tuple[str, list[str]]]:
    """What is dealt: each group (or image, when ungrouped) -> (its stratum, its image ids).
    A group's stratum is its images' most common one (ties: the first by name)."""
    if not _grouped(grouping):
        return {r.id: (task.stratum(r), [r.id]) for r in usable}
    members: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in usable:
        members[grouping.of.get(r.id, r.id)].append(r)
    out = {}
    for key, recs in members.items():
        counts = Counter(task.stratum(r) for r in recs)
        stratum = min(counts, key=lambda st: (-counts[st], st))
        out[key] = (stratum, [r.id for r in recs])
    return out


def _take(keys: list[str], units: dict, target: int) -> tuple[list[str], list[str]]:
    """Units from ``keys`` (in order) whose images come closest to ``target``: each is taken
    when it brings the count nearer. With one image per unit: exactly the first ``target``."""
    taken, rest, n = [], [], 0
    for key in keys:
        size = len(units[key][1])
        if abs(n + size - target) < abs(n - target):
            taken.append(key)
            n += size
        else:
            rest.append(key)
    return taken, rest


def _images(keys: list[str], units: dict) -> list[str]:
    return [i for key in keys for i in units[key][1]]


def _refuse_empty_parts(split: Split, val: float, test: float) -> None:
    """Whole groups can leave a part empty (one large patient); say so instead of training on nothing."""
    for part, asked in (("train", True), ("val", val > 0), ("test", test > 0)):
        if asked and not getattr(split, part):
            raise ZooError(f"with every group whole, no image is left for {part}: the groups are too few or too "
                           "uneven for --val / --test; add patients (groups), or change the fractions")


def with_groups(split: Split, grouping: Grouping | None) -> Split:
    """``split`` stating the group rule and its groups of several images (split.json lists them)."""
    if not _grouped(grouping):
        return split if grouping is None else replace(split, group_rule=grouping.rule)
    placed = set(split.train) | set(split.selection) | set(split.val) | set(split.test)
    return replace(split, group_rule=grouping.rule, groups=grouping.shared(placed))


def carve_selection(split: Split, dataset: Dataset, task: Task, fraction: float,
                    grouping: Grouping | None = None) -> Split:
    """``split`` with ``fraction`` of its training images set aside as the selection split.

    Seeded (``seed:selection:stratum``) and stratified like :func:`make_split`, drawn from
    the training images only (any earlier selection goes back into that pool first, so the
    result depends only on the split's training part, the seed and ``fraction``). At least
    one image is set aside and at least one left to train on. ``fraction`` 0: no selection
    split, every training image trains. ``grouping``: whole groups are set aside (a patient
    is never both trained on and selected on).
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
    units = dealing_units([by_id[i] for i in pool], task, grouping)
    if _grouped(grouping) and len(units) < 2:
        raise ZooError(f"the training part holds {len(units)} group(s): none can be set aside whole for model "
                       "selection (--select-frac); add patients (groups), or use --select last")
    chosen = _selected(units, by_stratum(units), n, split.seed)
    if _grouped(grouping) and not chosen:  # whole groups too large for any stratum's share
        chosen = _selected(units, {"": sorted(units)}, n, split.seed)
    taken = set(chosen)
    train = [i for i in pool if i not in taken]
    if not chosen or not train:
        raise ZooError("with every group whole, the training part cannot spare a selection split "
                       f"(--select-frac {fraction:g}): add patients (groups), or use --select last")
    return replace(split, train=train, selection=sorted(chosen), selection_fraction=fraction)


def _selected(units: dict, strata: dict[str, list[str]], n: int, seed: int) -> list[str]:
    share = _share(n, units, strata)
    chosen: list[str] = []
    for s in sorted(strata):
        keys = list(strata[s])
        random.Random(f"{seed}:selection:{s}").shuffle(keys)
        chosen += _images(_take(keys, units, share[s])[0], units)
    return chosen


def grouped_dataset(dataset: Dataset, split: Split) -> Dataset:
    """``dataset`` with each image of ``split.groups`` carrying its group
    (:attr:`zoo.dataset.ImageRecord.group`), which the evaluators' ``ci95`` resamples whole
    (the cluster bootstrap); the dataset itself when nothing changes."""
    of = {i: g for g, ids in split.groups.items() for i in ids}
    if not of or all(r.group == of.get(r.id, r.group) for r in dataset.images):
        return dataset
    return replace(dataset, images=[r if of.get(r.id, r.group) == r.group else replace(r, group=of[r.id])
                                    for r in dataset.images])


def write_split(split: Split, path: Path) -> None:
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


def data_split_parts(dataset: Dataset) -> dict[str, list[str]] | None:
    """The parts of the split the data defines, as ``train`` / ``val`` (/ ``test``) image ids
    (``test`` scores when there is no ``val``), or None when it has no training and evaluation part."""
    parts = {k.lower(): v for k, v in (dataset.splits or {}).items()}
    train_ids = parts.get("train") or parts.get("trainval")
    eval_name = "val" if parts.get("val") else "test" if parts.get("test") else None
    if not train_ids or eval_name is None:
        return None
    out = {"train": list(train_ids), "val": list(parts[eval_name])}
    if eval_name == "val" and parts.get("test"):
        out["test"] = list(parts["test"])
    return out


def source_split(dataset: Dataset, task: Task, *, seed: int = 0, digest: str | None = None) -> Split | None:
    """The split the data itself defines (see module doc), or None when it has none usable."""
    parts = data_split_parts(dataset)
    if parts is None:
        return None
    usable = {r.id for r in dataset.images if task.is_annotated(r)}
    train = sorted(set(parts["train"]) & usable)
    val = sorted((set(parts["val"]) & usable) - set(train))
    test = sorted((set(parts.get("test") or []) & usable) - set(train) - set(val))
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
                 digest: str, grouping: Grouping | None = None, allow_leak: bool = False) -> Split:
    """``--split``: ``auto`` / ``random`` / a split.json path (see module doc). ``grouping``:
    a seeded split keeps every group whole; the data's own split or a split file that puts a
    group (or a duplicate image) on two sides is refused unless ``allow_leak``."""
    how = "auto" if how is None else how
    if str(how) in ("auto", "random"):
        if str(how) == "auto":
            split = source_split(dataset, task, seed=seed, digest=digest)
            if split is not None:
                return checked_for_leaks(split, grouping, "the data's own train / val split", allow_leak)
        return make_split(dataset, task, val=val, test=test, seed=seed, digest=digest, grouping=grouping)
    path = Path(how)
    if not path.is_file():
        raise ZooError(f"--split {how}: expected auto, random or a split.json file")
    split = read_split(path)
    check_split(split, dataset, task, digest, str(path))
    return checked_for_leaks(split, grouping, f"--split {path}", allow_leak)


def checked_for_leaks(split: Split, grouping: Grouping | None, where: str, allow_leak: bool) -> Split:
    """``split`` (given, not drawn) with its group rule, refused when it splits a group or a
    duplicate image apart; ``allow_leak``: kept, the leaks listed on it (every output states them)."""
    if grouping is None:
        return split
    parts = {"train": split.train + split.selection, "val": split.val, "test": split.test}
    kept = refuse_leaks(leaks(grouping, parts), where, allow_leak)
    return replace(with_groups(split, grouping), leaks=kept)
