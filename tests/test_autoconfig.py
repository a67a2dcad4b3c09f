"""``imgsz: auto`` and ``epochs: auto``: the data-derived defaults (zoo.training.autoconfig)."""

from __future__ import annotations

import json

import pytest
from flat_options import run_options
import toy_backend
import yaml

from zoo.training.autoconfig import choose_epochs, choose_imgsz, fill_auto, vanishing_instances
from zoo.config import BackendConfig, demo_preset, resolve_config
from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.pipeline.run import execute
from zoo.tasks import get_task

CPU = get_task("detect").imgsz_caps["cpu"]
GPU = get_task("detect").imgsz_caps["gpu"]


def _data(n: int, width: int, height: int, box: float) -> Dataset:
    """``n`` images of ``width`` x ``height`` with one ``box``-px square each."""
    images = [ImageRecord(id=f"i{k}", width=width, height=height,
                          instances=[Instance(category=0, bbox=(10.0, 10.0, 10.0 + box, 10.0 + box))])
              for k in range(n)]
    return Dataset(categories=["cell"], images=images)


def test_small_images_train_at_their_own_size_rounded_to_the_stride():
    c = choose_imgsz(_data(10, 150, 100, box=40), stride=32, caps=CPU, on_gpu=False)
    assert c.value == 160 and "median image 150 px" in c.reason


def test_large_images_are_capped_by_the_device():
    cpu = choose_imgsz(_data(10, 2000, 1500, box=400), stride=32, caps=CPU, on_gpu=False)
    gpu = choose_imgsz(_data(10, 2000, 1500, box=400), stride=32, caps=GPU, on_gpu=True)
    assert (cpu.value, gpu.value) == (416, 1024)
    assert "capped at 416 on CPU" in cpu.reason and "capped at 1024 on GPU" in gpu.reason


def test_tiny_objects_raise_the_size_up_to_the_ceiling():
    # 640-px smears with 20-px platelets: at 416 they would be 13 px (fine) ...
    fine = choose_imgsz(_data(10, 640, 480, box=20), stride=32, caps=CPU, on_gpu=False)
    assert fine.value == 416 and "10% of instances under 20 px" in fine.reason
    # ... 15-px ones would be 9.75 px: raised until they keep 12 px (512 px), the reason says so
    raised = choose_imgsz(_data(10, 640, 480, box=15), stride=32, caps=CPU, on_gpu=False)
    assert raised.value == 512 and "raised to 512" in raised.reason
    # 4-px dots on 2000-px slides would need 6000 px: the CPU ceiling stops it, and says so
    capped = choose_imgsz(_data(10, 2000, 2000, box=4), stride=32, caps=CPU, on_gpu=False)
    assert capped.value == CPU[1] and "ceiling" in capped.reason


def test_vanishing_instances_are_counted_per_class():
    assert vanishing_instances(_data(5, 2000, 2000, box=4), 640) == {"cell": 5}
    assert vanishing_instances(_data(5, 2000, 2000, box=40), 640) == {}


def test_epochs_give_enough_steps_for_few_images_and_the_floor_for_many():
    few = choose_epochs(34, 16, steps=300, min_epochs=30)
    assert few.value == 100 and "3 step(s) per epoch" in few.reason  # 34 images = 3 batches of 16
    many = choose_epochs(5000, 16, steps=300, min_epochs=30)
    assert many.value == 30 and "(the floor)" in many.reason
    one = choose_epochs(2, 16, steps=500, min_epochs=30)
    assert one.value == 300 and "ceiling" in one.reason


def test_explicit_values_win_over_auto():
    class Cls:  # what fill_auto reads of a backend class
        stride, auto_steps, auto_min_epochs = 32, 300, 30

    cfg = resolve_config(BackendConfig, backend="x", task="detect", flags={"imgsz": 320})
    filled, choices = fill_auto(cfg, Cls, get_task("detect"), _data(34, 640, 480, box=20), "cpu")
    assert filled.imgsz == 320 and filled.epochs == 100 and [c.key for c in choices] == ["epochs"]
    cfg = resolve_config(BackendConfig, backend="x", task="detect", sets=["epochs=7", "imgsz=auto"])
    filled, choices = fill_auto(cfg, Cls, get_task("detect"), _data(34, 640, 480, box=20), "cuda:0")
    assert (filled.imgsz, filled.epochs) == (640, 7) and [c.key for c in choices] == ["imgsz"]


def test_the_demo_preset_applies_only_to_the_demo():
    assert demo_preset("unet", "semantic-seg") == {"imgsz": 160, "epochs": 20}
    assert demo_preset("yolov8", "classify") == {"imgsz": 128, "epochs": 20}
    assert demo_preset("yolov8", "detect") == {"imgsz": 160, "epochs": 30}
    demo = resolve_config(BackendConfig, backend="someone-elses", task="detect", demo=True)
    assert (demo.imgsz, demo.epochs) == (160, 30)
    mine = resolve_config(BackendConfig, backend="someone-elses", task="detect")
    assert (mine.imgsz, mine.epochs) == ("auto", "auto")
    flag = resolve_config(BackendConfig, backend="someone-elses", task="detect", demo=True, flags={"epochs": 2})
    assert flag.epochs == 2


def test_a_run_records_its_choices_in_config_manifest_and_report(tmp_path):
    data = toy_backend.make_dataset(tmp_path / "data", n=12, size=48)
    result = execute(run_options(task="detect", backend="toy", registry=toy_backend.registry(), quiet=True,
                                 dataset=data, flags={"device": "cpu"}, sets=["imgsz=auto"],
                                 out=tmp_path / "runs"))
    run = result.run_dir
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    choice = json.loads((run / "manifest.json").read_text())["choices"]["imgsz"]
    # 48-px images whose smallest boxes are ~6 px: raised so they keep 12 px, rounded to the stride
    assert cfg["imgsz"] == choice["value"] == 96
    assert "median image 48 px; raised to 96" in choice["reason"]
    assert f"**imgsz** 96: {choice['reason']}" in (run / "report.md").read_text()


def test_a_bad_value_is_a_clear_config_error():
    from zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="imgsz"):
        resolve_config(BackendConfig, backend="x", task="detect", sets=["imgsz=big"])
