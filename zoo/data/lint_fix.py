"""``zoo check --fix --out DIR``: what a linter's findings allow to repair without a person,
written to a new folder; the source is never modified.

Repaired: labels merged as the findings suggest or as ``--map 'OLD=NEW'`` says (a map
wins; ``--map 'a=a'`` vetoes a suggestion), shapes and images that are exact copies
dropped. Everything else (a tiny object, a missing image) needs a person and is left.

A format whose reader can edit its own files (``ReaderSpec.fix``: labelme's, copied file for
file with only the changed JSON rewritten, so circles stay circles and descriptions stay) is
fixed so; other formats are written by the writer of the same format where that writer
writes back what its reader reads (``WriterSpec.round_trip``; shapes as zoo reads them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from zoo.data.lint import _instance_where, _record_file, Finding
from zoo.data.output import check_out as _check_out, writer_task as _writer_task, writing_to as _writing_to
from zoo.dataset import Dataset
from zoo.errors import ZooError


@dataclass
class FixPlan:
    renames: dict[str, str]  # old label -> new label (chains resolved)
    drop_images: set[str]  # record ids
    drop_instances: set[tuple[str, int]]  # (record id, instance index)


def parse_map(items: list[str]) -> dict[str, str]:
    """``--map 'Person =person'`` entries: old name (surrounding space ignored, as the readers
    strip it) -> new name."""
    out = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ZooError(f"--map {item!r}: expected OLD=NEW")
        out[old.strip()] = new.strip()
    return out


def plan_fixes(findings: list[Finding], mapping: dict[str, str] | None = None) -> FixPlan:
    renames = {f.rename[0]: f.rename[1] for f in findings if f.rename}
    renames.update(mapping or {})
    renames = {a: _follow(a, renames) for a in renames}
    return FixPlan(
        renames={a: b for a, b in renames.items() if a != b},
        drop_images={f.drop[1] for f in findings if f.drop and f.drop[0] == "image"},
        drop_instances={(f.drop[1], f.drop[2]) for f in findings if f.drop and f.drop[0] == "instance"},
    )


def _follow(name: str, renames: dict[str, str]) -> str:
    """Where a chain of renames ends (a -> b, b -> c: c); a cycle stops where it started."""
    seen = {name}
    while renames.get(name, name) not in seen:
        name = renames[name]
        seen.add(name)
    return name


def fix_dataset(dataset: Dataset, plan: FixPlan) -> tuple[Dataset, list[str]]:
    """The dataset with the plan applied, and one line per change."""
    renames = plan.renames
    categories, cat_index = _renamed(dataset.categories, renames)
    classes, class_index = _renamed(dataset.classes, renames)
    changes: list[str] = []
    images = []
    for rec in dataset.images:
        if rec.id in plan.drop_images:
            changes.append(f"{_record_file(rec)}: dropped (same pixels and annotation as another image)")
            continue
        instances = []
        for k, inst in enumerate(rec.instances):
            file, shape = _instance_where(rec, inst)
            where = file if shape is None else f"{file} (shape {shape})"
            if (rec.id, k) in plan.drop_instances:
                changes.append(f"{where}: dropped (exact copy of another shape)")
                continue
            if inst.category >= 0:
                old = dataset.categories[inst.category]
                if old in renames:
                    changes.append(f"{where}: label '{old}' -> '{renames[old]}'")
                inst = replace(inst, category=cat_index[inst.category])
            instances.append(inst)
        labels = []
        for c in rec.labels:
            if dataset.classes[c] in renames:
                changes.append(f"{_record_file(rec)}: class '{dataset.classes[c]}' -> '{renames[dataset.classes[c]]}'")
            if class_index[c] not in labels:
                labels.append(class_index[c])
        images.append(replace(rec, instances=instances, labels=labels))
    splits = {name: [i for i in ids if i not in plan.drop_images] for name, ids in dataset.splits.items()}
    return replace(dataset, categories=categories, classes=classes, images=images, warnings=[], splits=splits), changes


def _renamed(names: list[str], renames: dict[str, str]) -> tuple[list[str], dict[int, int]]:
    """The vocabulary after renames (a name merged into one that exists keeps that one's
    place; a name renamed to a new one takes its place) and old -> new index."""
    new_names: list[str] = []
    for n in names:
        target = renames.get(n, n)
        if (target == n or target not in names) and target not in new_names:
            new_names.append(target)
    pos = {n: i for i, n in enumerate(new_names)}
    return new_names, {i: pos[renames.get(n, n)] for i, n in enumerate(names)}


def write_fixed(dataset: Dataset, plan: FixPlan, src: Path, out: Path, registry=None) -> None:
    """The corrected copy of ``src`` under ``out`` (see the module doc), by ``registry``'s
    reader or writer of its format (None: the installed plugins)."""
    from zoo.registry import get_registry

    _check_out(src, out)
    registry = registry or get_registry()
    reader, writer = registry.readers.get(dataset.format), registry.writers.get(dataset.format)
    if reader is not None and reader.fix:  # the format's own files, copied and edited
        with _writing_to(out):  # marked unfinished until written
            reader.load_fix()(dataset, plan, Path(src), Path(out))
        return
    if writer is None or not writer.round_trip:
        raise ZooError(f"--fix writes {_fixable(registry)} folders, not {dataset.format}; "
                       "convert it first (zoo convert)")
    with _writing_to(out):
        fixed, _ = fix_dataset(dataset, plan)
        writer.load()(fixed, out, task=_writer_task(writer, None, fixed))


def _fixable(registry) -> str:
    """The formats ``--fix`` writes: those whose reader edits its own files (``ReaderSpec.fix``)
    and those a writer of the same name writes back whole (``WriterSpec.round_trip``)."""
    names = [r.name for r in registry.readers.values() if r.fix]
    names += [w.name for w in registry.writers.values() if w.round_trip and w.name in registry.readers]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
