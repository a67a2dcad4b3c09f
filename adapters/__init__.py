"""Annotation formats in and out, installed as ``zoo.adapters``.

Registered through the ``zoo`` entry-point group like any plugin; readers and writers are
imported only when used (this module imports nothing heavy).
"""

from zoo import hookimpl
from zoo.specs import ReaderSpec, WriterSpec

_A = "zoo.adapters"


@hookimpl
def zoo_readers():
    return [
        ReaderSpec(name="labelme", entry=f"{_A}.labelme:read", sniff=f"{_A}.labelme:sniff",
                   description="labelme / X-AnyLabeling JSON (every version)"),
    ]


@hookimpl
def zoo_writers():
    return []
