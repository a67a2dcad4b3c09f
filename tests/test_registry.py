"""The plugin registry: entry points, specs without imports, clear errors."""

from __future__ import annotations

import pytest

from zoo import hookimpl
from zoo.errors import MissingDependency, ZooError
from zoo.registry import Registry
from zoo.specs import BackendSpec


class _Plugin:
    def __init__(self, *specs):
        self.specs = list(specs)

    @hookimpl
    def zoo_backends(self):
        return self.specs


def test_first_party_plugins_come_through_entry_points():
    reg = Registry()
    assert "yolov8" in reg.backends
    assert reg.backends["yolov8"].plugin == "yolov8"  # the entry-point name
    assert set(reg.backends["yolov8"].tasks) >= {"detect", "instance-seg", "keypoint", "classify"}


def test_duplicate_backend_names_are_an_error_naming_both():
    spec = BackendSpec(name="same", tasks=("detect",), entry="x:y", description="d")
    reg = Registry(plugins=[_Plugin(spec), _Plugin(spec)], entry_points=False)
    with pytest.raises(ZooError, match="two plugins both provide 'same'"):
        reg.backends


def test_unknown_backend_and_wrong_task_errors():
    spec = BackendSpec(name="boxer", tasks=("detect",), entry="x:y", description="d")
    reg = Registry(plugins=[_Plugin(spec)], entry_points=False)
    with pytest.raises(ZooError, match=r"unknown backend 'boxr' \(did you mean 'boxer'\?\)"):
        reg.backend("boxr")
    with pytest.raises(ZooError, match=r"backend 'boxer' does not do classify.*backends for classify: none"):
        reg.backend("boxer", task="classify")


def test_missing_framework_is_reported_without_importing():
    spec = BackendSpec(
        name="ghost", tasks=("detect",), entry="ghost_framework.net:Net",
        requires=("ghost_framework_that_is_not_installed",), extra="ghost", description="d",
    )
    assert not spec.installed
    with pytest.raises(MissingDependency, match=r"pip install 'zoo\[ghost\]'"):
        spec.load()


def test_a_spec_binds_its_class_so_one_class_serves_several_names():
    from toy_backend import Toy

    a = BackendSpec(name="toy-a", tasks=("detect",), entry="toy_backend:Toy", description="d", options={"size": 1})
    b = BackendSpec(name="toy-b", tasks=("detect",), entry="toy_backend:Toy", description="d", options={"size": 2})
    reg = Registry(plugins=[_Plugin(a, b)], entry_points=False)
    cls_a, cls_b = reg.backend("toy-a").load(), reg.backend("toy-b").load()
    assert issubclass(cls_a, Toy) and issubclass(cls_b, Toy) and cls_a is not cls_b
    assert cls_a.__name__ == cls_b.__name__ == "Toy" and cls_a.Config is Toy.Config
    assert (cls_a.spec.name, cls_a.option("size")) == ("toy-a", 1) and (cls_b.spec.name, cls_b.option("size")) == ("toy-b", 2)
    assert reg.backend("toy-a").load() is cls_a  # the same class on every load: isinstance holds across loads
    with pytest.raises(ZooError, match=r"option 'depth' of its backend spec"):
        cls_a.option("depth")
    with pytest.raises(ZooError, match=r"Toy needs the option 'size'.*through the registry"):
        Toy.option("size")  # the class itself, not loaded through a spec
    assert Toy.spec is None  # binding never changes the class it binds


def test_an_entry_that_is_not_a_backend_comes_back_unbound():
    # zoo.testing.check_registers then says it is not a Backend subclass
    assert BackendSpec(name="odd", tasks=("detect",), entry="builtins:dict", description="d").load() is dict


def test_first_party_backends_are_one_class_per_idea_with_options():
    from zoo.plugins.smp import ARCHITECTURES
    from zoo.plugins.tv_models import CLASSIFIERS

    reg = Registry()
    by_entry: dict[str, dict[str, dict]] = {}
    for spec in reg.backends.values():
        by_entry.setdefault(spec.entry, {})[spec.name] = dict(spec.options)
    assert by_entry["zoo.plugins.smp.backend:SmpBackend"] == {n: {"architecture": a} for n, (a, _) in ARCHITECTURES.items()}
    assert by_entry["zoo.plugins.tv_models.classifiers:TvClassifier"] == {n: {"architecture": n} for n in CLASSIFIERS}
    assert by_entry["zoo.plugins.tv_models.rcnn:RCNNBackend"] == {
        "faster-rcnn": {"head": "faster"}, "mask-rcnn": {"head": "mask"}, "keypoint-rcnn": {"head": "keypoint"}}
    assert by_entry["zoo.plugins.detectron2.backend:D2Backend"] == {
        "d2-faster-rcnn": {"model": "faster"}, "d2-mask-rcnn": {"model": "mask"}, "d2-keypoint-rcnn": {"model": "keypoint"},
        "d2-retinanet": {"model": "retinanet"}, "d2-cascade-rcnn": {"model": "cascade"}}
