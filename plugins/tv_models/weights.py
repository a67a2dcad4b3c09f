"""Starting weights, offline: torchvision's pretrained weights only from the local torch hub
cache, a user's ``--weights`` file only from disk. zoo never downloads at run time, so a
missing file is one clear error instead of a download that retries for twenty seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

_log = logging.getLogger("zoo.tv_models")


def cached_weights(name: str, what: str = "pretrained"):
    """The torchvision weights enum of model ``name`` (its DEFAULT), if its file is cached.

    Raises a :class:`ZooError` naming the file and where it must be when it is not.
    """
    import torch
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise ZooError(f"{what}: torchvision has no pretrained weights for {name!r}") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.is_file():
        raise ZooError(
            f"{what}: the ImageNet weights of {name} are not in the local torch cache ({path}); "
            "zoo does not download at run time: copy that file there (from "
            f"{weights.url}), pass --weights FILE, or set pretrained: false"
        )
    # torchvision unpickles this file in full; torchvision's own files are plain tensors, so
    # one that is not (a swapped cache file) is refused before torchvision ever opens it
    from zoo.training import load_checkpoint

    load_checkpoint(path)
    return weights


def load_matching(model, state: dict[str, Any], source: str) -> int:
    """Copy every tensor of ``state`` whose name and shape match into ``model``.

    A different class count (a COCO or ImageNet head) leaves those layers as initialised,
    which is what starting from someone else's weights means. Raises when nothing matches:
    the file is for another architecture.
    """
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not usable:
        raise ZooError(
            f"{source}: none of its {len(state)} tensors fit this model "
            "(weights of a different architecture or backbone?)"
        )
    model.load_state_dict(usable, strict=False)
    skipped = len(own) - len(usable)
    _log.info("%s: loaded %d tensors, %d left as initialised", source, len(usable), skipped)
    return len(usable)
