"""ONNX export of ``nnunet``: the graph is nnU-Net's network on one patch (its planned patch
size; the batch is free). Everything nnU-Net does around the network stays outside the
graph, in nnU-Net's own predictor, which runs unchanged on onnxruntime (only its
``network`` is swapped for :class:`OnnxPatchNetwork`): preprocessing (the plan's
normalisation), the sliding window over the image with the plan's tile step, the Gaussian
weighting of overlapping patches, test-time mirroring, the softmax and argmax, and the
resampling back to the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.plugins.nnunet.raw import network_input
from zoo.training.onnx import OnnxNetwork, export_module


def sample_patches(predictor, images) -> Any:
    """``images`` (each ``(C, H, W)`` as nnU-Net's reader gives it) preprocessed by the
    plan, as the sliding window feeds the network: the first ``patch_size`` window of each
    (zero-padded where the image is smaller, as nnU-Net pads), stacked ``(N, C, h, w)``."""
    import numpy as np
    import torch

    patch = list(predictor.configuration_manager.patch_size)
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    windows = []
    for image in images:
        data, _, _ = preprocessor.run_case_npy(image[:, None].astype(np.float32), None, {"spacing": [999.0, 1.0, 1.0]},
                                               predictor.plans_manager, predictor.configuration_manager,
                                               predictor.dataset_json)
        plane = data[:, 0]  # (C, H, W): the 2d configuration sees one slice
        padded = np.zeros((plane.shape[0], max(patch[0], plane.shape[1]), max(patch[1], plane.shape[2])), np.float32)
        padded[:, : plane.shape[1], : plane.shape[2]] = plane
        windows.append(padded[:, : patch[0], : patch[1]])
    return torch.from_numpy(np.stack(windows))


def export_nnunet(backend, out_dir: Path, *, opset: int | None, dynamic: bool, records) -> dict[str, Any]:
    """Write ``backend``'s network (loaded: ``backend.network``, ``backend.predictor``) as
    ``out_dir/model.onnx``, traced and compared on the first patch of each of ``records``."""
    images = [network_input(r)[0] for r in records]
    info = export_module(backend.network, sample_patches(backend.predictor, images), out_dir / "model.onnx",
                         opset=opset, dynamic=dynamic)
    c = backend.config
    plan = backend.plan
    info["input"].update({
        "colour": "the channels of nnU-Net's dataset (8-bit images: R, G, B), channels first",
        "patch_size": plan["patch_size"],
        "fit": "nnU-Net's sliding window: patches of patch_size over the preprocessed image (zero-padded to at "
               f"least one patch), step tile_step_size {c.tile_step_size} x patch_size",
        "intensity": f"nnU-Net's plan, per channel: {plan['normalization']}",
        "mean": "per image (z-score) or per dataset (CT), as the plan says", "std": "likewise",
    })
    info["output"]["meaning"] = "logits per class for the patch, background first (class i at channel i + 1)"
    info["postprocess"] = (
        "outside the graph, nnU-Net's own predictor (nnUNetPredictor.predict_single_npy_array): patches weighted "
        "by a Gaussian (sigma 1/8 of the patch) and summed over the sliding window, "
        + ("test-time mirroring along the plan's axes (each patch also flipped, predicted, flipped back, averaged), "
           if c.mirroring else "no mirroring (mirroring=false), ")
        + "softmax, argmax, resampled back to the image's size")
    info["nnunet"] = {"plan": plan, "tile_step_size": c.tile_step_size, "mirroring": c.mirroring,
                      "gaussian": True}
    return info


class OnnxPatchNetwork(OnnxNetwork):
    """The exported network where nnU-Net's predictor expects its torch network: the
    predictor loads each fold's weights into it before predicting, which the graph already holds."""

    def load_state_dict(self, *args, **kwargs) -> None:
        return None


def with_onnx_patch_network(backend, onnx_file: Path):
    """``backend`` (loaded) whose predictor runs ``onnx_file`` instead of its torch network."""
    backend.predictor.network = OnnxPatchNetwork(onnx_file, backend.ctx.device)
    backend.network = None  # what predicts is the graph; num_parameters has nothing to count
    return backend
