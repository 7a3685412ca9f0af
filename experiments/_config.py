r"""Typed experiment configs: dataclasses, ``key=value`` overrides and JSON round trips.

Every experiment's config is a (frozen) dataclass whose fields carry plain types:
``int``, ``float``, ``bool``, ``str``, ``tuple[T, ...]`` of those, and ``T | None``.
:func:`apply_overrides` parses command-line ``key=value`` strings against the field
types and fails fast, naming the key and the expected type, on an unknown key or a
value that does not parse. :func:`config_to_dict` is what ``config.json`` stores and
what automatic resume compares.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

__all__ = ["ConfigError", "apply_overrides", "config_from_dict", "config_to_dict", "parse_value"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """A bad override or config: unknown key, wrong type, unparsable value."""


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def parse_value(text: str, tp: Any, *, key: str = "value") -> Any:
    """Parse the string ``text`` as a value of the (resolved) type annotation ``tp``.

    Supported: ``int``, ``float``, ``bool`` (true/false/1/0/yes/no/on/off), ``str``,
    ``tuple[T, ...]`` and ``tuple[T1, T2]`` (comma-separated items; nested tuples as
    ``1,2;3,4``), ``T | None``
    (``none``/``null`` gives ``None``) and ``Literal[...]``.

    Raises:
        ConfigError: naming ``key`` and the expected type when ``text`` does not parse.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    expected = _type_name(tp)
    try:
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            if type(None) in args and text.strip().lower() in {"none", "null"}:
                return None
            errors = []
            for alt in non_none:
                try:
                    return parse_value(text, alt, key=key)
                except ConfigError as err:
                    errors.append(str(err))
            raise ConfigError(f"{key}={text!r}: expected {expected}")
        if origin is typing.Literal:
            for lit in args:
                try:
                    candidate = parse_value(text, type(lit), key=key)
                except ConfigError:
                    continue
                if candidate == lit:
                    return lit
            raise ConfigError(f"{key}={text!r}: expected one of {list(args)}")
        if origin is tuple:
            # Nested tuples (e.g. tuple[tuple[float, float], ...]) separate their outer
            # items with ";" and inner ones with ","; flat tuples use ",".
            nested = any(typing.get_origin(a) is tuple for a in args)
            sep = ";" if nested else ","
            items = [s.strip() for s in text.split(sep)] if text.strip() else []
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(parse_value(s, args[0], key=key) for s in items)
            if len(items) != len(args):
                raise ConfigError(f"{key}={text!r}: expected {len(args)} comma-separated items")
            return tuple(parse_value(s, a, key=key) for s, a in zip(items, args, strict=True))
        if tp is bool:
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if tp is int:
            return int(text.strip())
        if tp is float:
            return float(text.strip())
        if tp is str:
            return text
    except ConfigError:
        raise
    except (ValueError, TypeError):
        raise ConfigError(f"{key}={text!r}: expected {expected}") from None
    raise ConfigError(f"{key}: unsupported config field type {expected}")


def _field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def apply_overrides(config: Any, overrides: Sequence[str]) -> Any:
    """Return ``config`` with ``key=value`` overrides applied, each parsed by field type.

    Raises:
        ConfigError: for a malformed item (no ``=``), an unknown key (the message lists the
            valid keys) or a value that does not parse as the field's type.
    """
    if not dataclasses.is_dataclass(config):
        raise ConfigError(f"config must be a dataclass instance, got {type(config).__name__}")
    ftypes = _field_types(type(config))
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in ftypes:
            valid = ", ".join(sorted(ftypes))
            raise ConfigError(
                f"unknown config key {key!r} for {type(config).__name__}; valid keys: {valid}"
            )
        changes[key] = parse_value(text, ftypes[key], key=key)
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as err:  # the config's own validation (__post_init__)
        raise ConfigError(f"invalid {type(config).__name__}: {err}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as a JSON-able dict (tuples become lists)."""
    return {f.name: _jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_from_dict(config_cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config from :func:`config_to_dict` output, type-checking every field."""
    ftypes = _field_types(config_cls)
    unknown = set(data) - set(ftypes)
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(unknown)} for {config_cls.__name__}")
    return config_cls(**{key: _from_json(value, ftypes[key]) for key, value in data.items()})


def _from_json(value: Any, tp: Any) -> Any:
    """Undo :func:`config_to_dict`: JSON lists become (nested) tuples where the type says so."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        for alt in args:
            if alt is not type(None) and (typing.get_origin(alt) is tuple) == isinstance(
                value, list
            ):
                return _from_json(value, alt)
        return value
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(v, args[0]) for v in value)
        return tuple(_from_json(v, a) for v, a in zip(value, args, strict=False))
    return value
