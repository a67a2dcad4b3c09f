"""The one training loop for plain ``torch.nn.Module`` backends.

Every plugin that trains a plain module (torchvision R-CNNs and classifiers, smp, ...) calls
:func:`fit` instead of writing its own loop, so epochs, batching, device, AMP, seeding, the
optimiser and its schedule, gradient clipping, checkpoints, resuming and the progress bar
behave the same for every backend. torch is imported inside functions only.

The room, a module a job: :mod:`.config` (:class:`TrainConfig`, the one training config),
:mod:`.loop` (:func:`fit` and its steps), :mod:`.optim` (optimiser, schedule, AMP scaler),
:mod:`.data` (samples, batches, per-epoch loaders), :mod:`.checkpoints` (save, load,
restore), :mod:`.budget` (:class:`EpochPlan`), :mod:`.seeding`, and beside them
:mod:`.devices`, :mod:`.distributed`, :mod:`.fetch` (published weights) and
:mod:`.autoconfig` (data-fitted defaults). What plugins import is re-exported here.

How a plugin uses it::

    from zoo.training import TrainConfig, MappedDataset, fit, criterion_loss, collate_lists

    class Config(TrainConfig):          # the backend's settings: epochs, batch, lr, ...
        backbone: str = "resnet18"

    # classification: model(x) -> logits, scored by a criterion
    data = MappedDataset(train.images, load_sample)        # load_sample(record) -> (x, y)
    result = fit(model, data, config=self.config, device=self.ctx.device,
                 checkpoint_dir=self.ctx.checkpoint_dir,
                 loss_fn=criterion_loss(torch.nn.CrossEntropyLoss()),
                 extra={"classes": meta.classes}, ledger=self.ctx.ledger)

    # detection: model(images, targets) -> dict of losses (torchvision's convention,
    # the default loss_fn), batches kept as lists because images differ in size
    result = fit(model, data, config=self.config, device=self.ctx.device,
                 checkpoint_dir=self.ctx.checkpoint_dir, collate=collate_lists)

    # model selection is zoo's protocol (zoo.selection): pass what fit() got
    result = fit(model, data, ..., selection=selection, val_fn=selection.scorer(self.predict))

    # the same, from a Backend's fit: config, device, checkpoints, --resume, log and ledger
    # from the backend, the selection scored with its own predict
    result = fit_backend(self, model, data, selection, extra=..., description=self.name)
    return result.summary()

    # later, in load(): the weights the protocol kept (best.pt, else last.pt), checked against
    # the sha256 the run recorded when it wrote them
    restore(model, ctx.checkpoint_dir, {"classes": meta.classes}, ledger=ctx.ledger)

Model selection: with a :class:`~zoo.selection.Selection`, the protocol decides (and ``fit``
returns with the model holding the weights it kept, as ``restore`` gives them later). ``last``
scores nothing (``val_fn`` is never called) and keeps the final weights; ``best`` scores
the selection split with ``val_fn`` every ``val_every`` epochs and after the last one, and
keeps the best; ``patience`` stops training that many epochs after the best score. Without
a selection, a given ``val_fn`` picks the best epoch (direct use, tests).

Checkpoints: ``last.pt`` after every epoch and, when the best epoch is kept, ``best.pt``
whenever the epoch's score equals or beats the best so far (higher is better); ``best.pt``
is a hard link to that epoch's ``last.pt`` (a copy where links fail), so
marking the best costs no second write. Both hold ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``epoch`` (0-based,
completed), ``best_score``, ``history`` and the caller's ``extra`` (plain values only: the
files are read back with ``torch.load(weights_only=True)``, which unpickles no code). With ``resume=True`` (the
default) a ``last.pt`` already in ``checkpoint_dir`` is continued from the next epoch, with
the data order each epoch would have had (the shuffle is seeded per epoch).
"""

from zoo.training.budget import EpochPlan
from zoo.training.checkpoints import (
    BEST,
    LAST,
    best_checkpoint,
    copy_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
    weights_of,
)
from zoo.training.config import TrainConfig
from zoo.training.data import MappedDataset, collate_lists, predict_batches, to_device
from zoo.training.loop import TrainResult, criterion_loss, fit, fit_backend, loss_dict_fn
from zoo.training.optim import lr_factor, make_optimizer
from zoo.training.seeding import seed_everything

__all__ = [
    "BEST", "LAST", "EpochPlan", "MappedDataset", "TrainConfig", "TrainResult", "best_checkpoint",
    "collate_lists", "copy_checkpoint", "criterion_loss", "fit", "fit_backend", "load_checkpoint", "loss_dict_fn",
    "lr_factor", "make_optimizer", "predict_batches", "restore", "save_checkpoint", "seed_everything",
    "to_device", "weights_of",
]
