"""The detectron2 backends' settings and the detectron2 config they become.

A run's detectron2 config is built in layers, later wins:

1. the model-zoo YAML (``config``; each backend's R50-FPN default in :data:`DEFAULT_CONFIGS`),
   or a local YAML;
2. what zoo maps from its own settings: classes, keypoints, ``imgsz`` -> ``INPUT.*_SIZE_*``,
   anchors scaled to ``imgsz``, solver (lr, schedule, warm-up, clipping), test thresholds;
3. from scratch (no ``weights`` / ``pretrained``): what makes training stable (see
   :func:`_from_scratch`);
4. ``opts``: any detectron2 key, e.g. ``--set 'opts={MODEL.RPN.NMS_THRESH: 0.6}'``, checked
   against detectron2's keys (the near miss is suggested).

detectron2 is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from zoo.config import BackendConfig
from zoo.dataset import Dataset
from zoo.errors import ConfigError, did_you_mean

#: backend kind -> its model-zoo config (R50-FPN, the 3x schedules' architecture)
DEFAULT_CONFIGS = {
    "faster": "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
    "mask": "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
    "keypoint": "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml",
    "retinanet": "COCO-Detection/retinanet_R_50_FPN_3x.yaml",
    "cascade": "Misc/cascade_mask_rcnn_R_50_FPN_3x.yaml",
}
#: backend kind -> (META_ARCHITECTURE, ROI_HEADS.NAME or None) its config must have
ARCHITECTURES = {
    "faster": ("GeneralizedRCNN", None),
    "mask": ("GeneralizedRCNN", None),
    "keypoint": ("GeneralizedRCNN", None),
    "retinanet": ("RetinaNet", None),
    "cascade": ("GeneralizedRCNN", "CascadeROIHeads"),
}
_MODEL_ZOO_SIZE = 800  # the short side model-zoo configs train at; their anchors are made for it


class D2Config(BackendConfig):
    """Settings of the detectron2 backends (the common ones are :class:`zoo.config.BackendConfig`'s)."""

    batch: int = 4  # images per step, as the torchvision R-CNNs ship (an R50-FPN step is heavy on a CPU)
    config: str = ""  # a model-zoo config ("COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml") or a local YAML; "" = the backend's
    lr: float = 0.01  # SOLVER.BASE_LR, the peak after warm-up
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "step", "constant"] = "cosine"  # step: 10x down at 2/3 and 8/9 of training
    final_lr: float = 0.01  # cosine: ends at lr * final_lr
    warmup_iters: int = 100  # linear warm-up from lr / 1000, at most a fifth of training
    grad_clip: float = 10.0  # max L2 norm of all gradients together; 0 = no clipping
    amp: bool = True  # mixed precision, on CUDA only
    norm: Literal["BN", "GN", "SyncBN", "FrozenBN", ""] | None = None  # backbone norm; None: BN from scratch, the config's with weights
    anchor_sizes: list[float] | None = None  # None: the config's anchors scaled by imgsz / 800
    hflip: bool = True  # random horizontal flips in training (keypoints need left/right pairs)
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100  # per image (COCO's maxDets)
    proposals: int = 300  # RPN proposals kept per image at test time (twice that in training)
    rois_per_image: int = 128  # proposals sampled per image to train the box head (model zoo: 512)
    opts: dict[str, Any] = Field(default_factory=dict)  # any detectron2 key: value, applied last


# ----------------------------------------------------------------------------- config files


def model_zoo_root() -> Path:
    """detectron2's packaged model-zoo configs (found without pkg_resources)."""
    return Path(str(resources.files("detectron2.model_zoo").joinpath("configs")))


def config_file(name: str) -> Path:
    """A local YAML, else a model-zoo config path; a clear error for anything else."""
    local = Path(name).expanduser()
    if local.suffix == ".py" or name.endswith(".py"):
        raise ConfigError(
            f"config: {name} is a LazyConfig (.py); zoo builds detectron2 models from YAML configs: "
            "pick a .yaml one"
        )
    if local.is_file():
        _check_plain_yaml(local)
        return local
    root = model_zoo_root()
    path = root / name
    if path.is_file():
        return path
    known = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml"))
    hint = did_you_mean(name, known) or f"; e.g. {', '.join(DEFAULT_CONFIGS.values())}"
    raise ConfigError(f"config: {name!r} is neither a local YAML file nor a detectron2 model-zoo config{hint}")


