"""Device names: "auto" resolved once, in one place (torch imported only here, lazily)."""

from __future__ import annotations

from zoo.errors import ZooError


def resolve_device(name: str | None) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is usable, else ``"cpu"``; others are checked."""
    name = (name or "auto").strip().lower()
    if name == "cpu":
        return "cpu"
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ZooError(f"--device {name}: no CUDA GPU is usable here; use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ZooError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
        return name
    if name.isdigit():
        return resolve_device(f"cuda:{name}")
    indices = name.removeprefix("cuda:").split(",")
    if len(indices) > 1 and all(i.strip().isdigit() for i in indices):
        # several GPUs for one process: for a framework with its own multi-GPU training
        # (ultralytics' DDP); zoo's own loop refuses it and points at torchrun
        for i in indices:
            resolve_device(f"cuda:{i.strip()}")
        return "cuda:" + ",".join(i.strip() for i in indices)
    raise ZooError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or N,M (several GPUs)")
