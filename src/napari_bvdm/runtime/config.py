"""Typed, validated configuration: dataclasses that save to and load from JSON.

Every model and run config subclasses :class:`Config`. Unknown keys and wrong types give a clear
error naming the field; ``validate()`` is called on construction (``__post_init__``) and subclasses
override :meth:`check` to add range checks.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclasses.dataclass
class Config:
    """Base class for configs. Subclasses are ``@dataclass`` with typed, defaulted fields."""

    def __post_init__(self) -> None:
        self.check()

    # --- validation -------------------------------------------------------------------------
    def check(self) -> None:
        """Range checks; raise :class:`ConfigError` with the field name. Override in subclasses."""

    def _require(self, ok: bool, field: str, why: str) -> None:
        if not ok:
            raise ConfigError(
                f"{type(self).__name__}.{field} = {getattr(self, field)!r}: {why}"
            )

    # --- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Config):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Path):
                v = str(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None, *, strict: bool = True) -> C:
        """Build from a dict; unknown keys raise when ``strict`` (so typos are caught)."""
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown and strict:
            raise ConfigError(
                f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}"
            )
        kwargs = {}
        for name in names & set(data):
            kwargs[name] = _coerce(cls.__name__, name, hints.get(name, Any), data[name])
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ConfigError(f"{cls.__name__}: {e}") from e

    def replace(self: C, **changes: Any) -> C:
        return self.from_dict({**self.to_dict(), **changes})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        return cls.from_dict(read_settings_file(path))


def read_settings_file(path: str | Path, expected: str = "a JSON object") -> dict[str, Any]:
    """Read a JSON settings file that must hold an object; every problem is a :class:`ConfigError`.

    ``expected`` describes the object in the error for a file that holds something else.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"settings file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"settings file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path}: expected {expected}")
    return data


def _coerce(cls_name: str, name: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        if tp is type(None) or (args and type(None) in args) or tp is Any:
            return None
        raise ConfigError(f"{cls_name}.{name}: None is not allowed")
    if origin in (typing.Union, types.UnionType):
        last: Exception | None = None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(cls_name, name, a, value)
            except ConfigError as e:
                last = e
        raise last or ConfigError(f"{cls_name}.{name}: bad value {value!r}")
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{cls_name}.{name}: expected a mapping, got {value!r}")
        return tp.from_dict(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{cls_name}.{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(cls_name, name, args[0], v) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"{cls_name}.{name}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(cls_name, name, a, v) for a, v in zip(args or [Any] * len(value), value, strict=True))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{cls_name}.{name}: expected a list, got {value!r}")
        return [_coerce(cls_name, name, args[0] if args else Any, v) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{cls_name}.{name}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{cls_name}.{name}: {value!r} is not one of {list(args)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{cls_name}.{name}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigError(f"{cls_name}.{name}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{cls_name}.{name}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{cls_name}.{name}: expected a string, got {value!r}")
        return value
    return value
