"""Tests' shorthand for the options of ``zoo run`` / ``zoo compare``: the flags' names, flat,
put into the value objects the pipeline reads (zoo.pipeline.options), as the CLI does.

A test that varies one flag (``_opts(..., resume=True)``) reads like the command line; the
pipeline still gets :class:`RunOptions` / :class:`CompareOptions` built of their parts.
"""

from __future__ import annotations

from zoo.pipeline.compare import CompareOptions
from zoo.pipeline.options import Output, RunOptions, Source, SplitPlan, Training
from zoo.selection import Protocol

#: flat name -> (the part it belongs to, its name there)
_PARTS = {
    "data": ("source", "path"), "fmt": ("source", "fmt"), "labels": ("source", "labels"),
    "images": ("source", "images"), "dataset": ("source", "dataset"), "demo": ("source", "demo"),
    "strict": ("source", "strict"),
    "val": ("split", "val"), "test": ("split", "test"), "split_file": ("split", "rule"), "split": ("split", "rule"),
    "fold": ("split", "fold"), "folds": ("split", "folds"), "group": ("split", "group"),
    "grouping": ("split", "grouping"), "allow_leak": ("split", "allow_leak"),
    "config_files": ("training", "config_files"), "sets": ("training", "sets"), "flags": ("training", "flags"),
    "trust_weights": ("training", "trust_weights"),
    "out": ("output", "out"), "name": ("output", "name"), "resume": ("output", "resume"), "track": ("output", "track"),
    "track_parent": ("output", "track_parent"), "rank": ("output", "rank"), "top": ("output", "top"),
    "select": ("selection", "rule"), "select_frac": ("selection", "fraction"), "patience": ("selection", "patience"),
}
_TYPES = {"source": Source, "split": SplitPlan, "training": Training, "output": Output, "selection": Protocol}


def _grouped(flat: dict) -> dict:
    parts: dict[str, dict] = {}
    rest = {}
    for key, value in flat.items():
        if key in _PARTS:
            part, name = _PARTS[key]
            parts.setdefault(part, {})[name] = value
        else:
            rest[key] = value
    return {**rest, **{part: _TYPES[part](**given) for part, given in parts.items()}}


def run_options(**flat) -> RunOptions:
    """``RunOptions`` from the flags' names: ``run_options(task="detect", backend="toy", out=..., resume=True)``."""
    return RunOptions(**_grouped(flat))


def compare_options(**flat) -> CompareOptions:
    """``CompareOptions`` from the flags' names, as :func:`run_options`."""
    return CompareOptions(**_grouped(flat))
