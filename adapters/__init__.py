"""Annotation formats in and out, installed as ``zoo.adapters``.

Registered through the ``zoo`` entry-point group like any plugin; readers and writers are
imported only when used.
"""

from zoo import hookimpl
from zoo.specs import ReaderSpec, WriterSpec


@hookimpl
def zoo_readers():
    return []


@hookimpl
def zoo_writers():
    return []
