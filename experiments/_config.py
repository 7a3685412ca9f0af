r"""Typed experiment configs: dataclasses, ``key=value`` overrides and JSON round trips.

Every experiment's config is a (frozen) dataclass whose fields carry plain types:
``int``, ``float``, ``bool``, ``str``, ``tuple[T, ...]`` of those, and ``T | None``.
:func:`apply_overrides` parses command-line ``key=value`` strings against the field
types and fails fast, naming the key and the expected type, on an unknown key or a
value that does not parse. :func:`config_to_dict` is what ``config.json`` stores and
what automatic resume compares.

**Ranges and choices.** A field declares what values it allows with
``typing.Annotated`` metadata, checked by :func:`check_config` (which
:func:`apply_overrides` and :func:`config_from_dict` call, so a bad override fails
before the runner creates a run directory, naming the key, the value and the allowed
range)::

    ais_chains: Count = 4000              # an integer >= 1
    langevin_dt: Positive = 5e-3          # a finite float > 0
    durations: tuple[Positive, ...] = (0.1, 0.5)
    system: Annotated[str, Choices(("dw4", "lj13"))] = "dw4"

The aliases (:data:`Count`, :data:`NonNegativeInt`, :data:`Seed`, :data:`Positive`,
:data:`NonNegative`, :data:`Fraction`, :data:`Real`) cover most fields;
:class:`Range` and :class:`Choices` build the others.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

__all__ = [
    "Choices",
    "ConfigError",
    "Count",
    "Fraction",
    "NonNegative",
    "NonNegativeInt",
    "Positive",
    "Range",
    "Real",
    "Seed",
    "SystemName",
    "apply_overrides",
    "check_config",
    "config_from_dict",
    "config_to_dict",
    "parse_value",
]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """A bad override or config: unknown key, wrong type, unparsable value, out of range."""


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric field's allowed interval (``None``: unbounded); NaN and inf never pass.

    Attributes:
        low, high: the bounds.
        low_open, high_open: exclude the bound itself.
        integer: also require a whole number (for ``int`` fields, a ``bool`` is refused).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """The allowed values in words, e.g. ``an integer >= 1`` or ``a number in (0, 1]``."""
        what = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None and self.low is None:
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        if self.low is None and self.high is None:
            return what
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return f"{what} in {lo}{self.low:g}, {self.high:g}{hi}"

    def check(self, value: Any) -> str | None:
        """``None`` when ``value`` is allowed, else what was expected."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.describe()
        if not math.isfinite(value) or (self.integer and value != int(value)):
            return self.describe()
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return self.describe()
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return self.describe()
        return None


@dataclasses.dataclass(frozen=True)
class Choices:
    """A field's allowed values: a tuple, or a zero-argument callable returning them (read
    when checked, e.g. a registry), with an optional ``accept(value) -> bool`` for values
    a listing cannot enumerate (parametrised names such as ``gaussian-<d>``)."""

    values: tuple | Callable[[], Iterable[Any]]
    accept: Callable[[Any], bool] | None = None

    def allowed(self) -> list:
        """The listed values."""
        return list(self.values() if callable(self.values) else self.values)

    def describe(self) -> str:
        """The allowed values in words."""
        return "one of " + ", ".join(repr(v) for v in self.allowed())

    def check(self, value: Any) -> str | None:
        """``None`` when ``value`` is allowed, else what was expected."""
        if self.accept is not None:
            return None if self.accept(value) else self.describe()
        return None if value in self.allowed() else self.describe()


def _system_known(name: Any) -> bool:
    from thermo import systems

    return isinstance(name, str) and systems.is_registered(name)


def _system_names() -> list[str]:
    from thermo import systems

    return systems.names()


#: An integer >= 1 (a population, a number of steps, a batch size).
Count = Annotated[int, Range(1, integer=True)]
#: An integer >= 0 (a number of optional steps that may be skipped).
NonNegativeInt = Annotated[int, Range(0, integer=True)]
#: A PRNG seed: an integer in [0, 2**32 - 1].
Seed = Annotated[int, Range(0, 2**32 - 1, integer=True)]
#: A finite float > 0 (a step size, a temperature, a density, a learning rate).
Positive = Annotated[float, Range(0.0, low_open=True)]
#: A finite float >= 0.
NonNegative = Annotated[float, Range(0.0)]
#: A float in [0, 1].
Fraction = Annotated[float, Range(0.0, 1.0)]
#: Any finite float.
Real = Annotated[float, Range()]
#: The name of a system in :mod:`thermo.systems` (the registry decides, patterns included).
SystemName = Annotated[str, Choices(_system_names, accept=_system_known)]


