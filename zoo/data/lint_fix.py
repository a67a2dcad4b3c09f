"""``zoo check --fix --out DIR``: what a linter's findings allow to repair without a person,
written to a new folder; the source is never modified.

Repaired: labels merged as the findings suggest or as ``--map 'OLD=NEW'`` says (a map
wins; ``--map 'a=a'`` vetoes a suggestion), shapes and images that are exact copies
dropped. Everything else (a tiny object, a missing image) needs a person and is left.

A labelme folder is copied file for file and only the changed JSON files are rewritten
(shape labels, flags, dropped shapes), so circles stay circles and descriptions stay;
other formats are written by zoo's writer of the same format (shapes as zoo reads them).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from zoo.data.lint import Finding, _instance_where, _record_file
from zoo.dataset import Dataset
from zoo.errors import ZooError

FIX_WRITERS = {"voc": "voc", "coco": "coco", "yolo": "yolo"}


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


def write_fixed(dataset: Dataset, plan: FixPlan, src: Path, out: Path) -> None:
    """The corrected copy of ``src`` under ``out`` (see the module doc)."""
    from zoo.data.output import check_out as _check_out, writer_task as _writer_task, writing_to as _writing_to
    from zoo.registry import get_registry

    _check_out(src, out)
    to = FIX_WRITERS.get(dataset.format)
    if to is None and dataset.format != "labelme":
        raise ZooError(f"--fix writes labelme, voc, coco or yolo folders, not {dataset.format}; "
                       "convert it first (zoo convert)")
    with _writing_to(out):  # marked unfinished until written
        if dataset.format == "labelme":
            _copy_labelme(dataset, plan, Path(src), Path(out))
            return
        fixed, _ = fix_dataset(dataset, plan)
        writer = get_registry().writer(to).load()
        writer(fixed, out, task=_writer_task(to, None, fixed))


def _copy_labelme(dataset: Dataset, plan: FixPlan, src: Path, out: Path) -> None:
    """Every file of ``src`` copied below ``out``, the JSON files the plan touches rewritten."""
    root = src if src.is_dir() else src.parent
    skip: set[str] = set()  # real paths left out: dropped images' JSON and pixels
    edits: dict[str, tuple[set[int], set[int]]] = {}  # JSON real path -> (dropped shapes, groups)
    for rec in dataset.images:
        json_file = os.path.realpath(_record_file(rec))
        if rec.id in plan.drop_images:
            skip.add(json_file)
            if rec.file is not None:
                skip.add(os.path.realpath(rec.file))
            continue
        for k, inst in enumerate(rec.instances):
            if (rec.id, k) in plan.drop_instances and inst.source is not None and inst.source.shape is not None:
                edits.setdefault(json_file, (set(), set()))[0].add(inst.source.shape)
    kept = {os.path.realpath(r.file) for r in dataset.images if r.file is not None and r.id not in plan.drop_images}
    skip -= kept  # an image another kept annotation still points at stays
    files = [root] if src.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for f in files:
        real = os.path.realpath(f)
        if real in skip:
            continue
        target = out / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix.lower() == ".json":
            data = _fixed_labelme_json(f, plan, edits.get(real, (set(), set()))[0])
            if data is not None:
                target.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
                continue
        shutil.copyfile(f, target)


def _fixed_labelme_json(f: Path, plan: FixPlan, drop_shapes: set[int]) -> dict | None:
    """The labelme document of ``f`` with labels renamed and shapes dropped; None when
    nothing changes (the file is then copied byte for byte)."""
    from zoo.files import read_json

    try:
        data = read_json(f)
    except ZooError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        return None
    shapes = data["shapes"]
    # a dropped object made of several shapes (a group_id) goes whole: its parts and points
    groups = {shapes[i].get("group_id") for i in drop_shapes
              if isinstance(shapes[i], dict) and shapes[i].get("group_id") is not None}
    new_shapes, changed = [], bool(drop_shapes)
    for i, s in enumerate(shapes):
        if i in drop_shapes or (isinstance(s, dict) and groups and s.get("group_id") in groups):
            continue
        label = s.get("label") if isinstance(s, dict) else None
        if isinstance(label, str) and label.strip() in plan.renames:
            s = {**s, "label": plan.renames[label.strip()]}
            changed = True
        new_shapes.append(s)
    flags = data.get("flags")
    if isinstance(flags, dict) and any(k in plan.renames for k in flags):
        merged: dict = {}
        for k, v in flags.items():
            name = plan.renames.get(k, k)
            merged[name] = merged.get(name, False) or v
        data["flags"], changed = merged, True
    if not changed:
        return None
    data["shapes"] = new_shapes
    return data
