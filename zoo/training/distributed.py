"""Training on several processes (GPUs, nodes) under the launcher people already use.

``torchrun``, Slurm's ``srun`` wrappers, Kubeflow's PyTorchJob ... all start one process per
GPU and tell each its place through ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (and
``MASTER_ADDR`` / ``MASTER_PORT``). zoo reads those: with a world of more than one process,
``zoo run`` joins the process group (nccl on CUDA, gloo on CPU), every rank trains
(:func:`zoo.training.fit` wraps the model in DistributedDataParallel and gives each rank a
disjoint part of every epoch), and rank 0 alone writes the run folder, the checkpoints and
the manifest, then predicts and scores once. Without those variables nothing here imports
torch and every function answers "one process".
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes, ``local_rank`` on its node."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and scores."""
        return self.rank == 0


def world() -> World:
    """The launcher's ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (one process when unset)."""
    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        return int(value) if value.isdigit() else default

    return World(number("WORLD_SIZE", 1), number("RANK", 0), number("LOCAL_RANK", 0))


def local_device(device: str, w: World | None = None) -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` when the run asked for CUDA (one GPU per
    process, the launcher's convention), else the device as it is."""
    w = w or world()
    if w.distributed and device.startswith("cuda"):
        return f"cuda:{w.local_rank}"
    return device


def initialised() -> bool:
    if not world().distributed:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def join() -> bool:
    """Join the launcher's process group (once); False when there is only one process.

    gloo carries CPU tensors, nccl CUDA ones (both where a GPU is usable, so the group
    serves whichever device the run's config picks)."""
    w = world()
    if not w.distributed:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    if torch.cuda.is_available():
        torch.cuda.set_device(w.local_rank)
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    return True


def leave() -> None:
    if initialised():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op with one process)."""
    if initialised():
        import torch.distributed as dist

        dist.barrier()


def share(value, source: int = 0):
    """``value`` as rank ``source`` has it, on every rank (any picklable value)."""
    if not initialised():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]
