"""zoo's first-party backends, installed as ``zoo.plugins``.

Each backend family is a sub-package whose ``__init__`` only declares specs (no framework
import) and is registered through the ``zoo`` entry-point group in pyproject.toml, the same
way a third-party package registers its own.
"""
