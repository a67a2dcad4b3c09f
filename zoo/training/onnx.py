"""A plain ``torch.nn.Module`` as an ONNX graph, and the graph run by onnxruntime.

:func:`export_module` writes the network (torch's TorchScript-based exporter: it needs only
the ``onnx`` package, where the newer ``dynamo`` exporter also needs ``onnxscript``) and
checks on the backend's own sample batch that onnxruntime gives what torch gives.
:class:`OnnxNetwork` is that graph behind the one call a backend's ``predict`` makes on its
network (``model(x) -> tensor``), so a backend predicts through onnxruntime with its own pre-
and post-processing unchanged: only the network is swapped, and parity is about the network.

onnx, onnxruntime and torch are imported inside functions (``pip install 'zoo[export]'``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import MissingDependency, ZooError

INPUT = "images"
OUTPUT = "logits"
#: torch's legacy exporter supports opsets 7..20; 17 holds every op of these networks
#: (LayerNormalization for the transformers) and every onnxruntime since 1.14 runs it.
DEFAULT_OPSET = 17
#: raw outputs agree when max |onnx - torch| <= RAW_ATOL + RAW_RTOL * max |torch|: float32
#: kernels of two libraries sum in other orders, which moves logits by ~1e-5 relative.
RAW_ATOL = 1e-4
RAW_RTOL = 1e-3


def require_onnx():
    """``(onnx, onnxruntime)``, or one line saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise MissingDependency(f"ONNX export needs onnx and onnxruntime ({e.name} is missing): "
                                "pip install 'zoo[export]'") from None
    return onnx, onnxruntime


@dataclass(frozen=True)
class RawParity:
    """How far onnxruntime's outputs are from torch's on the same batch."""

    max_abs_diff: float
    max_abs_torch: float

    @property
    def tolerance(self) -> float:
        return RAW_ATOL + RAW_RTOL * self.max_abs_torch

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"max_abs_diff": self.max_abs_diff, "max_abs_torch": self.max_abs_torch,
                "tolerance": self.tolerance, "rule": f"max |onnx - torch| <= {RAW_ATOL} + {RAW_RTOL} * max |torch|",
                "ok": self.ok}


def raw_parity(expected, got) -> RawParity:
    """Compare numpy arrays (or lists of them, one per output) elementwise."""
    import numpy as np

    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    got = got if isinstance(got, (list, tuple)) else [got]
    if len(expected) != len(got):
        raise ZooError(f"the ONNX graph has {len(got)} output(s), the network {len(expected)}")
    # a detector's outputs may be empty (nothing found): nothing to differ there
    pairs = [(np.asarray(e, np.float64), np.asarray(g, np.float64)) for e, g in zip(expected, got) if np.size(e)]
    diff = max((float(np.max(np.abs(e - g))) for e, g in pairs), default=0.0)
    scale = max((float(np.max(np.abs(e))) for e, _ in pairs), default=0.0)
    return RawParity(diff, scale)


def export_module(model, example, path: Path, *, opset: int | None = None, dynamic: bool = False) -> dict[str, Any]:
    """Write ``model`` (eval mode, on the CPU) as ONNX at ``path``, traced on ``example``
    (``(N, C, H, W)``); the batch axis is always free, ``dynamic`` frees height and width
    too. Returns what ``model.json`` says about the graph, with the raw parity on ``example``."""
    import torch

    onnx, _ = require_onnx()
    opset = opset or DEFAULT_OPSET
    model = model.to("cpu").eval()
    example = example.to("cpu")
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        # the exporter's deprecation and tracer notes are torch's business, not the user's
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: axes, OUTPUT: {0: "batch"}})
            expected = model(example).float().numpy()
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:  # an op ONNX cannot hold
        tmp.unlink(missing_ok=True)
        raise ZooError(f"ONNX export failed: {str(e).strip().splitlines()[0]}") from None
    onnx.checker.check_model(str(tmp))
    tmp.replace(path)
    got = OnnxNetwork(path).run(example.numpy())
    return {"opset": opset, "input": {"name": INPUT, "shape": _shape(example.shape, axes)},
            "output": {"name": OUTPUT, "shape": _shape(expected.shape, {0: "batch", **({2: "height", 3: "width"}
                                                                                      if dynamic and expected.ndim == 4
                                                                                      else {})})},
            "raw_parity": raw_parity(expected, got).to_dict()}


def _shape(shape, axes: dict[int, str]) -> list:
    return [axes.get(i, int(n)) for i, n in enumerate(shape)]


def providers(device: str = "cpu") -> list[str]:
    """onnxruntime's execution providers for zoo's device: CUDA first where asked and present."""
    _, ort = require_onnx()
    have = ort.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class StandIn:
    """What a backend's ``predict`` asks of its torch network besides calling it: ``eval``,
    ``to`` (no-ops: the graph runs where its session was made) and ``parameters`` (none to
    count or train), for the classes that stand in for a network with an ONNX graph."""

    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def parameters(self):
        return iter(())


class OnnxNetwork(StandIn):
    """An ONNX graph with one input and one output, called as the torch network it replaces:
    ``net(x)`` takes and returns a torch tensor (on ``x``'s device); :class:`StandIn` lets a
    backend's ``predict`` run unchanged."""

    def __init__(self, path: Path, device: str = "cpu"):
        _, ort = require_onnx()
        if not Path(path).is_file():
            raise ZooError(f"{path}: no ONNX model here; make it with `zoo export`")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers(device))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ZooError(f"{path}: onnxruntime cannot load it ({str(e).strip().splitlines()[0]})") from None
        inp = self.session.get_inputs()[0]
        self.input = inp.name
        batch = inp.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        self.path = Path(path)

    def run(self, x):
        """numpy ``(N, ...)`` float32 -> the (first) output."""
        return self.run_all(x)[0]

    def run_all(self, x) -> list:
        """numpy ``(N, ...)`` float32 -> every output; a graph with a fixed batch of 1 gets the
        images one by one."""
        import numpy as np

        x = np.ascontiguousarray(x, dtype=np.float32)
        n = self.fixed_batch
        if n is None or n == x.shape[0]:
            return self.session.run(None, {self.input: x})
        if n != 1:
            raise ZooError(f"{self.path}: the graph takes batches of {n}; export it again with --dynamic")
        parts = [self.session.run(None, {self.input: x[i : i + 1]}) for i in range(x.shape[0])]
        return [np.concatenate(outs) for outs in zip(*parts)]

    def __call__(self, x):
        import torch

        return torch.from_numpy(self.run(x.detach().to("cpu").float().numpy())).to(x.device)


def with_onnx_network(backend, onnx_file: Path):
    """``backend`` (built, not loaded) predicting through ``onnx_file``: its ``model`` is the
    graph (:class:`OnnxNetwork`), for a backend whose ``predict`` calls ``self.model(x)``."""
    backend.model = OnnxNetwork(onnx_file, backend.ctx.device)
    return backend
