"""Plugin specs: what a plugin declares about itself *without* importing its framework.

A hook returns specs; ``zoo list`` reads them to show every backend and whether its
framework is installed (``importlib.util.find_spec``, which does not import). The class or
function behind a spec is imported only by :meth:`load`, when it is actually used.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import MissingDependency, ZooError


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def _missing(modules: tuple[str, ...]) -> list[str]:
    out = []
    for m in modules:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


@dataclass(frozen=True)
class BackendSpec:
    """A trainable model family.

    name:        what users type after ``--backend`` (unique across all plugins)
    tasks:       the task names it serves
    entry:       ``"module:Class"`` of its :class:`zoo.backend.Backend` subclass
    requires:    importable module names it needs (checked without importing)
    extra:       the pip extra that installs them (``pip install 'zoo[yolo]'``)
    install:     the command that installs them when an extra cannot (``zoo install detectron2``)
    framework:   the framework behind it, shown on leaderboards (default: the plugin's name)
    description: one line for ``zoo list``
    defaults:    ``"package:folder"``: the folder of the plugin's own package (package data)
                 holding ``<task>.yaml``, the backend's shipped defaults for each task
                 (e.g. ``"zoo.plugins.smp:configs/unet"``); empty when it ships none
    options:     what this name sets in a class several names share (one class per idea):
                 ``{"architecture": "Unet"}``, ``{"head": "mask"}``; the class reads them as
                 ``self.option(key)`` (:meth:`zoo.backend.Backend.option`)
    """

    name: str
    tasks: tuple[str, ...]
    entry: str
    requires: tuple[str, ...] = ()
    extra: str = ""
    description: str = ""
    install: str = ""
    framework: str = ""
    defaults: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    plugin: str = field(default="", compare=False)  # filled by the registry

    @property
    def framework_name(self) -> str:
        return self.framework or self.plugin

    @property
    def install_hint(self) -> str:
        """How to install what is missing, as a command line."""
        if self.install:
            return self.install
        if self.extra:
            return f"pip install 'zoo[{self.extra}]'"
        return f"pip install {' '.join(self.missing())}"

    def missing(self) -> list[str]:
        return _missing(self.requires)

    def defaults_file(self, task: str):
        """The plugin's YAML defaults for ``task`` (an ``importlib.resources`` Traversable:
        read where the package is installed, a wheel's package data included), or None.
        Imports the plugin's spec package only, never its framework."""
        if not self.defaults:
            return None
        from importlib import resources

        package, _, folder = self.defaults.partition(":")
        node = resources.files(package).joinpath(f"{folder}/{task}.yaml" if folder else f"{task}.yaml")
        return node if node.is_file() else None

    @property
    def installed(self) -> bool:
        return not self.missing()

    def load(self):
        """Import and return the backend class, bound to this spec (``Backend.for_spec``: its
        instances read ``spec.name`` and ``spec.options``); a clear error when its framework
        is absent."""
        missing = self.missing()
        if missing:
            raise MissingDependency(
                f"backend '{self.name}' needs {', '.join(missing)}, which is not installed: {self.install_hint}"
            )
        cls = _import(self.entry)
        bind = getattr(cls, "for_spec", None)  # not a Backend: zoo.testing.check_registers says so
        return bind(self) if bind is not None else cls


@dataclass(frozen=True)
class ReaderSpec:
    """An annotation format zoo can read.

    entry: ``"module:function"`` with signature ``read(path, *, labels=None) -> Dataset``
    sniff: ``"module:function"`` with signature ``sniff(path) -> float`` (0 = not this
           format, 1 = certainly this format), used by ``--from auto``
    records: ``"module:function"`` yielding the format's images one at a time, for a writer
           that streams (``WriterSpec.stream``), ``records(path, warnings, flag_names) ->
           Iterator[zoo.data.builder.DraftRecord]``; empty where the format cannot
    fix: ``"module:function"`` writing a corrected copy of a folder of this format by editing
           its own files (``zoo check --fix``), ``fix(dataset, plan, src, out)`` with a
           :class:`zoo.data.lint_fix.FixPlan`; empty where the format is fixed by rewriting it
           through the writer of the same name (``WriterSpec.round_trip``) or not at all
    """

    name: str
    entry: str
    sniff: str = ""
    description: str = ""
    records: str = ""
    fix: str = ""
    plugin: str = field(default="", compare=False)

    def load(self):
        return _import(self.entry)

    def load_fix(self):
        return _import(self.fix)

    def load_sniffer(self):
        return _import(self.sniff) if self.sniff else None

    def load_records(self):
        return _import(self.records)


#: The options ``zoo convert`` offers a writer beyond the task; a writer takes those its spec
#: lists in ``WriterSpec.options`` as keyword arguments: ``copy_images`` (False under
#: ``--no-images``: the annotations alone, the images left where they are) and ``geometry``
#: (``--geometry``: ``"exact"`` shapes, or ``"pixels"``, boxes and areas of the painted pixels).
WRITER_OPTIONS = ("copy_images", "geometry")

#: ``WriterSpec.default_task``: the task is chosen from what the data holds
#: (:func:`zoo.data.output.task_the_data_holds`).
TASK_FROM_DATA = "auto"


@dataclass(frozen=True)
class WriterSpec:
    """An output format. entry: ``"module:function"``, ``write(dataset, out_dir, *, task) -> Path``.

    tasks: the tasks it can write.

    default_task: what it writes when no task is given: a task name; :data:`TASK_FROM_DATA`
    (``"auto"``), the richest task the data holds (keypoint, classify, instance-seg, detect);
    None, whatever the dataset holds, as it is.

    options: which of :data:`WRITER_OPTIONS` its ``write`` takes (as keyword arguments).

    round_trip: what it writes reads back through the reader of the same name as the dataset
    it was given, so ``zoo check --fix`` rewrites a folder of that format through it.

    predictions: ``"module:function"`` writing one image's prediction in this format, where
    the format can hold one (labelme: a file to correct by hand), ``write(prediction, meta,
    record, path, *, image_path=None, min_score=0.0) -> Path``; empty where it cannot.
    ``zoo run`` writes them under ``predictions/<name>/``, ``zoo predict`` into ``--out``.
    predictions_suffix: the suffix of that per-image file (``path``).

    stream: ``"module:function"`` writing a reader's records as they come (``ReaderSpec.records``),
    without holding the dataset, ``stream(records, out_dir, *, root, warnings, labels,
    geometry, copy_images) -> dict`` (``Dataset.summary()``-style counts); empty where it cannot.
    """

    name: str
    entry: str
    tasks: tuple[str, ...] = ()
    description: str = ""
    predictions: str = ""
    stream: str = ""
    predictions_suffix: str = ".json"
    default_task: str | None = None
    options: tuple[str, ...] = ()
    round_trip: bool = False
    plugin: str = field(default="", compare=False)

    def __post_init__(self):
        unknown = sorted(set(self.options) - set(WRITER_OPTIONS))
        if unknown:
            raise ZooError(f"writer '{self.name}' declares unknown option(s) {', '.join(unknown)}; "
                           f"zoo offers {', '.join(WRITER_OPTIONS)}")

    def load(self):
        return _import(self.entry)

    def load_predictions(self):
        if not self.predictions:
            raise ZooError(f"writer '{self.name}' does not write predictions")
        return _import(self.predictions)

    def load_stream(self):
        return _import(self.stream)


@dataclass(frozen=True)
class InstallerSpec:
    """A framework ``zoo install NAME`` can install into the running interpreter's environment.

    entry: ``"module:function"``, ``install(say) -> str``: ``say(text)`` reports each step,
           the result is a one-line summary; it does nothing when the framework is already
           importable, and raises a ZooError when it cannot install it
    """

    name: str
    entry: str
    description: str = ""
    plugin: str = field(default="", compare=False)

    def load(self):
        return _import(self.entry)
