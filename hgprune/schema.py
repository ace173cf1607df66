"""The machinery behind :mod:`hgprune.settings`: bounded types, frozen settings dataclasses, key-path errors, flags.

A setting's type carries its bounds and the sentence an out-of-range value is refused with (:class:`Rule`);
:func:`section` makes a frozen pydantic dataclass whose construction errors are one-line
:class:`~hgprune.errors.HgpruneError` naming the key; :func:`build` reads a plain mapping (a recipe) into one;
:func:`flag` and :func:`check` give CLI flags and plain library arguments the same parsing and bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import re
import reprlib
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictInt, TypeAdapter
from pydantic import ValidationError as _PydanticError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from hgprune.errors import HgpruneError

# -- typed, bounded values ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """The sentence an out-of-range value is refused with (``must be in [0, 1]``), carried by its type."""

    text: str


def _interval(lo, hi, lo_open: bool, hi_open: bool) -> str:
    def text(x) -> str:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"

    return f"must be in {'(' if lo_open else '['}{text(lo)}, {text(hi)}{')' if hi_open else ']'}"


def Int(lo: int, hi: int, rule: str | None = None) -> Any:  # noqa: N802 (a type, used as one)
    """An integer in ``[lo, hi]`` (never a bool or a float)."""
    return Annotated[StrictInt, Field(ge=lo, le=hi), Rule(rule or _interval(lo, hi, False, False))]


def _number(value: Any) -> Any:
    if isinstance(value, bool) or (
        isinstance(value, str) and not re.fullmatch(r"\s*[-+]?[\d.]+([eE][-+]?\d+)?\s*", value)
    ):
        raise ValueError("must be a number")  # PyYAML reads 1e-3 (no dot) as a string: that one is a number
    return value


def Real(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:  # noqa: N802
    """A finite number in the interval (``lo_open``/``hi_open`` exclude the end)."""
    bounds = {"gt" if lo_open else "ge": lo, "lt" if hi_open else "le": hi}
    return Annotated[float, BeforeValidator(_number), Field(**bounds), Rule(_interval(lo, hi, lo_open, hi_open))]


def Checked(base: Any, test, rule: str) -> Any:  # noqa: N802
    """``base`` values that pass ``test``; others are refused with ``rule``."""

    def check(value):
        if value is not None and not test(value):
            raise ValueError(rule)
        return value

    return Annotated[base, AfterValidator(check), Rule(rule)]


def setting(default: Any, help: str = "") -> Any:  # noqa: A002
    """A field's default and help (mutable and section defaults are built fresh for every instance)."""
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return Field(default_factory=default, description=help)
    if isinstance(default, (list, dict)):
        return Field(default_factory=functools.partial(type(default), default), description=help)
    return Field(default, description=help)


_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=False)
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 2, 4, 4, 60, 40, 60
MAX_SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """``repr(value)`` cut to one short line: never formats a whole (possibly huge, alias-expanded) structure."""
    text = _SHOWN.repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def printable(key: Any) -> str:
    """A key as it can appear inside a one-line message (odd keys — newlines, non-strings, long ones — are quoted)."""
    plain = isinstance(key, str) and key and key.isprintable() and key.strip() == key and len(key) <= MAX_SHOWN_CHARS
    return key if plain else shown(key)


def section(path: str) -> Any:
    """A frozen settings dataclass whose construction errors are :class:`HgpruneError` naming ``path.key``."""

    def wrap(cls: type) -> type:
        cls = _pydantic_dataclass(frozen=True, config=_CONFIG)(cls)
        init = cls.__init__

        def __init__(self, *args, **kwargs):  # noqa: N807
            try:
                init(self, *args, **kwargs)
            except _PydanticError as exc:
                raise HgpruneError(validation_message(exc, type(self), path)) from None

        cls.__init__ = functools.wraps(init)(__init__)
        cls.__settings_path__ = path
        return cls

    return wrap


