"""Building an smp model, with errors a user can act on.

smp and timm fetch pretrained encoder weights from the Hugging Face hub, and without
``HF_HUB_OFFLINE`` they retry the network for 20-50 s before failing. So the hub is
switched offline before smp / timm are imported (:func:`import_smp`), and zoo fetches what smp's own
encoders need itself (:func:`fetch_encoder_weights`, through zoo.training.fetch: progress,
``ZOO_WEIGHTS_MIRROR``, ``ZOO_OFFLINE``) into the Hugging Face cache, at the revision smp
pins, where smp then finds it offline. timm encoders (``tu-...``) are read from the local
Hugging Face cache only; a missing file is a :class:`ZooError` that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, did_you_mean
from zoo.training.dense.loss import import_smp  # the smp import the kit's Dice uses too

#: smp class -> the encoder depth it is built with unless ``encoder_depth`` is set.
DEFAULT_DEPTH = {"PSPNet": 3}
#: smp class -> the smallest canvas side it runs on: PAN's feature pyramid attention halves
#: its stride-16 features three more times, so below 128 px it pools to nothing.
MIN_SIDE = {"PAN": 128}
#: Decoders whose ``decoder_channels`` list has one entry per encoder stage.
_PER_STAGE_CHANNELS = {"Unet": 5, "UnetPlusPlus": 5, "MAnet": 5}
_STAGE_CHANNELS = (256, 128, 64, 32, 16)


def depth_of(architecture: str, encoder_depth: int | None) -> int:
    return encoder_depth if encoder_depth is not None else DEFAULT_DEPTH.get(architecture, 5)


def stride_of(architecture: str, encoder_depth: int | None) -> int:
    """The factor both input sides must be multiples of: ``2 ** depth`` covers every smp
    architecture (the dilated ones, DeepLab and PAN, need less)."""
    return 2 ** depth_of(architecture, encoder_depth)


def min_side_of(architecture: str) -> int:
    return MIN_SIDE.get(architecture, 0)


def check_encoder(encoder: str) -> None:
    """A :class:`ZooError` (with the near miss) unless smp or timm knows ``encoder``."""
    _check_encoder(import_smp(), encoder)


def _check_encoder(smp, encoder: str) -> None:
    if encoder.startswith("tu-"):
        import timm

        if not timm.is_model(encoder[3:]):
            raise ZooError(
                f"encoder '{encoder}': timm has no model '{encoder[3:]}'"
                f"{did_you_mean(encoder[3:], timm.list_models())}"
            )
        return
    names = smp.encoders.get_encoder_names()
    if encoder not in names:
        raise ZooError(
            f"encoder '{encoder}' is not an smp encoder{did_you_mean(encoder, names)}; "
            "use an smp name (resnet34, efficientnet-b0, mit_b0, ...) or 'tu-<timm model>'"
        )


def _weights_arg(smp, encoder: str, encoder_weights: str | None) -> Any:
    """What smp's ``encoder_weights`` wants: True for timm encoders, else a weights name."""
    if encoder.startswith("tu-"):
        return True
    name = encoder_weights or "imagenet"
    available = list(smp.encoders.encoders[encoder]["pretrained_settings"])
    if name not in available:
        raise ZooError(
            f"encoder '{encoder}' has no pretrained weights '{name}'; "
            f"available: {', '.join(available) or 'none'} (set encoder_weights=...)"
        )
    return name


def fetch_encoder_weights(smp, encoder: str, weights: str) -> None:
    """The two files smp's hub download reads (``config.json``, ``model.safetensors`` of the
    repository and revision smp pins for ``encoder``'s ``weights``), fetched into the Hugging
    Face cache's snapshot folder. Safetensors hold tensors only; nothing is unpickled."""
    from huggingface_hub import constants

    from zoo.training.fetch import fetch

    settings = smp.encoders.encoders[encoder]["pretrained_settings"][weights]
    repo, revision = settings["repo_id"], settings["revision"]
    snapshot = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    for file in ("config.json", "model.safetensors"):
        path = f"{repo}/resolve/{revision}/{file}"
        fetch(f"{constants.ENDPOINT}/{path}", snapshot / file, mirror_path=path,
              what=f"encoder '{encoder}' '{weights}' weights")


def build_model(
    architecture: str,
    *,
    encoder: str,
    classes: int,
    encoder_depth: int | None = None,
    pretrained: bool = False,
    encoder_weights: str | None = None,
    model_args: dict[str, Any] | None = None,
):
    """An ``smp.<architecture>`` with ``classes`` output channels.

    Encoder weights are loaded only when asked for (``pretrained`` or ``encoder_weights``),
    fetched into the Hugging Face cache if missing (timm encoders: only from that cache).
    """
    smp = import_smp()
    _check_encoder(smp, encoder)
    kwargs: dict[str, Any] = dict(model_args or {})
    depth = depth_of(architecture, encoder_depth)
    kwargs["encoder_depth"] = depth
    if architecture in _PER_STAGE_CHANNELS and "decoder_channels" not in kwargs:
        kwargs["decoder_channels"] = _STAGE_CHANNELS[-depth:]
    want_weights = pretrained or encoder_weights is not None
    weights = _weights_arg(smp, encoder, encoder_weights) if want_weights else None
    if isinstance(weights, str):
        fetch_encoder_weights(smp, encoder, weights)
    cls = getattr(smp, architecture)
    try:
        return cls(encoder_name=encoder, encoder_weights=weights, in_channels=3, classes=classes, **kwargs)
    except Exception as e:
        if type(e).__module__.startswith("huggingface_hub") or isinstance(e, OSError):
            what = f"'{weights}' weights" if isinstance(weights, str) else "pretrained weights"
            raise ZooError(
                f"encoder '{encoder}': {what} are not in the local Hugging Face cache "
                f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and zoo does not download; "
                "copy them there from a machine with network, or train from scratch "
                "(pretrained: false, no encoder_weights)"
            ) from None
        if isinstance(e, (ValueError, KeyError, TypeError, RuntimeError, AssertionError)):
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
            raise ZooError(f"{architecture} with encoder '{encoder}' (depth {depth}): {msg}") from None
        raise
