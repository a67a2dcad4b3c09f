"""Starting weights for backends built on torchvision models (the R-CNNs, the classifiers,
YOLACT's backbone): torchvision's published weights in the torch hub cache (fetched there by
:mod:`zoo.training.fetch` when missing, the hash prefix of the file name checked as torch.hub
does), and any state loaded into a model tensor by tensor where name and shape match.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.training import load_checkpoint
from zoo.training.fetch import fetch

_log = logging.getLogger("zoo.training")


def cached_weights(name: str, what: str = "pretrained"):
    """The torchvision weights enum of model ``name`` (its DEFAULT), its file in the torch hub
    cache (``$TORCH_HOME/hub/checkpoints``), fetched there if missing (:func:`zoo.training.fetch.fetch`:
    ``ZOO_OFFLINE`` / no network is one clear error naming the file and where to put it).
    """
    import torch
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise ZooError(f"{what}: torchvision has no pretrained weights for {name!r}") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    # torch.hub checks the hash of what it downloads, and takes a cached file as the user's
    fetch(weights.url, path, sha256_prefix=hash_prefix(path.name), check_cached=False, what=what)
    # torchvision unpickles this file in full; torchvision's own files are plain tensors, so
    # one that is not (a swapped cache file) is refused before torchvision ever opens it
    load_checkpoint(path)
    return weights


def hash_prefix(file_name: str) -> str | None:
    """The sha256 prefix torchvision publishes in its file names (``resnet18-f37072fd.pth``),
    found the way torch.hub's ``check_hash`` finds it."""
    from torch.hub import HASH_REGEX

    found = HASH_REGEX.search(file_name)
    return found.group(1) if found else None


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