def as_plain(obj: Any) -> dict:
    """``dataclasses.asdict`` with tuples as lists: what YAML and JSON hold."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(obj))


# -- building from plain mappings, with the key path in every error ------------------------------------------------


def field_types(cls: type) -> dict[str, Any]:
    """A settings dataclass's fields → their annotated types."""
    return {
        name: Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        for name, info in cls.__pydantic_fields__.items()
    }


def _unwrap(tp: Any) -> tuple[Any, list]:
    """(bare type, metadata) of an annotated type; ``X | None`` → ``X``."""
    metadata: list = []
    while True:
        if typing.get_origin(tp) is Annotated:
            metadata.extend(tp.__metadata__)
            tp = tp.__origin__
        elif typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, metadata
            tp = args[0]
        else:
            return tp, metadata


def type_at(cls: type, keys: list) -> Any:
    """The annotated type at ``keys`` below settings class ``cls`` (None when there is no such key)."""
    tp: Any = cls
    for key in keys:
        bare, _ = _unwrap(tp)
        if dataclasses.is_dataclass(bare):
            tp = field_types(bare).get(key)
        elif typing.get_origin(bare) in (list, tuple):
            tp = typing.get_args(bare)[0]
        elif typing.get_origin(bare) is dict:
            tp = typing.get_args(bare)[1] if key != "[key]" else typing.get_args(bare)[0]
        else:
            return None
        if tp is None:
            return None
    return tp


def user_loc(cls: type, loc: tuple) -> list:
    """The keys of pydantic's error location that the user wrote, without its union-member tags.

    Below a settings class or a mapping every location element is the user's key, whatever characters it
    holds (``"["`` is a valid YAML key); only below a union with several members does pydantic insert a
    tag (``int``, ``list[int]``, ``function-after[…]``), which is dropped.
    """
    out: list = []
    tp: Any = cls
    for key in loc:
        bare = _unwrap(tp)[0] if tp is not None else None
        union = typing.get_origin(bare) in (typing.Union, types.UnionType)
        if tp is None or union:
            if isinstance(key, str) and "[" in key and key != "[key]":
                continue
            if union:
                tp = None
                continue
            out.append(key)
            continue
        out.append(key)
        if key == "[key]" and typing.get_origin(bare) is dict:
            tp = typing.get_args(bare)[0]
        else:
            tp = type_at(bare, [key])
    return out


_TYPE_NAMES = {
    "int": "an integer",
    "bool": "true or false",
    "string": "a string",
    "float": "a number",
    "dataclass": "a mapping",
    "dict": "a mapping",
    "list": "a list",
    "tuple": "a list",
}


def validation_message(exc: _PydanticError, cls: type, prefix: str = "") -> str:
    """pydantic's first error as ``key.path: must be …, got …`` (one line)."""
    err = exc.errors(include_url=False)[0]
    loc = user_loc(cls, err["loc"])
    if loc and loc[-1] == "[key]":
        loc = loc[:-2]
    path = prefix
    for k in loc:
        path += f"[{k}]" if not isinstance(k, str) else (f".{printable(k)}" if path else printable(k))
    kind, value = err["type"], err.get("input")
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        parent = _unwrap(type_at(cls, loc[:-1]))[0]
        names = list(field_types(parent)) if dataclasses.is_dataclass(parent) else []
        close = difflib.get_close_matches(str(loc[-1])[:MAX_SHOWN_CHARS], names, n=1) if loc else []
        return f"{path}: unknown key" + (
            f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
        )
    bare, metadata = _unwrap(type_at(cls, loc))
    rules = [m.text for m in metadata if isinstance(m, Rule)]
    if kind == "literal_error" or typing.get_origin(bare) is Literal:
        rule = "must be one of " + ", ".join(repr(a) for a in typing.get_args(bare))
    elif kind == "finite_number":
        rule = rules[0] if rules else "must be a finite number"
    elif kind.split("_")[0] in _TYPE_NAMES:
        rule = f"must be {_TYPE_NAMES[kind.split('_')[0]]}"
    elif kind.startswith(("greater", "less")) and rules:
        rule = rules[0]
    else:
        rule = err["msg"].removeprefix("Value error, ")
    return f"{path}: {rule}, got {shown(value)}"


