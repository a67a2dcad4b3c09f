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
