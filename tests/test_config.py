"""Config layering, --set parsing and the errors users see for bad keys and values."""

from __future__ import annotations

import pytest

from zoo.config import BackendConfig, parse_set, resolve_config
from zoo.errors import ConfigError


class ToyConfig(BackendConfig):
    model: str = "n"
    lr: float = 0.01


def test_layers_apply_in_order(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("epochs: 5\nlr: 0.5\n")
    b = tmp_path / "b.yaml"
    b.write_text("lr: 0.25\n")
    cfg = resolve_config(
        ToyConfig, backend="toy", task="detect", files=[a, b],
        flags={"epochs": 7, "imgsz": None}, sets=["model=s", "lr=1e-3"],
    )
    assert cfg.epochs == 7  # flag beats file
    assert cfg.lr == pytest.approx(1e-3)  # --set beats everything
    assert cfg.model == "s"
    assert cfg.imgsz == BackendConfig().imgsz  # None flags do not override


def test_unknown_key_suggests_near_miss(tmp_path):
    with pytest.raises(ConfigError, match=r"--set epoch: unknown key 'epoch' for toy \(did you mean 'epochs'\?\)"):
        resolve_config(ToyConfig, backend="toy", task="detect", sets=["epoch=3"])
    f = tmp_path / "c.yaml"
    f.write_text("modle: s\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'modle'.*did you mean 'model'"):
        resolve_config(ToyConfig, backend="toy", task="detect", files=[f])


def test_bad_value_is_one_clear_line():
    with pytest.raises(ConfigError) as e:
        resolve_config(ToyConfig, backend="toy", task="detect", sets=["epochs=ten"])
    assert "epochs" in str(e.value) and "'ten'" in str(e.value) and "\n" not in str(e.value)


def test_bad_yaml_names_the_file(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        resolve_config(ToyConfig, backend="toy", task="detect", files=[f])
    g = tmp_path / "list.yaml"
    g.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        resolve_config(ToyConfig, backend="toy", task="detect", files=[g])


def test_parse_set_types():
    assert parse_set(["a=3", "b=true", "c=s", "d=0.5", "e=", "f=a=b"]) == [
        ("a", 3), ("b", True), ("c", "s"), ("d", 0.5), ("e", ""), ("f", "a=b"),
    ]
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_set(["novalue"])


def test_budget_reads_durations():
    from zoo.config import BackendConfig, resolve_config

    assert resolve_config(BackendConfig, backend="x", task="detect", sets=["budget=15m"]).budget == 900.0
    assert resolve_config(BackendConfig, backend="x", task="detect", flags={"budget": "1h30m"}).budget == 5400.0
    assert resolve_config(BackendConfig, backend="x", task="detect").budget is None
    with pytest.raises(ConfigError, match=r"^config: budget: .soon. is not a duration"):
        resolve_config(BackendConfig, backend="x", task="detect", sets=["budget=soon"])
    with pytest.raises(ConfigError, match="budget"):
        resolve_config(BackendConfig, backend="x", task="detect", sets=["budget=0s"])
