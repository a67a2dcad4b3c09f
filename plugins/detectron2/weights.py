"""Starting weights for the detectron2 backends.

``pretrained: true`` uses the model zoo's checkpoint for the run's config (COCO-trained; the
layers that depend on the number of classes are left as initialised), kept in the cache
``$ZOO_HOME/weights/detectron2/`` (default ``~/.cache/zoo/weights/detectron2/``) at the path
of its URL after ``/detectron2/``, and fetched there from detectron2's model-zoo URL when
missing (zoo.training.fetch: ``ZOO_WEIGHTS_MIRROR``, ``ZOO_OFFLINE``; the model zoo publishes no
checksum, so the file's sha256 is recorded, not checked).

Model-zoo checkpoints are Python pickles of numpy arrays. zoo unpickles them with an
unpickler that can build nothing but numpy arrays, dicts and plain values, so a file
from elsewhere cannot run code (the same guarantee ``torch.load(weights_only=True)`` gives
for ``.pth`` files, which are read that way).
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, ZooError

_log = logging.getLogger("zoo.detectron2")

#: the only globals a model-zoo checkpoint needs to rebuild its numpy arrays
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a weights file holds arrays only")


def weights_home() -> Path:
    home = os.environ.get("ZOO_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "zoo") / "weights" / "detectron2"


def cached_model_zoo_weights(config_name: str) -> Path:
    """The local copy of the model zoo's checkpoint for ``config_name``, fetched if missing."""
    from detectron2.model_zoo.model_zoo import _ModelZooUrls

    url = _ModelZooUrls.query(config_name)
    if url is None:
        raise ConfigError(
            f"pretrained: the detectron2 model zoo has no checkpoint for {config_name}; "
            "pass --weights FILE or set pretrained: false"
        )
    from zoo.training.fetch import fetch

    local = weights_home() / url.split("/detectron2/", 1)[-1]
    return fetch(url, local, what=f"pretrained {config_name}")


def read_weights(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """A state dict (name -> tensor or array) from a model-zoo ``.pkl``, a detectron2 or zoo
    ``.pth``/``.pt`` checkpoint, or a plain state dict; nothing but arrays is unpickled
    (``trust``, ``--trust-weights``: a ``.pth`` may hold pickled objects)."""
    from zoo.training import weights_of

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"weights: {path} does not exist")
    if path.suffix == ".pkl":
        try:
            state = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        except Exception as e:  # noqa: BLE001 - a corrupt or hostile file is the user's input
            raise ZooError(f"{path}: not a readable detectron2 weights file ({type(e).__name__}: {e})") from None
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        if not isinstance(state, dict) or not state:
            raise ZooError(f"{path}: holds no model weights (expected a state dict)")
        return state
    return weights_of(path, trust=trust)


def load_into(model, state: dict[str, Any], source: str) -> None:
    """``state`` into ``model`` by detectron2's own rules: model-zoo and Caffe2 names are
    matched, tensors whose shape differs (a head for another number of classes) are skipped."""
    from detectron2.checkpoint import DetectionCheckpointer

    checkpointer = DetectionCheckpointer(model)
    incompatible = checkpointer._load_model({"model": dict(state), "matching_heuristics": True})
    loaded = len(model.state_dict()) - len(incompatible.missing_keys)
    if loaded <= 0:
        raise ZooError(f"{source}: none of its {len(state)} tensors fit this model (weights of another architecture?)")
    _log.info("%s: loaded %d tensors, %d left as initialised", source, loaded, len(incompatible.missing_keys))
