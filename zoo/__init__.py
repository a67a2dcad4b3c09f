"""zoo: run established vision models on your annotation folder and score them alike.

Importing ``zoo`` is cheap on purpose: no framework (torch, ultralytics, ...) is imported
until a command actually needs it, so ``zoo --help`` and ``zoo list`` stay instant.
"""

__version__ = "0.3.0"

import os as _os

import pluggy as _pluggy

# The user's OMP_NUM_THREADS as zoo's first process found it, before any framework ran:
# ultralytics sets it to 1 at import when it is unset, which must not read as the user's
# choice (zoo.training.cpu.training_threads). Kept in the environment so that the processes
# zoo starts after such an import still see what the user set.
_os.environ.setdefault("ZOO_USER_OMP_NUM_THREADS", _os.environ.get("OMP_NUM_THREADS", ""))

#: Decorator for a plugin's hook implementations (see :mod:`zoo.hookspecs`).
hookimpl = _pluggy.HookimplMarker("zoo")
