"""A real if trivial detector: one box per class, at that class's mean relative position."""

import json

from zoo.backend import Backend
from zoo.config import BackendConfig
from zoo.predictions import Detection, InstancePredictions


class MeanBox(Backend):
    Config = BackendConfig

    def fit(self, train, selection):  # no epochs: nothing to select
        sums = {}
        for record in train.images:
            for inst in record.instances:
                if inst.ignore:
                    continue
                x0, y0, x1, y1 = inst.bbox
                rel = (x0 / record.width, y0 / record.height, x1 / record.width, y1 / record.height)
                acc = sums.setdefault(inst.category, [0.0, 0.0, 0.0, 0.0, 0])
                for k in range(4):
                    acc[k] += rel[k]
                acc[4] += 1
        self.boxes = {c: [v / acc[4] for v in acc[:4]] for c, acc in sums.items()}
        self.ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.ctx.checkpoint_dir / "boxes.json").write_text(json.dumps(self.boxes))
        return {}

    def predict(self, images):
        for record in images:
            w, h = record.width, record.height
            yield InstancePredictions(
                record.id,
                [Detection(int(c), 0.5, (b[0] * w, b[1] * h, b[2] * w, b[3] * h)) for c, b in self.boxes.items()],
            )

    @classmethod
    def load(cls, task, meta, config, ctx):
        self = cls(task, meta, config, ctx)
        self.boxes = {int(c): b for c, b in json.loads((ctx.checkpoint_dir / "boxes.json").read_text()).items()}
        return self
