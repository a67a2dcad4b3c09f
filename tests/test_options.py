"""The options of ``zoo run`` as value objects: what the CLI builds from the flags."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.pipeline.options import Output, RunOptions, Source, SplitPlan, asked_selection
from zoo.selection import Protocol


def test_no_selection_flag_is_no_protocol_asked():
    assert asked_selection(None, None, None) is None


def test_a_selection_flag_fills_the_others_with_their_defaults():
    assert asked_selection("best", None, None) == Protocol(rule="best", fraction=0.1, patience=None)
    assert asked_selection(None, 0.2, 3) == Protocol(rule="last", fraction=0.2, patience=3)


def test_a_bad_selection_flag_fails_where_it_is_built():
    with pytest.raises(ZooError, match="--select-frac 1.5"):
        asked_selection("best", 1.5, None)


def test_the_demo_is_what_nothing_named_reads():
    assert Source().is_demo and Source(demo=True, path=Path("x")).is_demo
    assert not Source(path=Path("x")).is_demo


def test_options_are_values():
    opts = RunOptions(task="detect", backend="toy", split=SplitPlan(val=0.3), output=Output(out=Path("o")))
    assert opts == RunOptions(task="detect", backend="toy", split=SplitPlan(val=0.3), output=Output(out=Path("o")))
    with pytest.raises(FrozenInstanceError):
        opts.split.val = 0.5  # type: ignore[misc]
