"""The MONAI network backends (segresnet, swin-unetr, attention-unet, dynunet): specs,
dynunet's nnU-Net-planned topology, and the conformance suite after one tiny epoch.

Learning is not expected from one epoch; the translator they share with smp is proven
correct in tests/test_smp.py (ground truth fed back scores 1.0)."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.backend import RunContext
from zoo.config import resolve_config
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.registry import get_registry
from zoo.tasks import get_task
from zoo.testing import Conformance, parametrize_with_checks

pytest.importorskip("monai")
torch = pytest.importorskip("torch")

TASK = get_task("semantic-seg")
NAMES = ["segresnet", "swin-unetr", "attention-unet", "dynunet"]
#: the narrowest each network accepts: fast tests (group norm: 8 groups; swin: 12 heads' worth)
TINY_WIDTH = {"segresnet": 8, "swin-unetr": 12, "attention-unet": 4, "dynunet": 4}


def _backend(name, tmp_path, imgsz, categories=("red", "blue"), **sets):
    cls = get_registry().backend(name).load()
    config = resolve_config(cls.Config, backend=name, task="semantic-seg", flags={"imgsz": imgsz},
                            sets=[f"{k}={v}" for k, v in sets.items()])
    return cls(TASK, Dataset(categories=list(categories)), config, RunContext(run_dir=tmp_path))


@pytest.mark.parametrize("side", [32, 40, 64, 96, 160, 200, 256, 512])
def test_dynunet_topology_is_nnunets_plan(side):
    nnunet = pytest.importorskip("nnunetv2.experiment_planning.experiment_planners.network_topology")
    from zoo.plugins.monai_nets.backend import nnunet_topology

    pools, _, kernels, padded, _ = nnunet.get_pool_and_conv_props((1.0, 1.0), (side, side), 4, 999)
    ours_kernels, ours_strides = nnunet_topology(side)
    assert ours_kernels == [k[0] for k in kernels] and len(ours_strides) - 1 == pools[0]
    from zoo.training.dense.geometry import canvas_side

    assert canvas_side(side, 2 ** pools[0]) == int(padded[0])  # nnU-Net pads the patch the same way


@pytest.mark.parametrize("name", NAMES)
def test_every_network_maps_the_canvas_to_class_logits(name, tmp_path):
    backend = _backend(name, tmp_path, imgsz=40, width=TINY_WIDTH[name])
    model = backend._build(pretrained=False)
    x = torch.zeros(1, 3, backend.side, backend.side)
    with torch.inference_mode():
        assert model.eval()(x).shape == (1, 3, backend.side, backend.side)
    stride = 2 ** backend.downsamplings
    assert backend.side % stride == 0 and backend.side >= 40


def test_dynunet_identity_carries_its_plan(tmp_path):
    backend = _backend("dynunet", tmp_path, imgsz=160)
    assert backend.side == 160 and backend.strides == [1, 2, 2, 2, 2, 2]
    assert backend._identity()["kernel_size"] == [3] * 6


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ZooError, match="multiple of 12"):
        _backend("swin-unetr", tmp_path, imgsz=32, width=16)._build(pretrained=False)
    with pytest.raises(ZooError, match="no pretrained"):
        _backend("segresnet", tmp_path, imgsz=32, pretrained="true")._build(pretrained=True)


def _tiny(out):
    from test_smp import tiny_dataset

    return tiny_dataset(out, n=6)


CONFORMANCE = [Conformance(name, "semantic-seg", dataset=_tiny, imgsz=32, sets=[f"width={TINY_WIDTH[name]}"])
               for name in NAMES]


@pytest.mark.slow
@parametrize_with_checks(CONFORMANCE)
def test_conformance_after_one_tiny_epoch(conformance, check):
    check(conformance)


@pytest.mark.slow
@pytest.mark.parametrize("case", CONFORMANCE, ids=repr)
def test_checkpoint_after_one_tiny_epoch(case):
    report = case.report()  # the training the checks above ran
    assert len(report.predictions) == 2 and "mHD95" in report.metrics
    state = torch.load(report.run_dir / "checkpoint" / "last.pt", weights_only=True)
    assert state["extra"]["classes"] == ["_background_", "red", "blue"] and state["extra"]["architecture"]
    assert all(np.isfinite(v) for v in [h["loss"] for h in state["history"]])
