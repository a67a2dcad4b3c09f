"""The one seeding function: Python, numpy and torch from one number."""

from __future__ import annotations

import importlib.util
import random


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and (when installed) torch's random generators with ``seed``.

    The pipeline calls it before a backend builds its model, the shared loop before it
    trains, and a backend with its own loop (detectron2) before that loop."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)
