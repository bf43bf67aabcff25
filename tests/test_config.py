"""Typed configs (edge_fer/config.py): TOML and `--set` values become dataclass fields of the right type, within
their limits, or one line that says what to fix; a saved config loads back the same."""

from dataclasses import dataclass, field

import pytest

from edge_fer.config import apply_override, from_dict, load_toml, save_toml, set_dotted
from edge_fer.errors import UserError


@dataclass
class Inner:
    epochs: int = 1
    learning_rate: float = 0.1


@dataclass
class Outer:
    name: str = "x"
    size: int | None = None
    inner: Inner = field(default_factory=Inner)
    tags: list = field(default_factory=list)


def test_values_are_coerced_to_their_fields():
    config = from_dict(Outer, {"name": "run", "size": None, "inner": {"epochs": 3, "learning_rate": 1}})
    assert config.inner.epochs == 3 and config.inner.learning_rate == 1.0 and isinstance(config.inner.learning_rate, float)
    assert config.size is None


@pytest.mark.parametrize("data, message", [
    ({"inner": {"epochs": "three"}}, "inner.epochs must be int, got str 'three'"),
    ({"inner": {"epochs": True}}, "inner.epochs must be int, got bool True"),
    ({"inner": {"epochs": 10_001}}, "inner.epochs"),
    ({"inner": {"learning_rate": -1.0}}, "inner.learning_rate"),
    ({"inner": 3}, "inner. must be a table"),
    ({"nmae": "x"}, "did you mean 'name'"),
])
def test_a_wrong_value_is_one_line_naming_the_key(data, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        from_dict(Outer, data)


def test_overrides_set_nested_values_read_as_toml():
    data = {}
    apply_override(data, "inner.epochs=5")
    apply_override(data, "name=plain words")
    apply_override(data, "tags=['a', 'b']")
    assert data == {"inner": {"epochs": 5}, "name": "plain words", "tags": ["a", "b"]}
    with pytest.raises(UserError, match="must look like section.key=value"):
        apply_override(data, "inner.epochs")
    with pytest.raises(UserError, match="name is not a section"):
        set_dotted(data, "name.deeper", 1)


def test_a_saved_config_loads_back_the_same(tmp_path):
    config = from_dict(Outer, {"name": "run", "inner": {"epochs": 7}, "tags": ["a"]})
    save_toml(config, tmp_path / "config.toml")
    assert from_dict(Outer, load_toml(tmp_path / "config.toml")) == config
    assert not list(tmp_path.glob(".partial-*"))


@pytest.mark.parametrize("text, message", [(b"a = [", "not valid TOML"), (b"\xff\xfe", "not UTF-8"),
                                           (b"x = " + b"[" * 5000 + b"]" * 5000, "nested too deeply|not valid TOML")])
def test_a_broken_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_bytes(text)
    with pytest.raises(UserError, match=message):
        load_toml(path)
    with pytest.raises(UserError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
