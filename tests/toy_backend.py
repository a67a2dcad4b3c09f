"""A trivial, framework-free backend for run-pipeline tests, registered as a plugin object.

``mode: mean`` (default) learns the training set's mean box (relative to image size) per
category and predicts it on every image (semantic-seg: the box filled with its category;
classify: the most frequent class). ``mode: oracle`` predicts the ground truth: it
memorises the training and selection images it gets in ``fit`` and, for any other image,
peeks at the dataset's answer key when it predicts (:func:`answer_key`: the annotations
under the dataset's root). ``fit`` never gets the scored split (zoo's selection protocol),
so the peek is the oracle's deliberate cheat: the pipeline plus the shared evaluator must
score it 1.0.

``ZOO_TOY_FAIL=fit|predict|load`` makes that step raise, to test failures and --resume.

``pretrained: true`` fetches ``weights_url`` into ``$ZOO_HOME/weights/toy/`` through
zoo.training.fetch, as a real backend fetches its framework's published weights.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from zoo import hookimpl
from zoo.backend import Backend
from zoo.config import BackendConfig
from zoo.predictions import ClassPrediction, Detection, InstancePredictions, SemanticPrediction
from zoo.specs import BackendSpec

TASKS = ("classify", "detect", "semantic-seg", "instance-seg", "keypoint")


class ToyConfig(BackendConfig):
    mode: str = "mean"
    epochs: int = 1
    weights_url: str = "https://example.invalid/toy/toy-weights.bin"


def _fail(step: str) -> None:
    if os.environ.get("ZOO_TOY_FAIL") == f"interrupt-{step}":
        raise KeyboardInterrupt
    if os.environ.get("ZOO_TOY_FAIL") == step:
        raise RuntimeError(f"toy backend told to fail in {step}")


class Toy(Backend):
    Config = ToyConfig

    def fit(self, train, selection):
        _fail("fit")
        if self.config.pretrained:
            from zoo.training.fetch import fetch

            home = Path(os.environ.get("ZOO_HOME", Path.home() / ".cache" / "zoo"))
            fetch(self.config.weights_url, home / "weights" / "toy" / self.config.weights_url.rsplit("/", 1)[-1])
        root = str(Path(self.meta.root).resolve()) if self.meta.root is not None else None
        state: dict = {"mode": self.config.mode, "boxes": {}, "classes": [], "memory": {}, "root": root}
        per_cat: dict[int, list] = {}
        for r in train.images:
            for i in r.instances:
                if not i.ignore:
                    x0, y0, x1, y1 = i.bbox
                    kps = [(x / r.width, y / r.height, v) for x, y, v in (i.keypoints or [])]
                    per_cat.setdefault(i.category, []).append(
                        ([x0 / r.width, y0 / r.height, x1 / r.width, y1 / r.height], kps))
        for c, items in per_cat.items():
            box = np.mean([b for b, _ in items], axis=0).tolist()
            kps = [k for _, k in items if k]
            state["boxes"][str(c)] = {"box": box,
                                      "kps": np.mean(kps, axis=0).tolist() if kps else None}
        state["classes"] = Counter(l for r in train.images for l in r.labels).most_common(1)
        if self.config.mode == "oracle":
            for r in [*train.images, *selection.images]:
                state["memory"][r.id] = _memo(r)
        self.state = state
        self.ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.ctx.checkpoint_dir / "toy.json").write_text(json.dumps(state))
        # one row per configured epoch, as a training loop reports them (zoo.pipeline.tracking logs them)
        history = [{"epoch": e, "loss": 1.0 / e} for e in range(1, self.config.epochs + 1)]
        return {"toy_loss": 0.5, "history": history}

    @classmethod
    def load(cls, task, meta, config, ctx):
        _fail("load")
        b = cls(task, meta, config, ctx)
        b.state = json.loads((ctx.checkpoint_dir / "toy.json").read_text())
        return b

    def num_parameters(self):
        return 4 * len(self.meta.categories)

    def versions(self):
        return {"toy": "1.0"}

    def predict(self, images):
        _fail("predict")
        for r in images:
            yield self._one(r)

    def _one(self, r):
        task = self.task.name
        mem = self.state["memory"].get(r.id)
        if mem is None and self.state["mode"] == "oracle" and self.state.get("root"):
            truth = answer_key(self.state["root"]).get(r.id)
            mem = _memo(truth) if truth is not None else None
        if task == "classify":
            if mem is not None:
                return ClassPrediction(r.id, mem["labels"][0])
            top = self.state["classes"][0][0] if self.state["classes"] else 0
            n = len(self.meta.classes)
            return ClassPrediction(r.id, top, [1.0 if k == top else 0.0 for k in range(n)])
        if task == "semantic-seg":
            from zoo.data.raster import instance_mask

            out = np.zeros((r.height, r.width), dtype=np.uint8)
            if mem is not None:
                from zoo.dataset import Instance

                for i in mem["instances"]:
                    inst = Instance(i["category"], tuple(i["bbox"]), i["polygons"], i["mask"])
                    out[instance_mask(inst, r.height, r.width)] = i["category"] + 1
                return SemanticPrediction(r.id, out)
            for c, b in self.state["boxes"].items():
                x0, y0, x1, y1 = b["box"]
                out[int(y0 * r.height):int(y1 * r.height), int(x0 * r.width):int(x1 * r.width)] = int(c) + 1
            return SemanticPrediction(r.id, out)
        dets = []
        if mem is not None:
            for i in mem["instances"]:
                mask = None
                if task == "instance-seg":
                    # Exactly the ground truth the evaluator scores: to_coco's segmentation
                    # (polygons, else the box as a polygon) filled by zoo.data.raster.
                    from zoo.data.raster import mask_to_rle, polygons_mask

                    x0, y0, x1, y1 = i["bbox"]
                    polys = i["polygons"] or [[x0, y0, x1, y0, x1, y1, x0, y1]]
                    mask = i["mask"] or mask_to_rle(polygons_mask(polys, r.height, r.width))
                kps = [(x, y, 1.0) for x, y, _ in i["keypoints"]] if task == "keypoint" else None
                dets.append(Detection(i["category"], 1.0, tuple(i["bbox"]), mask=mask, keypoints=kps))
            return InstancePredictions(r.id, dets)
        for c, b in self.state["boxes"].items():
            x0, y0, x1, y1 = b["box"]
            box = (x0 * r.width, y0 * r.height, x1 * r.width, y1 * r.height)
            mask = kps = None
            if task == "instance-seg":
                from pycocotools import mask as mask_utils

                m = np.zeros((r.height, r.width), dtype=np.uint8, order="F")
                m[int(box[1]):int(box[3]) + 1, int(box[0]):int(box[2]) + 1] = 1
                rle = mask_utils.encode(m)
                mask = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            if task == "keypoint":
                k = len(self.meta.keypoint_names)
                rel = b["kps"] or [[0.5, 0.5, 2]] * k
                kps = [(x * r.width, y * r.height, 0.9) for x, y, _ in rel]
            dets.append(Detection(int(c), 0.5, box, mask=mask, keypoints=kps))
        return InstancePredictions(r.id, dets)


def _memo(r) -> dict:
    """What the oracle keeps of an image: its labels and usable instances, as plain values."""
    return {
        "labels": r.labels,
        "instances": [
            {"category": i.category, "bbox": list(i.bbox), "mask": i.mask,
             "polygons": i.polygons, "keypoints": i.keypoints}
            for i in r.instances if not i.ignore
        ],
    }


#: Ground truth by dataset root, then image id: make_dataset's in-memory datasets, and
#: folders read once (see answer_key).
_ANSWER_KEYS: dict[str, dict] = {}


def answer_key(root: str | Path) -> dict:
    """Every image's annotations under ``root``, by id (what the oracle peeks at)."""
    key = str(Path(root).resolve())
    if key not in _ANSWER_KEYS:
        from zoo.data.reading import read_dataset

        _ANSWER_KEYS[key] = {r.id: r for r in read_dataset(Path(key)).images}
    return _ANSWER_KEYS[key]


