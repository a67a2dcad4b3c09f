"""Backend configuration: pydantic models filled from layered YAML and the command line.

Layers, later wins:

1. the backend's ``Config`` class defaults;
2. the backend's ``<task>.yaml`` shipped in its plugin's own package, where its spec says
   (``BackendSpec.defaults``: what is true of the backend); on the demo data only, then
   ``configs/demo.yaml`` (the demo's small preset);
3. each ``--config FILE`` in order;
4. the dedicated flags (``--epochs``, ``--imgsz``, ...);
5. each ``--set key=value`` in order (value parsed as YAML: ``3``, ``true``, ``s``).

Unknown keys are errors that say where the key came from and suggest the near miss.
``epochs`` and ``imgsz`` default to ``auto``: chosen from the data once it is read
(:mod:`zoo.training.autoconfig`), unless a layer sets them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from zoo.errors import ConfigError, did_you_mean
from zoo.pixels import parse_intensity

if TYPE_CHECKING:
    from zoo.specs import BackendSpec


class BackendConfig(BaseModel):
    """Settings every backend understands. Backends subclass it to add their own keys."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    # "auto": chosen from the training images (zoo.training.autoconfig) -- a backend only ever sees ints
    epochs: Union[int, Literal["auto"]] = "auto"
    imgsz: Union[int, Literal["auto"]] = "auto"
    batch: int = 16
    device: str = "auto"  # "auto" = first CUDA GPU when there is one, else "cpu"
    seed: int = 0
    workers: int = 0  # data-loading processes; 0 = load in the training process
    #: Wall-clock seconds for training ("15m", "1h30m" and "90s" are read too): the epochs are
    #: set to what fits after the first one is timed (zoo.training.EpochPlan); None = no budget.
    budget: Optional[float] = None
    pretrained: bool = False  # opt-in (--pretrained): published weights, fetched once by zoo.training.fetch
    weights: Path | None = None  # a local weights file to start from
    #: How deep pixels (16-bit, float, DICOM) become 8-bit (zoo.pixels.IntensityRule): "auto"
    #: (8-bit data as it is, deeper data "percentile"), "none", "percentile", "minmax",
    #: "zscore", "window" (the DICOMs' own) or "window:C,W". config.yaml records the fitted rule.
    intensity: str = "auto"
    #: The fraction of training images without any annotation (a volume's empty slices) kept
    #: for training (zoo.data.empty_images); val and test keep all. 1 = all.
    empty_slices: float = 1.0

    @field_validator("empty_slices")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError("empty_slices is the fraction of empty training images kept: more than 0, at most 1")
        return value

    @field_validator("intensity", mode="before")
    @classmethod
    def _intensity(cls, value: Any) -> str:
        kind, rule = parse_intensity(value)
        return rule.spec if rule is not None else kind

    @field_validator("budget", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        seconds = parse_duration(value)
        if seconds is not None and seconds <= 0:
            raise ValueError("a budget must be more than 0 seconds")
        return seconds


def parse_duration(value: Any) -> float | None:
    """Seconds from ``"15m"``, ``"1h30m"``, ``"90s"``, ``"1.5h"`` or a number of seconds."""
    import re

    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value is None else float(value)
    text = str(value).strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration (write 15m, 1h30m or 90s)")
    return float(sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts))


def shipped_defaults(backend: str, task: str, spec: BackendSpec | None = None) -> dict[str, Any]:
    """The YAML defaults the backend's plugin ships for this task ({} when there are none).

    ``spec``: the backend's (``BackendSpec.defaults`` says where they are); without it, the
    installed backend of that name, if any.
    """
    spec = spec if spec is not None else _installed_backend(backend)
    node = spec.defaults_file(task) if spec is not None else None
    if node is None:
        return {}
    return _load_yaml_text(node.read_text(encoding="utf-8"), _defaults_where(spec, task))


def _installed_backend(name: str) -> BackendSpec | None:
    from zoo.registry import get_registry

    return get_registry().backends.get(name)


def _defaults_where(spec: BackendSpec, task: str) -> str:
    """How an error names a shipped defaults file: ``zoo.plugins.smp:configs/unet/semantic-seg.yaml``."""
    return f"{spec.defaults}/{task}.yaml"


def demo_preset(backend: str, task: str) -> dict[str, Any]:
    """The demo data's small preset for this backend and task (``configs/demo.yaml``).

    The file maps ``"*"`` (every backend) and backend names to keys, or to per-task mappings of
    keys; the more specific entry wins.
    """
    node = resources.files("zoo.configs").joinpath("demo.yaml")
    if not node.is_file():
        return {}
    table = _load_yaml_text(node.read_text(encoding="utf-8"), "configs/demo.yaml")
    preset: dict[str, Any] = {}
    for entry in (table.get("*") or {}, table.get(backend) or {}):
        preset.update({k: v for k, v in entry.items() if not isinstance(v, dict)})
        preset.update(entry.get(task) or {})
    return preset


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    return _load_yaml_text(text, str(path))


def _load_yaml_text(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{where}: not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of key: value, got {type(data).__name__}")
    return data


def parse_set(items: Iterable[str]) -> list[tuple[str, Any]]:
    """``["model=s", "lr=0.01"]`` -> ``[("model", "s"), ("lr", 0.01)]`` (values parsed as YAML)."""
    import yaml

    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
    return out


def resolve_config(
    config_cls: type[BackendConfig],
    *,
    backend: str,
    task: str,
    files: Iterable[str | Path] = (),
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
    demo: bool = False,
    spec: BackendSpec | None = None,
) -> BackendConfig:
    """Merge the layers (see module doc) into a validated ``config_cls`` instance.

    ``spec``: the backend's, whose plugin ships its defaults (without it, the installed
    backend named ``backend``; a name no plugin provides has none).

    ``base`` replaces the shipped defaults: a resolved ``config.yaml`` from an earlier run.
    ``demo`` adds the demo data's preset after the shipped defaults.
    """
    fields = config_cls.model_fields
    merged: dict[str, Any] = {}

    def apply(values: Mapping[str, Any], where: str) -> None:
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{where}: unknown key '{key}' for {backend}{did_you_mean(key, fields)}; "
                    f"known keys: {', '.join(sorted(fields))}"
                )
            merged[key] = value

    if base is not None:
        apply(base, "config.yaml")
    else:
        spec = spec if spec is not None else _installed_backend(backend)
        if spec is not None:
            apply(shipped_defaults(backend, task, spec), _defaults_where(spec, task))
        if demo:
            apply(demo_preset(backend, task), "configs/demo.yaml")
    for f in files:
        apply(load_yaml_file(f), str(f))
    apply({k: v for k, v in (flags or {}).items() if v is not None}, "command line")
    for key, value in parse_set(sets):
        apply({key: value}, f"--set {key}")
    try:
        return config_cls(**merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")  # pydantic's wrapper of a validator's ValueError
        raise ConfigError(f"config: {loc}: {msg} (got {err.get('input')!r})") from None


def dump_config(config: BaseModel) -> dict[str, Any]:
    """A YAML-safe dict of a resolved config (paths as strings)."""
    return config.model_dump(mode="json")


