"""The shared training loop on tiny real models: it learns, checkpoints, resumes, and takes
both loss conventions (logits + criterion, and a dict of losses)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from zoo.errors import ZooError  # noqa: E402
from zoo.training import (  # noqa: E402
    BEST,
    LAST,
    MappedDataset,
    TrainConfig,
    best_checkpoint,
    collate_lists,
    criterion_loss,
    fit,
    load_checkpoint,
    lr_factor,
)


def _blobs(n=64, seed=0):
    """Two well separated Gaussian blobs in 8-d: any working loop learns them in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 8, generator=g) + (y[:, None].float() * 2 - 1) * 2.0
    return [(x[i], int(y[i])) for i in range(n)]


def _classifier():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def _accuracy(model, samples):
    x = torch.stack([s[0] for s in samples])
    y = torch.tensor([s[1] for s in samples])
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_classifier_learns_and_checkpoints(tmp_path):
    samples = _blobs()
    model = _classifier()
    cfg = TrainConfig(epochs=6, batch=16, lr=0.05, warmup_iters=0)
    result = fit(
        model, MappedDataset(samples, lambda s: s), config=cfg, checkpoint_dir=tmp_path,
        loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()), extra={"classes": ["a", "b"]},
    )
    assert len(result.history) == 6 and result.iterations == 6 * 4
    assert result.history[-1]["loss"] < result.history[0]["loss"] * 0.5
    assert _accuracy(model, samples) >= 0.95
    # nothing scored: the last weights are kept (never a pick by training loss)
    assert (tmp_path / LAST).is_file() and not (tmp_path / BEST).exists()
    state = load_checkpoint(tmp_path / LAST)
    assert state["epoch"] == 5 and state["extra"] == {"classes": ["a", "b"]}
    assert best_checkpoint(tmp_path) == tmp_path / LAST and result.best_epoch == 5
    fresh = _classifier()
    fresh.load_state_dict(state["model"])
    assert _accuracy(fresh, samples) == _accuracy(model, samples)


def test_resume_continues_where_it_stopped(tmp_path):
    samples = _blobs(32)
    data = MappedDataset(samples, lambda s: s)
    loss = criterion_loss(torch.nn.CrossEntropyLoss())
    settings = TrainConfig(epochs=4, batch=8, lr=0.05, warmup_iters=2)

    straight = _classifier()
    fit(straight, data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path / "a")

    # the same run interrupted after 2 epochs, then resumed: identical weights at the end
    interrupted = _classifier()
    first = fit(interrupted, data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path / "b", max_iters=8)
    assert len(first.history) == 2
    resumed = _classifier()
    second = fit(resumed, data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path / "b")
    assert second.resumed_from == 1 and [r["epoch"] for r in second.history] == [0, 1, 2, 3]
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.allclose(p, q, atol=1e-6)

    # resume=False starts over
    third = fit(_classifier(), data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path / "b",
                resume=False, max_iters=1)
    assert third.resumed_from is None and third.iterations == 1