def _constraints(tp: Any) -> list:
    if typing.get_origin(tp) is Annotated:
        return [m for m in tp.__metadata__ if hasattr(m, "check")]
    return []


def _violation(value: Any, tp: Any) -> str | None:
    """What ``value`` should have been under the annotation ``tp`` (``None``: it is fine)."""
    for constraint in _constraints(tp):
        problem = constraint.check(value)
        if problem is not None:
            return problem
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    alternatives = _union_alternatives(tp)
    if alternatives is not None:
        if value is None:
            return None
        for alt in alternatives:
            problem = _violation(value, alt)
            if problem is not None:
                return problem
        return None
    item_types = _tuple_item_types(tp, len(value)) if isinstance(value, tuple | list) else None
    for item, item_tp in zip(value, item_types, strict=False) if item_types else ():
        problem = _violation(item, item_tp)
        if problem is not None:
            return problem if problem.endswith("(every item)") else f"{problem} (every item)"
    return None


def _union_alternatives(tp: Any) -> list | None:
    """The alternatives other than ``None`` of a union annotation (``None``: not a union)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return None


def _tuple_item_types(tp: Any, n_items: int) -> list | None:
    """The annotations of the ``n_items`` items of a ``tuple[...]`` annotation
    (``tuple[T, ...]`` repeats ``T``; ``None``: not a tuple)."""
    if typing.get_origin(tp) is not tuple:
        return None
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return [args[0]] * n_items
    return list(args)


def _annotated_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def check_config(config: Any, *, keys: Iterable[str] | None = None, given: dict | None = None):
    """Check every field (or only ``keys``) of ``config`` against its declared range/choices.

    Args:
        config: a config dataclass instance.
        keys: the fields to check (default: all).
        given: ``{key: text}`` of the overrides as typed, quoted in the message.

    Returns:
        ``config``.

    Raises:
        ConfigError: ``"<key>=<value>: must be <allowed>"``, for the first bad field.
    """
    names = [f.name for f in dataclasses.fields(config)] if keys is None else list(keys)
    _check_fields(type(config), {key: getattr(config, key) for key in names}, given)
    return config


def _check_fields(config_cls: type, values: dict[str, Any], given: dict | None = None) -> None:
    atypes = _annotated_types(config_cls)
    for key, value in values.items():
        problem = _violation(value, atypes[key])
        if problem is not None:
            shown = given[key] if given and key in given else repr(value)
            raise ConfigError(f"{key}={shown}: must be {problem} ({config_cls.__module__})")


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
        alternatives = _union_alternatives(tp)
        if alternatives is not None:
            if type(None) in args and text.strip().lower() in {"none", "null"}:
                return None
            for alt in alternatives:
                try:
                    return parse_value(text, alt, key=key)
                except ConfigError:
                    pass
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
    given: dict[str, str] = {}
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
        given[key] = text.strip()
    try:
        # The overrides first, so that the message names what the user typed; then the
        # rest (a default that a field's declaration refuses is a bug, caught here too).
        _check_fields(type(config), changes, given)
        new = dataclasses.replace(config, **changes)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:  # the config's own validation (__post_init__)
        raise ConfigError(f"invalid {type(config).__name__}: {err}") from None
    return check_config(new)


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
    config = config_cls(**{key: _from_json(value, ftypes[key]) for key, value in data.items()})
    return check_config(config)


def _from_json(value: Any, tp: Any) -> Any:
    """Undo :func:`config_to_dict`: JSON lists become (nested) tuples where the type says so."""
    alternatives = _union_alternatives(tp)
    if alternatives is not None:
        if value is None:
            return None
        for alt in alternatives:
            if (typing.get_origin(alt) is tuple) == isinstance(value, list):
                return _from_json(value, alt)
        return value
    item_types = _tuple_item_types(tp, len(value)) if isinstance(value, list) else None
    if item_types is None:
        return value
    return tuple(_from_json(v, a) for v, a in zip(value, item_types, strict=False))