def _check_plain_yaml(path: Path) -> None:
    """A user's YAML (and each local ``_BASE_`` it names) must load with ``yaml.safe_load``:
    detectron2's loader falls back to ``yaml.unsafe_load``, which can run code from the file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(
            f"config: {path}: not plain YAML ({type(e).__name__}); zoo never loads YAML with Python tags"
        ) from None
    base = data.get("_BASE_") if isinstance(data, dict) else None
    if isinstance(base, str) and not base.startswith(("detectron2://", "http://", "https://")):
        parent = (path.parent / base).resolve()
        if parent.is_file() and not parent.is_relative_to(model_zoo_root().resolve()):
            _check_plain_yaml(parent)


# ----------------------------------------------------------------------------- the detectron2 config


def build_cfg(
    kind: str, task: str, meta: Dataset, config: D2Config, device: str, *, from_weights: bool, max_iter: int = 1
):
    """The detectron2 ``CfgNode`` of this run (see the module doc for its layers), frozen;
    ``max_iter`` sizes the solver's schedule."""
    from detectron2.config import get_cfg

    from zoo.plugins.detectron2.ops import refuse_unavailable

    name = config.config or DEFAULT_CONFIGS[kind]
    cfg = get_cfg()
    try:
        path = config_file(name)  # a local YAML is checked to be plain YAML here
        with _quiet("fvcore.common.config"):
            # Model-zoo YAMLs such as Base-RetinaNet.yaml compute their anchors with a Python
            # tag; fvcore loads those with unsafe_load and warns "your machine may be at risk"
            # on every run. They are detectron2's own files, installed with it.
            cfg.merge_from_file(str(path))
    except (KeyError, ValueError, AssertionError) as e:
        raise ConfigError(f"config: {name}: detectron2 cannot read it ({e})") from None
    _check_architecture(kind, cfg, name)
    _map_settings(cfg, kind, task, meta, config, device)
    set_schedule(cfg, config, max_iter)
    if not from_weights:
        _from_scratch(cfg, config)
    apply_opts(cfg, config.opts)
    refuse_unavailable(cfg, f"config {name}")
    cfg.freeze()
    return cfg


@contextlib.contextmanager
def _quiet(logger: str):
    import logging

    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _check_architecture(kind: str, cfg, name: str) -> None:
    arch, heads = ARCHITECTURES[kind]
    if cfg.MODEL.META_ARCHITECTURE != arch or (heads and cfg.MODEL.ROI_HEADS.NAME != heads):
        got = cfg.MODEL.META_ARCHITECTURE + (f" with {cfg.MODEL.ROI_HEADS.NAME}" if arch == "GeneralizedRCNN" else "")
        want = arch + (f" with {heads}" if heads else "")
        raise ConfigError(f"config: {name} builds a {got}; this backend needs a {want} config")


def _map_settings(cfg, kind: str, task: str, meta: Dataset, c: D2Config, device: str) -> None:
    m = cfg.MODEL
    m.DEVICE = device
    m.WEIGHTS = ""  # zoo loads starting weights itself (never a download; see weights.py)
    m.ROI_HEADS.NUM_CLASSES = m.RETINANET.NUM_CLASSES = len(meta.categories)
    m.MASK_ON = task == "instance-seg"
    m.KEYPOINT_ON = kind == "keypoint"
    if m.KEYPOINT_ON:
        m.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = len(meta.keypoint_names)
    # masks come as COCO RLE from zoo's one rasteriser (polygons and mask shapes alike)
    cfg.INPUT.MASK_FORMAT = "bitmask"
    # imgsz: the longer side at imgsz, never detectron2's 800-1333 px (small images are not blown up)
    cfg.INPUT.MIN_SIZE_TRAIN = (c.imgsz,)
    cfg.INPUT.MAX_SIZE_TRAIN = c.imgsz
    cfg.INPUT.MIN_SIZE_TEST = c.imgsz
    cfg.INPUT.MAX_SIZE_TEST = c.imgsz
    cfg.INPUT.RANDOM_FLIP = "horizontal" if c.hflip else "none"
    m.ANCHOR_GENERATOR.SIZES = anchor_sizes(m.ANCHOR_GENERATOR.SIZES, c)
    # test-time thresholds, for the two-stage heads and RetinaNet alike
    m.ROI_HEADS.SCORE_THRESH_TEST = m.RETINANET.SCORE_THRESH_TEST = c.score_threshold
    m.ROI_HEADS.NMS_THRESH_TEST = m.RETINANET.NMS_THRESH_TEST = c.nms_iou
    cfg.TEST.DETECTIONS_PER_IMAGE = c.max_detections
    # the model zoo's RoI counts are made for 800-px COCO images; at a few hundred pixels they only cost time
    m.RPN.PRE_NMS_TOPK_TEST = m.RPN.POST_NMS_TOPK_TEST = c.proposals
    m.RPN.PRE_NMS_TOPK_TRAIN = m.RPN.POST_NMS_TOPK_TRAIN = 2 * c.proposals
    m.ROI_HEADS.BATCH_SIZE_PER_IMAGE = c.rois_per_image
    s = cfg.SOLVER
    s.IMS_PER_BATCH = c.batch
    s.BASE_LR = c.lr
    s.MOMENTUM = c.momentum
    s.WEIGHT_DECAY = c.weight_decay
    s.AMP.ENABLED = c.amp and device.startswith("cuda")
    # detectron2's yacs clippers work per parameter; grad_clip is one norm over all gradients,
    # as zoo's own loop clips, applied by the backend (clip_all_gradients)
    s.CLIP_GRADIENTS.ENABLED = False
    cfg.DATALOADER.NUM_WORKERS = c.workers
    cfg.SEED = c.seed
    cfg.OUTPUT_DIR = ""  # nothing of detectron2's is written to disk: zoo saves its own checkpoints
    if c.norm is not None:
        m.RESNETS.NORM = c.norm


