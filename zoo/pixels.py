"""Decoding an image into its canonical pixels, and the intensity rule that turns deep pixels
into what a network eats.

Every image zoo trains on, predicts on, draws or writes out goes through :func:`decode`,
which returns the pixels as the file holds them and a record of how they were obtained
(:class:`Decoded`):

* 8-bit images (PIL modes ``L``, ``RGB``, ``RGBA``, ``P``, ...) as RGB ``uint8``, EXIF
  orientation applied, alpha dropped: what zoo always did;
* deeper images keep their full range: a 16-bit PNG (PIL ``I;16`` / ``I``; 16-bit colour
  through OpenCV, since PIL cuts it to 8 bits) as ``uint16``, a TIFF through tifffile
  (``uint16``, ``float32``, one page of a multi-page file) in its own type.

Deep pixels reach an 8-bit network only through an :class:`IntensityRule`, one per dataset,
chosen from the training images (:mod:`zoo.data.intensity`) and recorded in config.yaml,
the manifest and the report. PIL's ``convert("RGB")`` is never applied to deep pixels: it
clips at 255 (a 12-bit X-ray becomes white), and OpenCV's 8-bit read drops the low byte.

In the contract because :meth:`zoo.dataset.ImageRecord.load_rgb` decodes through it.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.dicom import decode_dicom, dicom_is_deep
from zoo.errors import ConfigError, DataError
from zoo.files import is_dicom_head, read_head
from zoo.nifti import decode_nifti, is_nifti, opened

if TYPE_CHECKING:
    import numpy as np

#: PIL modes of 8 bits per channel or fewer: decoded as RGB uint8, as zoo always did.
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
                             "LAB", "HSV"})
#: A frame of a multi-frame file (DICOM frames, TIFF pages): ``scan.dcm#3`` (0-based).
_FRAME = re.compile(r"^(?P<path>.+)#(?P<frame>\d+)$")


@dataclass(frozen=True, slots=True)
class Decoded:
    """An image's canonical pixels and how they were obtained.

    ``array`` is ``(H, W)`` or ``(H, W, C)`` in the file's own type (``uint8`` RGB for 8-bit
    images). ``deep``: more than 8 bits or floating point, so an :class:`IntensityRule`
    decides what an 8-bit network sees. ``window`` is the display range the file itself
    states (DICOM WindowCenter/Width as ``(low, high)``), ``spacing`` its pixel size in mm
    (row, column), ``group`` the patient or study it belongs to, ``modality`` what made it.
    """

    array: np.ndarray
    how: str
    deep: bool
    window: tuple[float, float] | None = None
    spacing: tuple[float, float] | None = None
    group: str | None = None
    modality: str | None = None


def split_frame(file: Path | str) -> tuple[Path, int | None]:
    """``scan.dcm#3`` -> (``scan.dcm``, 3); a path without a frame -> (path, None). A file
    whose own name ends in ``#3`` stays itself."""
    text = str(file)
    m = _FRAME.match(text)
    if m is None or Path(text).exists():
        return Path(file), None
    return Path(m["path"]), int(m["frame"])


def decode(file: Path | str | bytes, name: object = None) -> Decoded:
    """The canonical pixels of an image file (a ``#k`` suffix names frame / page k), or of
    an image's bytes (a labelme ``imageData``; ``name`` then names it in errors). A
    :class:`~zoo.errors.DataError` naming the file when it does not decode."""
    if isinstance(file, (bytes, bytearray)):
        return _decode_pil(io.BytesIO(file), name or "imageData", None)
    path, frame = split_frame(file)
    where = name or file
    if is_nifti(path):
        return Decoded(**decode_nifti(path, frame, where))
    if is_dicom_head(read_head(path, 132)):
        return Decoded(**decode_dicom(path, frame, where))
    return _decode_pil(path, where, frame)


