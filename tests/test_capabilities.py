"""The core asks a plugin's spec what it can do, never its name: a writer's default task and
options, which format writes prediction files, where a backend's defaults are."""

from __future__ import annotations

from pathlib import Path

import pytest

import toy_backend
import zoo.registry
from zoo import hookimpl
from zoo.config import BackendConfig, resolve_config
from zoo.data.output import writer_task
from zoo.data.reading import read_dataset
from zoo.errors import ConfigError, ZooError
from zoo.pipeline.predict import prediction_writer, write_prediction_files
from zoo.predictions import InstancePredictions
from zoo.registry import Registry
from zoo.specs import TASK_FROM_DATA, BackendSpec, WriterSpec


def write_note(prediction, meta, record, path, *, image_path=None, min_score=0.0) -> Path:
    """A second format of prediction files: one line per detection kept."""
    kept = [d for d in prediction.detections if d.score >= min_score]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{meta.categories[d.category]} {d.score:.2f}\n" for d in kept), encoding="utf-8")
    return path


class NotesPlugin:
    @hookimpl
    def zoo_writers(self):
        return [WriterSpec(name="notes", entry="test_capabilities:write_note", tasks=("detect",),
                           predictions="test_capabilities:write_note", predictions_suffix=".txt")]


def test_the_task_written_is_the_one_given_else_the_specs_default(tiny_demo):
    ds = read_dataset(tiny_demo)
    spec = WriterSpec(name="x", entry="m:f", tasks=("detect", "keypoint"))
    assert writer_task(spec, None, ds) is None  # all the dataset holds, as it is
    assert writer_task(spec, "pose", ds) == "keypoint"  # ultralytics' name, as zoo names it
    fixed = WriterSpec(name="x", entry="m:f", default_task="semantic-seg")
    assert writer_task(fixed, None, ds) == "semantic-seg"
    assert writer_task(fixed, "detect", ds) == "detect"
    chosen = WriterSpec(name="x", entry="m:f", default_task=TASK_FROM_DATA)
    assert ds.keypoint_names and writer_task(chosen, None, ds) == "keypoint"
    boxes_only = ds.subset([r.id for r in ds.images])
    boxes_only.keypoint_names = []
    for r in boxes_only.images:
        for i in r.instances:
            i.polygons, i.mask = [], None
    assert writer_task(chosen, None, boxes_only) == "detect"


def test_a_writer_option_zoo_does_not_offer_is_refused_at_declaration():
    with pytest.raises(ZooError, match="writer 'x' declares unknown option.*colour.*copy_images, geometry"):
        WriterSpec(name="x", entry="m:f", options=("copy_images", "colour"))


def test_the_prediction_format_is_asked_for_when_several_can_be(tiny_demo):
    installed = zoo.registry.get_registry()
    assert prediction_writer(installed).name == "labelme"  # the one installed that can
    both = Registry(plugins=[NotesPlugin()])
    with pytest.raises(ZooError, match=r"several output formats write predictions \(labelme, notes\): pass --to"):
        prediction_writer(both)
    assert prediction_writer(both, "notes").name == "notes"
    with pytest.raises(ZooError, match="--to coco: that format does not write predictions; these do: labelme, notes"):
        prediction_writer(both, "coco")

    ds = read_dataset(tiny_demo)
    record = ds.images[0]
    pred = InstancePredictions(record.id, [])
    [f] = write_prediction_files(Path(tiny_demo).parent / "notes-out", ds.subset([record.id]), [pred], conf=0.0,
                                 copy_images=False, writer=prediction_writer(both, "notes"))
    assert f.suffix == ".txt" and f.read_text() == ""


def test_a_run_writes_the_prediction_files_of_every_format_that_can(tmp_path, tiny_demo, monkeypatch):
    from zoo.cli import main

    reg = Registry(plugins=[toy_backend.ToyPlugin(), NotesPlugin()])
    monkeypatch.setattr(zoo.registry, "get_registry", lambda: reg)
    try:
        main(["run", "--task", "detect", "--backend", "oracle", "--data", str(tiny_demo), "--out", str(tmp_path),
              "--device", "cpu", "--epochs", "1"])
    except SystemExit as e:  # typer may exit 0
        assert e.code in (0, None)
    predictions = tmp_path / "oracle-detect" / "predictions"
    labelme = sorted(p.stem for p in (predictions / "labelme").rglob("*.json"))
    notes = sorted(p.stem for p in (predictions / "notes").rglob("*.txt"))
    assert labelme and notes == labelme
    # the oracle predicts the ground truth: each note lists the image's objects at 0.25 and above
    ds = read_dataset(tiny_demo)
    first = next(r for r in ds.images if r.id.rsplit("/", 1)[-1] == notes[0])
    lines = next((predictions / "notes").rglob(f"{notes[0]}.txt")).read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(
        ds.categories[i.category] for i in first.instances if not i.ignore)


def test_a_backends_defaults_are_read_where_its_spec_says():
    unet = BackendSpec(name="someone-elses", tasks=("semantic-seg",), entry="m:C",
                       defaults="zoo.plugins.smp:configs/unet")
    assert unet.defaults_file("semantic-seg") is not None
    assert unet.defaults_file("detect") is None  # no file for that task: no defaults
    assert BackendSpec(name="x", tasks=("detect",), entry="m:C").defaults_file("detect") is None
    assert resolve_config(BackendConfig, backend="someone-elses", task="detect", spec=unet).batch == 16
    # the file is layered: its keys must be the backend's (BackendConfig has no 'encoder')
    with pytest.raises(ConfigError, match=r"zoo\.plugins\.smp:configs/unet/semantic-seg\.yaml: unknown key"):
        resolve_config(BackendConfig, backend="someone-elses", task="semantic-seg", spec=unet)
