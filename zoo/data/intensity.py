"""The dataset's intensity rule, chosen from its training images (never val or test).

``auto``: 8-bit data is left as it is (no rule); deeper data (16-bit, float, DICOM) gets
``percentile``, the 0.5-99.5 percentiles of the training foreground, as nnU-Net normalises
CT. ``minmax`` spans the training images' range, ``zscore`` the foreground mean ± 3 sd,
``window`` the DICOMs' own WindowCenter/Width (or the one given, ``window:C,W``).

The foreground is what the annotations cover (instance masks, polygons, boxes); an image
without any lends all its pixels. A sample of at most :data:`PIXELS_PER_IMAGE` pixels from
each of at most :data:`MAX_IMAGES` images (seeded) keeps this a second or two.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from zoo.data.raster import instance_mask
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError
from zoo.pixels import IntensityRule, PERCENTILES, parse_intensity

MAX_IMAGES = 200
PIXELS_PER_IMAGE = 10_000


@dataclass(frozen=True, slots=True)
class Chosen:
    """The rule for a dataset (``None``: 8-bit pixels as they are) and why."""

    rule: IntensityRule | None
    reason: str

    @property
    def spec(self) -> str:
        return self.rule.spec if self.rule is not None else "none"


def choose_intensity(asked: str, train: Dataset, seed: int = 0) -> Chosen:
    """The rule ``asked`` names (``--set intensity=``), fitted on ``train`` where it needs fitting."""
    kind, rule = parse_intensity(asked)
    if rule is not None:
        return Chosen(rule, "as given")
    records = _sample(train, seed)
    depth = [(r, r.is_deep()) for r in records]  # headers only: an 8-bit dataset costs no decoding
    deep = [r for r, d in depth if d]
    if kind in ("none", "auto") and not deep:
        return Chosen(None, "as given" if kind == "none" else "8-bit images, used as they are")
    if kind == "none":
        raise ZooError(f"{_name(deep[0])}: pixels deeper than 8 bits and intensity=none; "
                       "pass --set intensity=percentile (or minmax, zscore, window:C,W)")
    if kind == "auto":
        shallow = next((r for r, d in depth if not d), None)
        if shallow is not None:
            raise ZooError(f"the training images mix 8-bit ({_name(shallow)}) and deeper ({_name(deep[0])}) "
                           "pixels: convert them to one depth, or pass --set intensity=percentile "
                           "(or minmax, zscore, window:C,W) to map them all the same way")
        kind = "percentile"
    samples = _Samples.of(records, seed)
    fitted = samples.fit(kind)
    return Chosen(fitted, f"{kind} of {samples.described()}")


def fill_intensity(config, train: Dataset):
    """``config`` with its intensity rule fitted on ``train``, and the choice: what config.yaml
    records, so a run, a resume, ``zoo predict`` and compare's reuse all see the same rule."""
    chosen = choose_intensity(config.intensity, train, seed=config.seed)
    return config.model_copy(update={"intensity": chosen.spec}), chosen


def with_intensity(dataset: Dataset, rule: IntensityRule | None) -> Dataset:
    """``dataset`` whose every record decodes through ``rule``."""
    return replace(dataset, images=[replace(r, intensity=rule) for r in dataset.images])


@dataclass
class _Samples:
    """Pixels drawn from the training images."""

    values: list  # one 1-D array of foreground pixels per image
    everything: list  # each image's (min, max)
    windows: list  # the DICOM windows the images state
    images: int
    foreground: int  # images whose sample came from annotated pixels

    @classmethod
    def of(cls, records: list[ImageRecord], seed: int) -> _Samples:
        import numpy as np

        rng = np.random.default_rng(seed)
        out = cls([], [], [], len(records), 0)
        for rec in records:
            d = rec.pixels()
            a = d.array if d.array.ndim == 2 else d.array.mean(axis=2)  # one intensity per pixel
            mask = _foreground(rec, a.shape)
            picked = a[mask] if mask is not None else a.ravel()
            out.foreground += mask is not None
            if picked.size > PIXELS_PER_IMAGE:
                picked = rng.choice(picked, PIXELS_PER_IMAGE, replace=False)
            out.values.append(picked.astype(np.float64))
            out.everything.append((float(a.min()), float(a.max())))
            if d.window is not None:
                out.windows.append(d.window)
        return out

    def fit(self, kind: str) -> IntensityRule:
        import numpy as np

        if not self.values:
            raise ZooError(f"intensity={kind}: no training image has pixels to fit it on")
        if kind == "window":
            if not self.windows:
                raise ZooError("intensity=window: no training image states a window (DICOM WindowCenter/"
                               "WindowWidth); pass --set intensity=window:C,W")
            (low, high), _ = Counter(self.windows).most_common(1)[0]  # the scanner's usual preset
            return IntensityRule("window", low, high)
        if kind == "minmax":
            return IntensityRule("minmax", min(lo for lo, _ in self.everything), max(hi for _, hi in self.everything))
        v = np.concatenate(self.values)
        if kind == "zscore":
            return IntensityRule.from_parameters("zscore", float(v.mean()), float(v.std()) or 1.0)
        lo, hi = np.percentile(v, PERCENTILES)
        return IntensityRule("percentile", float(lo), float(hi) if hi > lo else float(lo) + 1.0)

    def described(self) -> str:
        where = "their annotated foreground" if self.foreground == self.images else (
            "their annotated foreground (whole images where nothing is annotated)" if self.foreground else "their pixels")
        return f"{self.images} training image(s), {where}"


def _sample(train: Dataset, seed: int) -> list[ImageRecord]:
    """At most :data:`MAX_IMAGES` of the training images with pixels, the same ones for a seed."""
    import numpy as np

    records = [r for r in train.images if r.has_pixels]
    if len(records) <= MAX_IMAGES:
        return records
    picked = np.random.default_rng(seed).choice(len(records), MAX_IMAGES, replace=False)
    return [records[i] for i in sorted(picked)]


def _name(rec: ImageRecord) -> str:
    return str(rec.file or rec.embedded or rec.id)


def _foreground(rec: ImageRecord, shape: tuple[int, int]):
    """The pixels the annotations cover, or None when they cover none (or the size disagrees)."""
    import numpy as np

    kept = [i for i in rec.instances if not i.ignore]
    if not kept or shape != (rec.height, rec.width):
        return None
    mask = np.zeros(shape, dtype=bool)
    for inst in kept:
        mask |= instance_mask(inst, rec.height, rec.width)
    return mask if mask.any() else None