def build(cls: type, raw: Any, path: str | None = None) -> Any:
    """Settings dataclass ``cls`` from a plain mapping; every problem is reported with its dotted key path."""
    path = cls.__settings_path__ if path is None else path
    if not isinstance(raw, dict):
        raise HgpruneError(f"{path or cls.__name__}: must be a mapping, got {shown(raw)}")
    try:
        return _adapter(cls).validate_python(_nulls_as_defaults(cls, raw))
    except _PydanticError as exc:
        raise HgpruneError(validation_message(exc, cls, path)) from None


@functools.cache
def _adapter(cls: type) -> Any:
    return TypeAdapter(cls)


def _nulls_as_defaults(cls: type, raw: dict) -> dict:
    """``section:`` with nothing under it (YAML null) means the section's defaults, at any depth."""
    out = {}
    for key, value in raw.items():
        tp = field_types(cls).get(key) if isinstance(key, str) else None
        bare = _unwrap(tp)[0] if tp is not None else None
        if bare is not None and dataclasses.is_dataclass(bare) and not _optional(tp):
            value = {} if value is None else value
            if isinstance(value, dict):
                value = _nulls_as_defaults(bare, value)
        out[key] = value
    return out


def _optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


# -- CLI flags ---------------------------------------------------------------------------------------------------


def flag(tp: Any, default: Any = None) -> dict:
    """``add_argument`` keywords for a flag of type ``tp`` (e.g. ``Threads`` or ``field_types(TrainConfig)["lr"]``):
    parsed and bounded by the same definition as the setting, refused as one line before any work starts."""
    bare, metadata = _unwrap(tp)
    adapter = _flag_adapter(tp)
    rule = next((m.text for m in metadata if isinstance(m, Rule)), None)

    def parse(text: str) -> Any:
        try:
            value = float(text) if bare is float else int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a number' if bare is float else 'an integer'}, got {shown(text)}"
            ) from None
        try:
            return adapter.validate_python(value)
        except _PydanticError:
            raise argparse.ArgumentTypeError(f"{rule or 'out of range'}, got {shown(value)}") from None

    parse.__name__ = "number" if bare is float else "integer"
    kwargs: dict = {"type": parse}
    if default is not None:
        kwargs["default"] = default
    return kwargs


@functools.cache
def _flag_adapter(tp: Any) -> Any:
    return TypeAdapter(tp, config=_CONFIG) if not dataclasses.is_dataclass(tp) else TypeAdapter(tp)


def check(name: str, value: Any, tp: Any) -> Any:
    """``value`` if it is a valid ``tp`` (e.g. ``Threads``), else :class:`HgpruneError` ``name: rule, got value``:
    how library functions taking a setting as a plain argument bound it by its one definition."""
    try:
        return _flag_adapter(tp).validate_python(value)
    except _PydanticError as exc:
        rules = [m.text for m in _unwrap(tp)[1] if isinstance(m, Rule)]
        kind = exc.errors(include_url=False)[0]["type"]
        rule = rules[0] if rules and not kind.endswith("_type") else exc.errors(include_url=False)[0]["msg"]
        raise HgpruneError(f"{name}: {rule}, got {shown(value)}") from None


def mirror(cls: type, name: str) -> dict:
    """``add_argument`` keywords for a flag that mirrors setting ``name`` of ``cls``: its type, bounds and default
    are the setting's."""
    return flag(field_types(cls)[name], default_of(cls, name))


def default_of(cls: type, name: str) -> Any:
    """A field's default (its one home is the field)."""
    info = cls.__pydantic_fields__[name]
    return info.default_factory() if info.default_factory is not None else info.default
