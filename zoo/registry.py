"""The plugin registry: a pluggy manager over the ``zoo`` entry-point group.

Loading entry points imports only the plugins' light spec modules; backends, readers and
writers are imported when used (:meth:`zoo.specs.BackendSpec.load`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import ZooError, unknown
from zoo.metrics import EvaluatorSpec, no_evaluator
from zoo.specs import BackendSpec, InstallerSpec, ReaderSpec, WriterSpec

ENTRY_POINT_GROUP = "zoo"


class Registry:
    """All installed plugins and the specs they declare."""

    def __init__(self, plugins: Iterable[Any] = (), entry_points: bool = True):
        plugins = list(plugins)
        self._args = (plugins, entry_points)  # to rebuild it in another process (__reduce__)
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        if entry_points:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for p in plugins:
            self.pm.register(p)
        self.pm.check_pending()

    def __reduce__(self):
        # a worker process (zoo compare --jobs, Ray) rebuilds it: the same plugin objects
        # (pickled) and the same entry points, loaded there
        return Registry, self._args

    def _collect(self, hook_name: str) -> dict[str, Any]:
        hook = getattr(self.pm.hook, hook_name)
        found: dict[str, Any] = {}
        for impl in hook.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            for spec in impl.function() or ():
                spec = _with_plugin(spec, plugin_name)
                if spec.name in found:
                    raise ZooError(
                        f"two plugins both provide '{spec.name}': "
                        f"{found[spec.name].plugin} and {plugin_name}; uninstall one"
                    )
                found[spec.name] = spec
        return dict(sorted(found.items()))

    @functools.cached_property
    def backends(self) -> dict[str, BackendSpec]:
        return self._collect("zoo_backends")

    @functools.cached_property
    def readers(self) -> dict[str, ReaderSpec]:
        return self._collect("zoo_readers")

    @functools.cached_property
    def writers(self) -> dict[str, WriterSpec]:
        return self._collect("zoo_writers")

    @functools.cached_property
    def installers(self) -> dict[str, InstallerSpec]:
        return self._collect("zoo_installers")

    @functools.cached_property
    def evaluators(self) -> dict[str, EvaluatorSpec]:
        """By task name: the evaluator that scores it."""
        return self._collect("zoo_evaluators")

    def evaluator(self, task: str) -> EvaluatorSpec:
        try:
            return self.evaluators[task]
        except KeyError:
            raise no_evaluator(task) from None

    def backend(self, name: str, task: str | None = None) -> BackendSpec:
        try:
            spec = self.backends[name]
        except KeyError:
            raise unknown("backend", name, self.backends) from None
        if task is not None and task not in spec.tasks:
            others = [b.name for b in self.backends.values() if task in b.tasks]
            raise ZooError(
                f"backend '{name}' does not do {task} (it does {', '.join(spec.tasks)}); "
                f"backends for {task}: {', '.join(others) or 'none installed'}"
            )
        return spec

    def reader(self, name: str) -> ReaderSpec:
        try:
            return self.readers[name]
        except KeyError:
            raise unknown("input format", name, self.readers) from None

    def installer(self, name: str) -> InstallerSpec:
        try:
            return self.installers[name]
        except KeyError:
            raise unknown("installable framework", name, self.installers) from None

    def writer(self, name: str) -> WriterSpec:
        try:
            return self.writers[name]
        except KeyError:
            raise unknown("output format", name, self.writers) from None


def _with_plugin(spec, plugin_name: str):
    from dataclasses import replace

    return replace(spec, plugin=plugin_name)


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry of installed plugins."""
    return Registry()
