"""The optimiser, its learning-rate schedule and the AMP gradient scaler, stepped together."""

from __future__ import annotations

import math

from zoo.errors import ZooError
from zoo.training.config import TrainConfig


def make_optimizer(model, s: TrainConfig):
    """SGD (momentum, Nesterov off) or AdamW; no weight decay on biases and norm layers,
    whose 1-d parameters only shrink toward zero under it."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ZooError("the model has no trainable parameters")
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum, **_fused(params))
    if s.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=s.lr, **_fused(params))
    raise ZooError(f"optimizer {s.optimizer!r}: expected sgd or adamw")


def _fused(params) -> dict:
    """``fused=True`` where torch has fused kernels for the parameters' device: one
    vectorised, multi-threaded pass over all parameters per step instead of torch's default
    on a CPU, a loop of small ops per tensor. On U-Net (resnet18, 92 tensors, one core) AdamW's
    step took 18 ms instead of 81, SGD's 13 instead of 24 (bench/README.md, issue 30)."""
    return {"fused": True} if {p.device.type for p in params} <= {"cpu", "cuda"} else {}


def lr_factor(it: int, total: int, s: TrainConfig) -> float:
    """The learning-rate multiplier at iteration ``it`` of ``total``: linear warm-up from
    0.001 over ``warmup_iters`` (capped at a fifth of training, so short runs still reach
    the peak), then the schedule."""
    warm = min(s.warmup_iters, max(total // 5, 0))
    w = 1.0
    if warm > 0 and it < warm:
        w = 0.001 + (1 - 0.001) * it / warm
    progress = min(it / max(total, 1), 1.0)
    if s.schedule == "cosine":
        f = s.final_lr + (1 - s.final_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    elif s.schedule == "step":
        f = 0.1 ** sum(progress >= m for m in (2 / 3, 8 / 9))
    elif s.schedule == "constant":
        f = 1.0
    else:
        raise ZooError(f"schedule {s.schedule!r}: expected cosine, step or constant")
    return w * f


class Optimisation:
    """The optimiser, its schedule (``lr_factor`` per iteration, over the plan's iterations,
    which a budget may change) and the AMP scaler, as one thing a training step steps and a
    checkpoint saves."""

    def __init__(self, model, s: TrainConfig, plan, use_amp: bool):
        import torch

        self.optimizer = make_optimizer(model, s)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lambda it: lr_factor(it, plan.total_iters, s))
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        self.use_amp = use_amp
        self.grad_clip = s.grad_clip
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, loss) -> None:
        """Back-propagate ``loss``, clip the L2 norm of all gradients, step, advance the schedule."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip and self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def state_dict(self) -> dict:
        """The checkpoint's ``optimizer``, ``scheduler`` and ``scaler`` entries."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else {},
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