def test_checkpoints_are_recorded_and_a_kill_mid_save_still_resumes(tmp_path, monkeypatch):
    from zoo.checksums import Ledger, sha256_file

    data = MappedDataset(_blobs(16), lambda s: s)
    loss = criterion_loss(torch.nn.CrossEntropyLoss())
    settings = TrainConfig(epochs=3, batch=8, lr=0.05, warmup_iters=0)
    ledger = Ledger(tmp_path, {})  # as `zoo run` keeps it in the manifest
    fit(_classifier(), data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path, ledger=ledger, max_iters=2)
    assert ledger.hashes == {p.name: sha256_file(p) for p in tmp_path.glob("*.pt")}
    assert LAST in ledger.hashes

    # killed after the new last.pt replaced the old one, before the ledger dropped the old digest
    def killed(digests):
        raise KeyboardInterrupt

    monkeypatch.setattr(ledger, "settle", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(_classifier(), data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path, ledger=ledger, max_iters=4)
    monkeypatch.undo()
    assert len(ledger.hashes[LAST]) == 2 and ledger.verify(tmp_path / LAST)  # old or new: both the run's
    done = fit(_classifier(), data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path, ledger=ledger)
    assert done.resumed_from == 1 and ledger.hashes[LAST] == sha256_file(tmp_path / LAST)

    # a last.pt changed since is refused before it is read
    state = load_checkpoint(tmp_path / LAST)
    state["epoch"] = 0
    torch.save(state, tmp_path / LAST)
    with pytest.raises(ZooError, match="last.pt: changed since its run wrote it"):
        fit(_classifier(), data, config=settings, loss_fn=loss, checkpoint_dir=tmp_path, ledger=ledger)


class _DictLossModel(torch.nn.Module):
    """torchvision-detection style: ``model(images, targets)`` -> dict of losses in training."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, images, targets):
        means = torch.stack([self.conv(im[None]).mean() for im in images])
        wanted = torch.tensor([t["value"] for t in targets], dtype=torch.float32)
        return {"loss_a": ((means - wanted) ** 2).mean(), "loss_b": 0.1 * self.conv.weight.abs().mean()}


def test_dict_of_losses_and_list_batches(tmp_path):
    # images of different sizes: only list batches (collate_lists) can hold them
    items = [(torch.rand(3, 8 + i, 10), {"value": 1.0}) for i in range(6)]
    model = _DictLossModel()
    result = fit(model, MappedDataset(items, lambda s: s), config=TrainConfig(epochs=3, batch=3, lr=0.1),
                 collate=collate_lists, checkpoint_dir=tmp_path)
    row = result.history[-1]
    assert set(row) >= {"loss", "loss_a", "loss_b", "lr", "seconds"}
    assert math.isclose(row["loss"], row["loss_a"] + row["loss_b"], rel_tol=1e-5)
    assert result.history[-1]["loss_a"] < result.history[0]["loss_a"]


def test_val_fn_picks_best_and_iterable_batches(tmp_path):
    samples = _blobs(16)
    batches = [(torch.stack([s[0] for s in samples[i : i + 8]]), torch.tensor([s[1] for s in samples[i : i + 8]]))
               for i in (0, 8)]
    scores = iter([0.2, 0.9, 0.5, 0.9, 0.0])
    model = _classifier()
    result = fit(model, batches, config=TrainConfig(epochs=5, lr=0.01),
                 loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()), val_fn=lambda m: next(scores),
                 checkpoint_dir=tmp_path)
    assert result.iterations == 10 and result.best_epoch == 3  # a tie goes to the later epoch
    best = load_checkpoint(tmp_path / BEST)
    assert best["epoch"] == 3
    # fit returns with the kept (best) weights in the model, not the last epoch's
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, load_checkpoint(tmp_path / LAST)["model"][k]) for k, v in model.state_dict().items())


def test_divergence_and_bad_checkpoint_are_clear_errors(tmp_path):
    class Nan(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, y):
            return {"loss": self.w * float("nan")}

    with pytest.raises(ZooError, match="diverged"):
        fit(Nan(), [(torch.zeros(1), torch.zeros(1))], config=TrainConfig(epochs=1))
    (tmp_path / "junk.pt").write_text("not torch")
    with pytest.raises(ZooError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ZooError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_schedule_shapes():
    s = TrainConfig(epochs=10, warmup_iters=10, schedule="cosine", final_lr=0.01)
    assert lr_factor(0, 100, s) == pytest.approx(0.001)
    assert lr_factor(10, 100, s) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)) * 0.99 + 0.01)
    assert lr_factor(100, 100, s) == pytest.approx(0.01)
    step = TrainConfig(warmup_iters=0, schedule="step")
    assert [lr_factor(i, 90, step) for i in (0, 59, 60, 80)] == pytest.approx([1, 1, 0.1, 0.01])
    # warm-up never takes more than a fifth of a short run
    assert lr_factor(2, 10, TrainConfig(warmup_iters=1000, schedule="constant")) == 1.0


def test_val_every_scores_some_epochs_and_the_last(tmp_path):
    samples = _blobs(16)
    calls = []

    def val(model):
        calls.append(1)
        return [0.5, 0.1][len(calls) - 1]

    result = fit(_classifier(), MappedDataset(samples, lambda s: s), config=TrainConfig(epochs=5, batch=8, val_every=3),
                 loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()), val_fn=val, checkpoint_dir=tmp_path)
    assert [("val" in r) for r in result.history] == [False, False, True, False, True]
    assert result.best_epoch == 2 and load_checkpoint(tmp_path / BEST)["epoch"] == 2


def _slow_loss(seconds):
    """Cross-entropy that takes ``seconds`` of wall clock per batch, so epochs have a known length."""
    import time

    ce = criterion_loss(torch.nn.CrossEntropyLoss())

    def loss(model, batch):
        time.sleep(seconds)
        return ce(model, batch)

    return loss


def test_a_budget_sets_the_epochs_stretches_the_schedule_and_ends_on_time(tmp_path):
    # 4 batches of 0.05 s: about 0.2 s an epoch, so a 1.2 s budget fits about 6 of the 1000 asked
    cfg = TrainConfig(epochs=1000, batch=16, lr=0.05, warmup_iters=0, final_lr=0.01, budget=1.2)
    result = fit(_classifier(), MappedDataset(_blobs(), lambda s: s), config=cfg, checkpoint_dir=tmp_path,
                 loss_fn=_slow_loss(0.05))
    epochs = len(result.history)
    longest = max(row["seconds"] for row in result.history)
    assert 2 <= epochs <= 7
    assert result.seconds <= 1.2 + longest + 0.3  # within the budget plus one epoch
    # the cosine schedule spans the planned epochs: the last step is near lr * final_lr, not near lr
    assert result.history[-1]["lr"] < 0.05 * 0.35
    assert load_checkpoint(tmp_path / LAST)["planned_epochs"] >= epochs


def test_epoch_plan_rules():
    import logging

    from zoo.training import EpochPlan

    log = logging.getLogger("test")
    plan = EpochPlan(epochs=30, iters_per_epoch=10, budget=100.0)
    plan.after_epoch(0, elapsed=9.0, log=log)  # 9 s an epoch: 1 done + 91 s left = 10 more
    assert plan.epochs == 11 and plan.total_iters == 110
    plan.after_epoch(1, elapsed=30.0, log=log)  # slower now (15 s mean): the next would end at 45 s, fine
    assert plan.epochs == 11
    plan.after_epoch(5, elapsed=92.0, log=log)  # 92 + 15.3 > 100: this is the last epoch
    assert plan.epochs == 6
    assert EpochPlan(epochs=30, iters_per_epoch=10).total_iters == 300  # no budget: as asked
    tight = EpochPlan(epochs=30, iters_per_epoch=10, budget=5.0)
    tight.after_epoch(0, elapsed=9.0, log=log)  # one epoch already overran: it is the only one
    assert tight.epochs == 1