class OracleConfig(ToyConfig):
    mode: str = "oracle"


class Oracle(Toy):
    Config = OracleConfig


class Peeker(Toy):
    """Breaks zoo's selection protocol on purpose: during ``fit`` it opens every image file
    in the dataset's folder, the scored split's included (check_backend must catch it)."""

    def fit(self, train, selection):
        from PIL import Image

        for path in sorted(Path(self.meta.root).rglob("*")):
            if path.suffix.lower() in (".png", ".jpg"):
                with Image.open(path) as im:
                    im.load()
        return super().fit(train, selection)


class Broken(Toy):
    def fit(self, train, selection):
        raise RuntimeError("broken on purpose")


def make_dataset(root: Path, n: int = 12, size: int = 48, seed: int = 0):
    """A small canonical dataset with real PNG files: two categories, boxes, polygons,
    keypoints (2 per object) and one image-level class per image."""
    from PIL import Image

    from zoo.dataset import Dataset, ImageRecord, Instance

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for k in range(n):
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        path = root / f"img_{k:03d}.png"
        Image.fromarray(arr).save(path)
        instances = []
        for j in range(1 + k % 2):
            cat = (k + j) % 2
            x0, y0 = float(rng.integers(2, size // 2)), float(rng.integers(2, size // 2))
            w, h = float(rng.integers(6, size // 2 - 2)), float(rng.integers(6, size // 2 - 2))
            x1, y1 = x0 + w, y0 + h
            instances.append(Instance(
                category=cat, bbox=(x0, y0, x1, y1),
                polygons=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                keypoints=[(x0 + 1, y0 + 1, 2), (x1 - 1, y1 - 1, 2)],
            ))
        images.append(ImageRecord(id=f"img_{k:03d}", width=size, height=size, file=path,
                                  labels=[k % 3], instances=instances))
    _ANSWER_KEYS[str(root.resolve())] = {r.id: r for r in images}
    return Dataset(categories=["cell", "dot"], classes=["a", "b", "c"], keypoint_names=["tl", "br"],
                   skeleton=[(0, 1)], oks_sigmas=[0.1, 0.1], images=images, root=root, format="synthetic")


class ToyPlugin:
    """Registered with ``Registry(plugins=[ToyPlugin()])``."""

    @hookimpl
    def zoo_backends(self):
        return [
            BackendSpec(name="toy", tasks=TASKS, entry="toy_backend:Toy", description="test backend"),
            BackendSpec(name="oracle", tasks=TASKS, entry="toy_backend:Oracle", description="predicts the ground truth"),
            BackendSpec(name="broken", tasks=TASKS, entry="toy_backend:Broken", description="fails to train"),
            BackendSpec(name="peeker", tasks=TASKS, entry="toy_backend:Peeker",
                        description="reads the scored images while training"),
            BackendSpec(name="absent", tasks=TASKS, entry="toy_backend:Toy", requires=("no_such_module_zoo",),
                        extra="absent", description="its framework is not installed"),
            BackendSpec(name="unimportable", tasks=TASKS, entry="toy_backend:NoSuchClass", description="a plugin bug"),
        ]


def registry():
    from zoo.registry import Registry

    return Registry(plugins=[ToyPlugin()])