def set_schedule(cfg, c: D2Config, max_iter: int) -> None:
    """Solver length and schedule once the number of iterations is known."""
    s = cfg.SOLVER
    s.MAX_ITER = max_iter
    s.WARMUP_ITERS = min(c.warmup_iters, max_iter // 5)  # short runs still reach the peak
    s.WARMUP_FACTOR = 0.001
    s.WARMUP_METHOD = "linear"
    if c.schedule == "cosine":
        s.LR_SCHEDULER_NAME = "WarmupCosineLR"
        s.BASE_LR_END = c.lr * c.final_lr
    else:
        s.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
        s.STEPS = tuple(math.ceil(max_iter * f) for f in (2 / 3, 8 / 9)) if c.schedule == "step" else ()
        s.GAMMA = 0.1
    s.CHECKPOINT_PERIOD = max_iter + 1  # detectron2's own (pickling) checkpointer never runs


def anchor_sizes(config_sizes, c: D2Config) -> list[list[float]]:
    """The config's anchor sizes (per FPN level) scaled by ``imgsz / 800``, as the torchvision
    backends scale theirs: objects keep the size relation to anchors the model zoo tuned at
    800 px. ``anchor_sizes`` replaces them, one size per level."""
    if c.anchor_sizes:
        return [[float(s)] for s in c.anchor_sizes]
    scale = c.imgsz / _MODEL_ZOO_SIZE
    return [[round(float(s) * scale, 2) for s in level] for level in config_sizes]


def _from_scratch(cfg, c: D2Config) -> None:
    """What makes the model-zoo recipe train from random weights.

    Model-zoo configs expect ImageNet weights: ``FrozenBN`` keeps batch-norm statistics and
    affine parameters fixed at their (here random) values, and ``FREEZE_AT: 2`` leaves the
    stem and first stage untrained. From scratch that gave a NaN loss at iteration 0.
    (He et al., "Rethinking ImageNet Pre-training", train detectors from scratch with
    normalisation that learns; detectron2's scratch configs use GN.)
    """
    m = cfg.MODEL
    if c.norm is None:
        m.RESNETS.NORM = "BN"  # statistics and affine parameters that learn (GN: --set norm=GN)
    m.BACKBONE.FREEZE_AT = 0  # random layers must train too
    # MSRA's Caffe2 ResNets put the stride in the 1x1 conv; that only matters for their weights
    m.RESNETS.STRIDE_IN_1X1 = False
    # The other guards, warm-up from lr / 1000, gradient clipping and a peak lr of 0.01 (the
    # model zoo's 0.02 is for 16 images per batch with ImageNet features), are zoo's settings
    # above (warmup_iters, grad_clip, lr), mapped for every run.


def apply_opts(cfg, opts: dict[str, Any]) -> None:
    """``opts`` (full detectron2 key -> value) onto ``cfg``; an unknown key suggests the near miss."""
    if not opts:
        return
    known = flat_keys(cfg)
    for key, value in opts.items():
        if key not in known:
            raise ConfigError(f"opts: unknown detectron2 key '{key}'{did_you_mean(key, known)}")
        try:
            cfg.merge_from_list([key, value])
        except (ValueError, AssertionError, KeyError) as e:
            raise ConfigError(f"opts: {key}: {e}") from None


def flat_keys(node, prefix: str = "") -> list[str]:
    """Every leaf key of a ``CfgNode`` as ``A.B.C``."""
    from detectron2.config import CfgNode

    out = []
    for k, v in node.items():
        if isinstance(v, CfgNode):
            out.extend(flat_keys(v, f"{prefix}{k}."))
        else:
            out.append(f"{prefix}{k}")
    return out