def is_deep(file: Path | str) -> bool:
    """Whether an image file holds more than 8 bits per channel (or floats), from its header."""
    import warnings

    from PIL import Image

    path, _ = split_frame(file)
    if is_nifti(path):
        return opened(path).get_data_dtype() != "uint8"
    if is_dicom_head(read_head(path, 132)):
        return dicom_is_deep(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return _deep_mode(img)
    except Exception:  # noqa: BLE001 -- PIL cannot open it: decoding says what it is, or fails in one line
        return decode(file).deep


def _decode_pil(src, where: object, frame: int | None) -> Decoded:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(src) as img:
                if img.format == "TIFF" and (_deep_mode(img) or frame or getattr(img, "n_frames", 1) > 1):
                    return _decode_tiff(src, where, frame or 0)
                if frame:
                    raise DataError(where, f"has no frame {frame} (a frame suffix needs a DICOM or multi-page TIFF)")
                if img.format == "PNG" and _png_deep_colour(img):
                    return _decode_png_colour16(src, where)
                if not _deep_mode(img):
                    return _eight_bit(img)
                return _deep_pil(img)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 -- PIL / tifffile raise many types on damaged bytes
        raise DataError(where, f"image does not decode ({type(e).__name__}: {e})") from None


def _eight_bit(img) -> Decoded:
    import numpy as np
    from PIL import ImageOps

    notes = [f"8-bit {img.mode}"]
    if "A" in img.mode or "a" in img.mode or "transparency" in img.info:
        notes.append("alpha dropped")
    oriented = ImageOps.exif_transpose(img)
    if oriented is not img and oriented.size != img.size or _orientation(img) not in (1, None):
        notes.append("EXIF orientation applied")
    return Decoded(np.asarray(oriented.convert("RGB")), ", ".join(notes), deep=False)


def _orientation(img) -> int | None:
    try:
        return img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 -- a broken EXIF block must not hide the image
        return 1


def _deep_pil(img) -> Decoded:
    """PIL's single-channel deep modes: ``I;16*`` (16-bit PNG / TIFF), ``I`` (32-bit int),
    ``F`` (float)."""
    import numpy as np
    from PIL import ImageOps

    mode = img.mode
    a = np.asarray(ImageOps.exif_transpose(img))
    if mode.startswith("I;16"):
        a = a.astype(np.uint16, copy=False)
    elif mode == "I" and a.size and a.min() >= 0 and a.max() <= 65535:
        a = a.astype(np.uint16)  # Pillow before 10.? read 16-bit PNG as 32-bit "I"
    bits = {"F": "float32"}.get(mode, f"{a.dtype.itemsize * 8}-bit")
    return Decoded(a, f"{bits} grayscale {img.format or ''} (PIL {mode}), full range kept".replace("  ", " "),
                   deep=True)


def _deep_mode(img) -> bool:
    """More than 8 bits per channel: PIL's deep modes, and the 16-bit colour PNG and TIFF
    that PIL opens as 8-bit ``RGB`` (its header says otherwise)."""
    if img.mode not in EIGHT_BIT_MODES:
        return True
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))  # BitsPerSample
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return img.format == "PNG" and _png_deep_colour(img)


def _png_deep_colour(img) -> bool:
    """A 16-bit RGB(A) PNG, which PIL silently opens as 8-bit ``RGB``: read its IHDR."""
    fp = img.fp
    pos = fp.tell()
    try:
        fp.seek(24)
        depth, colour = fp.read(2)
    except (OSError, ValueError):
        return False
    finally:
        fp.seek(pos)
    return depth == 16 and colour in (2, 6)


def _decode_png_colour16(src, where: object) -> Decoded:
    import cv2
    import numpy as np

    raw = src.getvalue() if isinstance(src, io.BytesIO) else Path(src).read_bytes()
    a = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise DataError(where, "16-bit colour PNG does not decode")
    a = np.ascontiguousarray(a[..., 2::-1])  # OpenCV's BGR(A) -> RGB, alpha dropped
    return Decoded(a, "16-bit RGB PNG, full range kept", deep=True)


def _decode_tiff(src, where: object, page: int) -> Decoded:
    import numpy as np

    try:
        import tifffile
    except ImportError:
        raise DataError(where, "is a 16-bit / float or multi-page TIFF: reading it needs tifffile "
                               "(pip install 'zoo[medical]')") from None
    if isinstance(src, io.BytesIO):
        src.seek(0)
    with tifffile.TiffFile(src) as tif:
        if page >= len(tif.pages):
            raise DataError(where, f"has {len(tif.pages)} page(s); page {page} does not exist")
        p = tif.pages[page]
        a = p.asarray()
        planar = getattr(p, "planarconfig", None) == tifffile.PLANARCONFIG.SEPARATE
    if a.ndim == 3 and planar:
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] > 3:
        a = a[..., :3]  # alpha (or extra samples) dropped, as for 8-bit images
    deep = a.dtype != np.uint8
    kind = f"{a.dtype}" if a.dtype.kind == "f" else f"{a.dtype.itemsize * 8}-bit"
    chans = "grayscale" if a.ndim == 2 else f"{a.shape[-1]}-channel"
    return Decoded(np.ascontiguousarray(a), f"{kind} {chans} TIFF page {page}" + (", full range kept" if deep else ""),
                   deep=deep)


# -- the intensity rule ---------------------------------------------------------------------------

#: The rules a dataset may use (``--set intensity=...``): ``auto`` picks one from the data.
RULE_KINDS = ("percentile", "minmax", "zscore", "window")
#: nnU-Net's CT normalisation clips at these percentiles of the training foreground.
PERCENTILES = (0.5, 99.5)
#: ``zscore`` maps mean ± this many standard deviations onto 0..255.
ZSCORE_SPAN = 3.0


