"""Generic, typed conversion of YAML mappings into dataclasses, ``key.path=value`` overrides and ``${ENV}``
path expansion, for ``train/config.py``. Every failure is a ``ConfigError`` naming the key path."""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from shrinkface.runtime.config import cache_dir
from shrinkface.runtime.errors import ExitCode, ShrinkfaceError


class ConfigError(ShrinkfaceError):
    """A training config file or override is invalid."""

    exit_code = ExitCode.USAGE


# -- dict → dataclass ----------------------------------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value against a declared type."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: a value is required ({_type_name(tp)}), got null")
    tp = inner
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, val_tp = typing.get_args(tp)
        return {str(k): _convert(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {tp}")  # pragma: no cover - a programming error


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown or missing keys are ``ConfigError``s."""
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        at = f" in {where}" if where else ""
        raise ConfigError(f"unknown key(s) {unknown}{at}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {path!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded above
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-ready dict (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


# -- overrides -----------------------------------------------------------------------------------------------
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _parse_text(text: str, tp: Any, where: str) -> Any:
    """Turn override text into a value of the declared type (then checked by ``_convert``)."""
    optional, inner = _is_optional(tp)
    if optional and text.strip().lower() in ("null", "none", "~"):
        return None
    origin = typing.get_origin(inner)
    try:
        if inner is bool:
            low = text.strip().lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ConfigError(f"{where}: expected true/false, got {text!r}")
        if inner is int:
            return int(text)
        if inner is float:
            return float(text)
        if inner is str:
            return text
        if origin is Literal:
            for choice in typing.get_args(inner):
                if str(choice) == text:
                    return choice
            raise ConfigError(f"{where}: {text!r} is not one of {list(typing.get_args(inner))}")
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot read {text!r} as {_type_name(inner)}") from exc
    try:  # lists, tuples, mappings, Any: YAML syntax (safe_load: data only)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {text!r} is not valid YAML: {exc}") from exc


def _step_type(tp: Any, key: str, where: str) -> Any:
    _, tp = _is_optional(tp)
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        if key not in hints:
            raise ConfigError(f"unknown key {where + key!r}; allowed: {sorted(hints)}")
        return hints[key]
    origin = typing.get_origin(tp)
    if origin is list:
        if not re.fullmatch(r"\d+", key):
            raise ConfigError(f"{where + key!r}: a list is indexed by a number")
        return typing.get_args(tp)[0]
    if origin is dict:
        return typing.get_args(tp)[1]
    if tp is Any:
        return Any
    raise ConfigError(f"{(where + key)!r}: {where.rstrip('.')} is a {_type_name(tp)}, it has no sub-keys")


def apply_override(raw: dict[str, Any], assignment: str, root: type) -> None:
    """Apply ``a.b.c=value`` to the raw mapping of dataclass ``root``, typed by the field's declaration."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key.path=value")
    key, text = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {assignment!r} has an empty key")
    tp: Any = root
    node: Any = raw
    where = ""
    for i, part in enumerate(parts):
        tp = _step_type(tp, part, where)
        last = i == len(parts) - 1
        if isinstance(node, list):
            index = int(part)
            if index >= len(node):
                raise ConfigError(f"{where + part!r}: index out of range (the list has {len(node)} items)")
            if last:
                node[index] = _parse_text(text, tp, where + part)
            else:
                node = node[index]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"{where + part!r}: cannot set a key inside a {type(node).__name__}")
            if last:
                node[part] = _parse_text(text, tp, where + part)
            else:
                if node.get(part) is None:
                    _, inner = _is_optional(tp)
                    if typing.get_origin(inner) is list:
                        raise ConfigError(f"{where + part!r} is an empty list; define its items in the YAML")
                    node[part] = {}
                node = node[part]
        where += part + "."


_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _default(name: str) -> str | None:
    """The value of an unset variable that has one: ``SHRINKFACE_ALIGNED`` is ``<cache>/aligned``, where
    ``shrinkface data align`` examples and ``make export-tflite`` put the aligned crops."""
    return str(cache_dir() / "aligned") if name == "SHRINKFACE_ALIGNED" else None


def expand_path(text: str | Path) -> Path:
    """Expand ``~`` and ``${VAR}`` (``_default`` for an unset known variable); any other unset variable is a
    ``ConfigError``."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        value = os.environ.get(name, _default(name))
        if value is None:
            raise ConfigError(f"path {text!s} uses ${{{name}}}, which is not set")
        return value

    return Path(_VAR.sub(sub, str(text))).expanduser()
