"""The one training config: the settings the shared loop reads, which a backend's ``Config`` extends."""

from __future__ import annotations

from typing import Any, Literal

from zoo.config import BackendConfig
from zoo.errors import ZooError


class TrainConfig(BackendConfig):
    """The settings :func:`fit` reads, the one training config: a backend's ``Config``
    subclasses it, and tests build it directly (``TrainConfig(epochs=3, batch=8)``).

    ``lr`` is the peak rate after warm-up; ``schedule`` then lowers it per iteration:
    ``cosine`` to ``lr * final_lr`` at the end, ``step`` by 10x at 2/3 and 8/9 of the epochs
    (torchvision's reference recipe), ``constant`` not at all.
    """

    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    final_lr: float = 0.01
    warmup_iters: int = 100
    grad_clip: float = 10.0  # max L2 norm of all gradients; 0 = no clipping
    amp: bool = True  # mixed precision: fp16 autocast on CUDA, bf16 on a CPU with native bf16 (zoo.training.cpu)
    val_every: int = 1  # score the selection split (val_fn) every this many epochs and after the last one

    @classmethod
    def of(cls, config: Any) -> TrainConfig:
        """``config`` as a :class:`TrainConfig`: itself when it is one, else its same-named
        settings (a backend ``Config`` that does not subclass this one), the rest at their
        defaults. ``epochs`` must be a number by the time :func:`fit` reads it."""
        if not isinstance(config, cls):
            config = cls(**{name: getattr(config, name) for name in cls.model_fields if hasattr(config, name)})
        if not isinstance(config.epochs, int):
            raise ZooError(f"epochs {config.epochs!r}: training needs a number of epochs "
                           "(`auto` is chosen from the data by zoo.training.autoconfig before fit)")
        return config
