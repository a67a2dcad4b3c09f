"""The checks every reader passes, built in or a third party's (``zoo.testing.check_reader``).

A reader is checked on a sample folder of its format (the caller's)::

    from zoo.testing import check_reader

    def test_my_reader(tmp_path):
        check_reader("my-format", SAMPLE_FOLDER, tmp_path)

Each rule is a small named check (:data:`READER_CHECKS`); a failed one raises
``AssertionError`` naming it:

* the reader is registered with a sniffer, reads its sample (images with pixels, ``format``
  set) and is the format detected for it;
* it declines the other formats: on the folders zoo's own writers make from the demo data
  (COCO, YOLO, masks, VOC, labelme), each for the task it writes by default, the format
  detected is never it;
* reading is deterministic: twice the same dataset;
* round trip: where zoo has a writer of the same name, what it writes reads back the same;
* bad input: an empty folder is one ZooError (a line for the user), a damaged image file
  gives a dataset or a ZooError, never another exception, and reading writes nothing in the
  folder read.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zoo.data.demo import write_demo
from zoo.data.output import writer_task
from zoo.data.reading import detect_format, read_dataset
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.registry import get_registry

@dataclass
class ReaderCase:
    """One reader on one sample folder; ``tmp``: a scratch folder of its own."""

    name: str
    sample: Path
    tmp: Path
    _read: Dataset | None = field(default=None, repr=False)

    def read(self, path: Path | None = None) -> Dataset:
        if path is None:
            if self._read is None:
                self._read = read_dataset(self.sample, self.name)
            return self._read
        return read_dataset(path, self.name)


def fingerprint(ds: Dataset) -> dict[str, tuple]:
    """What a model trains on, image by image (by file stem: writers may move ids into
    split folders): size, each object's class, ignore flag and box (to 0.1 px), the classes."""
    out = {}
    for r in ds.images:
        objects = sorted((ds.categories[i.category] if i.category >= 0 else "", i.ignore,
                          tuple(round(float(v), 1) for v in i.bbox)) for i in r.instances)
        out[r.id.rsplit("/", 1)[-1].lower()] = (r.width, r.height, objects, sorted(ds.classes[c] for c in r.labels))
    return out


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check_reader_registered(c: ReaderCase) -> None:
    spec = get_registry().readers.get(c.name)
    assert spec is not None, f"no reader '{c.name}' is registered (entry point group 'zoo', hook zoo_readers)"
    assert spec.sniff, f"reader '{c.name}' has no sniffer: --from auto can never choose it"


def check_reads_its_sample(c: ReaderCase) -> None:
    ds = c.read()
    assert ds.images, f"reader '{c.name}' read no image from {c.sample}"
    assert ds.format == c.name, f"reader '{c.name}' says its data is '{ds.format}'"
    no_pixels = [r.id for r in ds.images if not r.has_pixels]
    assert not no_pixels, f"reader '{c.name}' found no image file for {no_pixels[:3]}"


def check_detected_on_its_sample(c: ReaderCase) -> None:
    got = detect_format(c.sample)
    assert got == c.name, f"{c.sample} is detected as '{got}', not '{c.name}'"


def check_declines_other_formats(c: ReaderCase) -> None:
    for fmt, folder in _other_formats(c.tmp / "others").items():
        if fmt == c.name:
            continue
        got = detect_format(folder)
        assert got != c.name, f"reader '{c.name}' claims zoo's own {fmt} output ({folder}), detected as '{got}'"


def _other_formats(where: Path) -> dict[str, Path]:
    """The demo data as written by each of zoo's own writers, each for the task it writes by
    default (made once per folder); the demo itself in its own format."""
    demo = where / "demo"
    if not demo.is_dir():
        write_demo(demo, images=4, size=48, seed=0)
    ds = read_dataset(demo)
    out = {ds.format: demo}
    for spec in get_registry().writers.values():
        if spec.name in out or not _zoo_own(spec.entry):
            continue  # a third party's writer may well write the format its own reader reads
        target = where / spec.name
        if not target.is_dir():
            spec.load()(ds, target, task=writer_task(spec, None, ds))
        out[spec.name] = target
    return out


def _zoo_own(entry: str) -> bool:
    return entry.split(".", 1)[0].split(":", 1)[0] == "zoo"


def check_deterministic(c: ReaderCase) -> None:
    a, b = fingerprint(c.read(c.sample)), fingerprint(c.read(c.sample))
    assert a == b, f"reader '{c.name}' read {c.sample} twice and got two datasets"
    assert [r.id for r in c.read(c.sample).images] == [r.id for r in c.read(c.sample).images], \
        f"reader '{c.name}' orders the images differently from one read to the next"


def check_round_trip(c: ReaderCase) -> None:
    registry = get_registry()
    if c.name not in registry.writers:
        return  # no writer of this format: nothing to go round
    spec = registry.writer(c.name)
    ds = c.read()
    task = next((t for t in ("detect", "semantic-seg", "classify") if t in spec.tasks and _serves(ds, t)), None)
    if task is None:
        return
    out = c.tmp / "round-trip"
    if out.exists():
        shutil.rmtree(out)
    spec.load()(ds, out, task=task)
    back = c.read(out)
    assert fingerprint(back) == fingerprint(ds), f"what zoo's {c.name} writer wrote ({out}) reads back differently"


def _serves(ds: Dataset, task: str) -> bool:
    has_objects = any(r.instances for r in ds.images)
    return has_objects if task in ("detect", "semantic-seg") else bool(ds.classes) and not has_objects


def check_bad_input(c: ReaderCase) -> None:
    before = _snapshot(c.sample)
    empty = c.tmp / "empty"
    empty.mkdir(exist_ok=True)
    try:
        c.read(empty)
        raise AssertionError(f"reader '{c.name}' read an empty folder without a word")
    except ZooError as e:
        assert "\n" not in str(e).strip(), f"reader '{c.name}': the error on an empty folder is several lines"
    damaged = c.tmp / "damaged"
    if damaged.exists():
        shutil.rmtree(damaged)
    shutil.copytree(c.sample, damaged)
    inside = [r.file for r in c.read().images if r.file is not None and r.file.is_relative_to(c.sample)]
    if inside:
        (damaged / inside[0].relative_to(c.sample)).write_bytes(b"not an image\n")
        try:
            c.read(damaged)
        except ZooError:
            pass  # one line for the user: fine
        except Exception as e:  # noqa: BLE001 -- the rule under test: nothing but a ZooError escapes
            raise AssertionError(f"reader '{c.name}' raised {type(e).__name__} on a damaged image ({e})") from None
    assert _snapshot(c.sample) == before, f"reader '{c.name}' wrote into the folder it read ({c.sample})"


READER_CHECKS: list[Callable[[ReaderCase], None]] = [
    check_reader_registered,
    check_reads_its_sample,
    check_detected_on_its_sample,
    check_declines_other_formats,
    check_deterministic,
    check_round_trip,
    check_bad_input,
]


def check_reader(name: str, sample: str | Path, tmp_dir: str | Path) -> None:
    """Every check of :data:`READER_CHECKS` on reader ``name`` and its ``sample`` folder; an
    AssertionError listing each rule broken."""
    case = ReaderCase(name, Path(sample), Path(tmp_dir))
    case.tmp.mkdir(parents=True, exist_ok=True)
    broken = []
    for check in READER_CHECKS:
        try:
            check(case)
        except AssertionError as e:
            broken.append(f"{check.__name__}: {e}")
    assert not broken, f"reader '{name}' breaks {len(broken)} rule(s):\n" + "\n".join(broken)
