"""``zoo compare --jobs N`` and ``--executor ray``: the same runs and numbers as one after another."""

from __future__ import annotations

import json

import pytest
import toy_backend

from zoo.compare import CompareOptions, compare_and_report
from zoo.executors import slot_environment


@pytest.fixture(scope="module")
def registry():
    return toy_backend.registry()


def _compare(out, data, registry, **kw):
    return compare_and_report(CompareOptions(
        task="detect", backends=["toy", "oracle"], data=data, out=out, registry=registry, quiet=True,
        flags={"device": "cpu"}, folds=2, samples=0, **kw))


def per_run_numbers(result):
    """(backend, fold, seed) -> the scores of the run's metrics.json, and the run folder's name."""
    out = {}
    for r in result.runs:
        m = json.loads((r.run_dir / "metrics.json").read_text())
        out[(r.backend, r.fold, r.seed)] = ({k: v for k, v in m.items() if isinstance(v, float)}, r.status)
    return out


def test_slot_environment_divides_threads_and_gpus():
    assert slot_environment(3, 2, ["0", "1"], 16) == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8",
                                                      "ZOO_THREADS": "8", "CUDA_VISIBLE_DEVICES": "1"}
    assert "CUDA_VISIBLE_DEVICES" not in slot_environment(0, 4, [], 2)
    assert slot_environment(0, 4, [], 2)["OMP_NUM_THREADS"] == "1"


def test_jobs_run_in_processes_with_the_same_numbers(tmp_path, tiny_demo, registry):
    one = _compare(tmp_path / "seq", tiny_demo, registry)
    two = _compare(tmp_path / "par", tiny_demo, registry, jobs=2)
    assert per_run_numbers(two) == per_run_numbers(one)
    assert [r.backend for r in two.rows] == [r.backend for r in one.rows]
    assert [r.metrics for r in two.rows] == [r.metrics for r in one.rows]
    # each worker's output went to its own file, not the terminal
    assert sorted(p.name for p in (two.folder / "logs").iterdir()) == [
        "oracle-fold-0.txt", "oracle-fold-1.txt", "toy-fold-0.txt", "toy-fold-1.txt"]
    # reused as ever
    again = _compare(tmp_path / "par", tiny_demo, registry, jobs=2)
    assert {r.status for r in again.runs} == {"reused"}
