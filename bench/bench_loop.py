"""The shared training loop's own cost per step: zoo's ``fit`` against a minimal hand loop.

A tiny MLP on 4096 8-d samples (batch 16, 256 steps an epoch), so the model's work is small
and what the loop adds around it (loader, schedule, clipping, AMP scaler, history, the
epoch's checkpoint) shows. Both sides train the same model from the same seed on the same
batches; rounds alternate zoo / hand / hand / zoo so drift in the machine's load hits both
alike; process CPU time (user + sys). The figure to watch is the ratio, against the same
ratio from an earlier zoo (run this file with that checkout's ``zoo`` first on PYTHONPATH).

Usage: .venv/bin/python bench/bench_loop.py [--rounds 6] [--epochs 3]
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _samples():
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 8, generator=g)
    return list(zip(x, (x[:, 0] > 0).long()))


def _model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def zoo_side(samples, epochs: int) -> float:
    import torch

    from zoo.training import MappedDataset, TrainConfig, criterion_loss, fit

    model = _model()
    t = _cpu()
    fit(model, MappedDataset(samples, _identity), config=TrainConfig(epochs=epochs, batch=16, lr=0.05, warmup_iters=10),
        loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()), checkpoint_dir=tempfile.mkdtemp())
    return _cpu() - t


def hand_side(samples, epochs: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    t = _cpu()
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(epoch)
        for x, y in DataLoader(samples, batch_size=16, shuffle=True, generator=g):
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return _cpu() - t


def _identity(sample):
    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    import torch

    import zoo

    torch.set_num_threads(1)
    logging.disable(logging.INFO)
    samples = _samples()
    zoo_side(samples, 1), hand_side(samples, 1)  # warm-up, untimed
    zoo_t, hand_t = [], []
    for r in range(args.rounds):
        sides = [(zoo_side, zoo_t), (hand_side, hand_t)]
        for side, times in sides if r % 2 == 0 else sides[::-1]:
            times.append(side(samples, args.epochs))
    steps = args.epochs * 256
    print(f"zoo from {zoo.__file__}")
    print(f"zoo  best {min(zoo_t):.3f} s  median {statistics.median(zoo_t):.3f} s  ({steps} steps)")
    print(f"hand best {min(hand_t):.3f} s  median {statistics.median(hand_t):.3f} s")
    ratios = [z / h for z, h in zip(zoo_t, hand_t)]
    print(f"ratio of bests {min(zoo_t) / min(hand_t):.3f}x  median of paired ratios {statistics.median(ratios):.3f}x")


if __name__ == "__main__":
    main()
