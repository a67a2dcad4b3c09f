"""One registry, passed down: the readers a run, a check or a conversion uses are those of the
registry it was given, never the installed plugins behind its back.

The proof is a reader that only the test's registry has (``toy-coco``, the COCO reader under
another name): reached through the injected registry it reads; reached through the global
one it would be an unknown input format.
"""

from __future__ import annotations

import json

import pytest
import toy_backend
from toy_backend import make_dataset

from zoo import hookimpl
from zoo.adapters.coco import write as write_coco
from zoo.data.lint import lint_folder
from zoo.errors import ZooError
from zoo.pipeline.convert import convert
from zoo.pipeline.options import Output, RunOptions, Source, Training
from zoo.pipeline.run import execute
from zoo.registry import Registry, get_registry
from zoo.specs import ReaderSpec


class ToyReaderPlugin:
    @hookimpl
    def zoo_readers(self):
        return [ReaderSpec(name="toy-coco", entry="zoo.adapters.coco:read", description="COCO, by another name")]


@pytest.fixture(scope="module")
def registry():
    return Registry(plugins=[toy_backend.ToyPlugin(), ToyReaderPlugin()])


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("toycoco")
    write_coco(make_dataset(root / "src", n=10), root / "coco", task="detect")
    return root / "coco"


def test_the_global_registry_does_not_know_the_toy_reader():
    with pytest.raises(ZooError, match="toy-coco"):
        get_registry().reader("toy-coco")


def test_a_run_reads_and_checks_through_the_registry_it_is_given(tmp_path, coco_folder, registry):
    result = execute(RunOptions(
        task="detect", backend="oracle", source=Source(path=coco_folder, fmt="toy-coco", strict=True),
        training=Training(flags={"device": "cpu"}), output=Output(out=tmp_path / "runs"),
        registry=registry, quiet=True))
    assert result.metrics["AP50"] == pytest.approx(1.0)  # the ground truth fed back: read whole
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["data"]["summary"]["images"] == 10


def test_lint_and_convert_read_through_the_registry_they_are_given(tmp_path, coco_folder, registry):
    report = lint_folder(coco_folder, fmt="toy-coco", registry=registry)
    assert len(report.dataset.images) == 10
    done = convert(coco_folder, to="yolo", out=tmp_path / "yolo", fmt="toy-coco", task="detect", registry=registry)
    assert len(done.dataset.images) == 10 and (tmp_path / "yolo" / "data.yaml").is_file()
    with pytest.raises(ZooError, match="toy-coco"):  # the installed plugins: no such reader
        convert(coco_folder, to="yolo", out=tmp_path / "yolo2", fmt="toy-coco", task="detect")
