"""Label vocabularies: the ``--labels`` file (labelme's labels.txt convention) and the names a
vocabulary may hold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.errors import DataError
from zoo.files import read_lines

IGNORE_LABEL = "__ignore__"

BACKGROUND_LABEL = "_background_"


@dataclass
class LabelList:
    """A ``--labels`` file in labelme's labels.txt convention: one name per line;
    ``__ignore__`` (regions to ignore) and ``_background_`` (class 0 of label maps) are
    understood and are not categories."""

    names: list[str]
    file: Path | None = None
    has_ignore: bool = False
    has_background: bool = False

    @classmethod
    def read(cls, file: Path | str) -> LabelList:
        file = Path(file)
        names, seen = [], set()
        out = cls(names=names, file=file)
        for name in read_lines(file):
            if name == IGNORE_LABEL:
                out.has_ignore = True
            elif name == BACKGROUND_LABEL:
                out.has_background = True
            elif name in seen:
                raise DataError(file, f"label '{name}' is listed twice")
            else:
                seen.add(name)
                names.append(name)
        return out


#: ``labels=EVERY_LABEL``: keep every label found, whatever ``--labels`` or zoo.yaml list
#: (``zoo check`` reads this way to point at each shape a label list would drop).
EVERY_LABEL = LabelList(names=[])


def has_control_char(name: str) -> bool:
    """A line break, tab or other control character: such a name would shift every line of
    the line-per-name files zoo writes (class_names.txt, classes.txt, labels.txt)."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in name)


def order_vocabulary(found: set[str], given: list[str] | None) -> list[str]:
    """The given order when there is one, else sorted names (never order of appearance)."""
    return list(given) if given is not None else sorted(found)
