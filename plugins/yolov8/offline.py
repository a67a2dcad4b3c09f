"""Make ultralytics work offline and write only inside the run folder.

Measured on a machine without network: ultralytics probes DNS at import unless
``YOLO_OFFLINE=1``; it wants ``Arial.ttf`` in its config folder at every train / val and
downloads it when absent; its settings file goes to ``~/.config/Ultralytics`` unless
``YOLO_CONFIG_DIR`` says otherwise. So before ultralytics is first imported we point all of
that at a private folder inside the run, with a font copied from matplotlib (a dependency of
both zoo and ultralytics).

ultralytics reads ``YOLO_CONFIG_DIR`` once, at import. A second run in the same process (tests,
``zoo compare``) therefore repoints the module-level copies of that folder too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from zoo.errors import ZooError

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")  # the latter for non-ASCII class names
# ultralytics' own experiment trackers, on whenever their package is installed: MLflow logs to
# ./mlruns in the working directory, Ray Tune, ClearML, Comet and DVC to their own places.
_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


def _bundled_font() -> Path:
    spec = importlib.util.find_spec("matplotlib")
    for root in spec.submodule_search_locations or () if spec else ():
        font = Path(root) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if font.is_file():
            return font
    raise ZooError("yolov8: no TrueType font found (matplotlib's DejaVuSans.ttf); reinstall matplotlib")


def prepare(config_dir: Path) -> Path:
    """Point ultralytics at ``config_dir`` and switch it offline; return the folder it uses
    (``config_dir/Ultralytics``, holding the fonts and its settings file)."""
    config_dir = Path(config_dir).resolve()
    used = config_dir / "Ultralytics"  # ultralytics appends this to YOLO_CONFIG_DIR
    used.mkdir(parents=True, exist_ok=True)
    font = _bundled_font()
    for name in _FONT_NAMES:
        target = used / name
        if not target.exists():
            shutil.copyfile(font, target)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    # Its per-batch bars would drown zoo's own log; YOLO_VERBOSE=True brings them back.
    os.environ.setdefault("YOLO_VERBOSE", "False")

    if "ultralytics.utils" in sys.modules:  # imported earlier in this process: repoint it
        import ultralytics.utils as uu
        import ultralytics.utils.checks as uc

        uu.USER_CONFIG_DIR = used
        uc.USER_CONFIG_DIR = used
        # Analytics and hub calls are gated on ONLINE, measured at import.
        uu.ONLINE = False
        uc.ONLINE = False
    _integrations_off()
    return used


def _integrations_off() -> None:
    """Switch ultralytics' experiment trackers off: they would write outside the run folder
    (zoo's ``--track`` logs runs itself). In memory only: ``SETTINGS.update`` would also save the
    file of whichever run's config folder this process imported ultralytics with first. Done
    before any trainer exists, since ultralytics registers its tracker callbacks then."""
    from ultralytics.utils import SETTINGS

    dict.update(SETTINGS, {name: False for name in _INTEGRATIONS})