@dataclass(frozen=True, slots=True)
class IntensityRule:
    """A linear map of ``[low, high]`` onto ``[0, 1]`` (then 0..255), values outside clipped.

    Every rule is such a window; they differ in how it was found: ``window`` (given, or a
    DICOM's WindowCenter/Width), ``percentile`` (0.5-99.5 % of the training foreground),
    ``minmax`` (the training images' range), ``zscore`` (foreground mean ± 3 sd).
    """

    kind: str
    low: float
    high: float

    def __post_init__(self):
        if self.kind not in RULE_KINDS:
            raise ValueError(f"unknown intensity rule {self.kind!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("an intensity window must be finite")

    @property
    def span(self) -> float:
        return max(self.high - self.low, 1e-12)  # a constant image maps to 0, not NaN

    def to_unit(self, a: np.ndarray) -> np.ndarray:
        """``a`` as float32 in [0, 1]."""
        import numpy as np

        out = np.asarray(a, dtype=np.float32) - np.float32(self.low)
        out *= np.float32(1.0 / self.span)
        return np.clip(out, 0.0, 1.0, out=out)

    def to_uint8(self, a: np.ndarray) -> np.ndarray:
        """``a`` as uint8 0..255 (rounded)."""
        import numpy as np

        out = self.to_unit(a)
        out *= 255.0
        out += 0.5
        return out.astype(np.uint8)

    @property
    def spec(self) -> str:
        """The rule as ``--set intensity=`` reads it back (written to config.yaml)."""
        a, b = self.parameters()
        return f"{self.kind}:{_num(a)},{_num(b)}"

    def parameters(self) -> tuple[float, float]:
        """The two numbers a user writes: (center, width) for a window, (mean, sd) for zscore,
        (low, high) otherwise."""
        if self.kind == "window":
            return (self.low + self.high) / 2, self.high - self.low
        if self.kind == "zscore":
            return (self.low + self.high) / 2, (self.high - self.low) / (2 * ZSCORE_SPAN)
        return self.low, self.high

    @classmethod
    def from_parameters(cls, kind: str, a: float, b: float) -> IntensityRule:
        if kind == "window":
            return cls(kind, a - b / 2, a + b / 2)
        if kind == "zscore":
            return cls(kind, a - ZSCORE_SPAN * b, a + ZSCORE_SPAN * b)
        return cls(kind, a, b)

    def describe(self) -> str:
        return f"{self.kind} [{_num(self.low)}, {_num(self.high)}] -> 0..255"


def _num(v: float) -> str:
    return f"{v:.6g}"


def parse_intensity(text: Any) -> tuple[str, IntensityRule | None]:
    """``--set intensity=`` / config.yaml's value -> (kind, rule). ``auto`` and ``none`` and a
    bare kind (``percentile``: fitted from the training images) have no rule yet;
    ``window:40,400`` (center, width), ``percentile:LOW,HIGH``, ``minmax:LOW,HIGH`` and
    ``zscore:MEAN,SD`` are whole. A ConfigError for anything else."""
    s = str(text).strip().lower()
    kind, _, nums = s.partition(":")
    if kind in ("auto", "none") and not nums:
        return kind, None
    if kind not in RULE_KINDS:
        raise ConfigError(f"intensity {text!r}: expected auto, none, {', '.join(RULE_KINDS)} "
                          "or e.g. window:40,400 (center, width)")
    if not nums:
        return kind, None
    try:
        a, b = (float(x) for x in nums.split(","))
        rule = IntensityRule.from_parameters(kind, a, b)
    except ValueError:
        raise ConfigError(f"intensity {text!r}: expected two numbers after '{kind}:', e.g. window:40,400") from None
    if rule.high <= rule.low:
        raise ConfigError(f"intensity {text!r}: the window is empty (width or sd must be positive, low < high)")
    return kind, rule


def image_rule(a: np.ndarray) -> IntensityRule:
    """The rule an image gets when its dataset has none (drawing, ``zoo check``): its own
    0.5-99.5 percentiles. Training and predicting always use the dataset's rule."""
    import numpy as np

    lo, hi = np.percentile(a, PERCENTILES)
    return IntensityRule("percentile", float(lo), float(hi))


def as_rgb(a: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` or ``(H, W, C)`` uint8 array as ``(H, W, 3)``."""
    import numpy as np

    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.shape[2] == 3:
        return a
    if a.shape[2] > 3:
        return np.ascontiguousarray(a[:, :, :3])
    return np.repeat(a[:, :, :1], 3, axis=2)


def fits_uint16(a: np.ndarray) -> bool:
    """Whether every value is a whole number in 0..65535: a 16-bit PNG holds it exactly."""
    import numpy as np

    if a.dtype.kind == "f" and not np.all(a == np.round(a)):
        return False
    return a.dtype.kind in "uif" and a.min(initial=0) >= 0 and a.max(initial=0) <= 65535


def own_rule(decoded: Decoded) -> IntensityRule:
    """An image's own mapping to 8-bit, when nothing else decides: the window its file states
    (DICOM WindowCenter/Width), else its 0.5-99.5 percentiles."""
    if decoded.window is not None:
        return IntensityRule("window", *decoded.window)
    return image_rule(decoded.array)
