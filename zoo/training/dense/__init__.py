"""The kit for a dense network on the shared loop: semantic-seg from any network that maps
``(N, 3, S, S)`` images to ``(N, classes, S, S)`` logits.

A plugin subclasses :class:`SegmentationBackend` (and, for its own settings,
:class:`SegmentationConfig`) and says how to build its network; the kit does the rest, a
module a job: :mod:`.geometry` (the letterbox onto a square canvas and back), :mod:`.samples`
(images and label maps as tensors, decoded once per run), :mod:`.loss` (Dice + CE, 255
ignored), :mod:`.backend` (fit on :func:`zoo.training.fit_backend`, predict, load) and
:mod:`.export` (the network alone as ONNX). smp's architectures and MONAI's networks are
built on it. No torch import until a backend trains or predicts.
"""

from zoo.training.dense.backend import SegmentationBackend, SegmentationConfig

__all__ = ["SegmentationBackend", "SegmentationConfig"]
