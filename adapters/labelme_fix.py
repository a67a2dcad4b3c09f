"""``zoo check --fix`` on a labelme folder: a copy, file for file, in which only the JSON files
the fix plan touches are rewritten (shape labels, flags, dropped shapes), so circles stay
circles and descriptions stay; registered as the labelme reader's ``ReaderSpec.fix``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from zoo.data.lint import _record_file
from zoo.data.lint_fix import FixPlan
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.files import read_json


def write_fixed_copy(dataset: Dataset, plan: FixPlan, src: Path, out: Path) -> None:
    """Every file of ``src`` copied below ``out``, the JSON files the plan touches rewritten
    (``ReaderSpec.fix``: ``zoo check --fix`` on a labelme folder)."""
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
