"""zoo: run established vision models on your annotation folder and score them alike.

Importing ``zoo`` is cheap on purpose: no framework (torch, ultralytics, ...) is imported
until a command actually needs it, so ``zoo --help`` and ``zoo list`` stay instant.
"""

__version__ = "0.3.0"

import pluggy as _pluggy

#: Decorator for a plugin's hook implementations (see :mod:`zoo.hookspecs`).
hookimpl = _pluggy.HookimplMarker("zoo")
