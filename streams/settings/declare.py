"""How a setting is declared: one dataclass field gives its flag, variable, default and parser.

A settings type is a frozen dataclass deriving from ``Settings``; each field made with
``setting()`` is one setting. Its name (the type's ``prefix`` plus the field's name,
unless given) makes the flag ``--name-with-dashes`` and the variable ``CAPFLOW_<NAME>``;
its parser turns the text of either into the typed value, or raises ValueError with a
reason a user can act on. A secret is never shown: not in a repr, ``--help``, an error
or a log line. ``streams.settings.flags`` turns the declarations into argparse flags.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

ENV_PREFIX = "CAPFLOW_"
_SPEC = "capflow.setting"

S = TypeVar("S", bound="Settings")


class SettingError(ValueError):
    """A CAPFLOW_* variable that does not parse; the message is one line (exit status 2)."""


# -- parsers: text -> value, ValueError with the reason --------------------------------


def text(value: str) -> str:
    return value


def integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("expected a whole number") from None


def positive_int(value: str) -> int:
    number = integer(value)
    if number < 1:
        raise ValueError(f"must be >= 1, got {number}")
    return number


def number(value: str) -> float:
    try:
        result = float(value)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(result):
        raise ValueError(f"must be a finite number, got {value}")
    return result


def positive_number(value: str) -> float:
    result = number(value)
    if not result > 0:
        raise ValueError(f"must be a finite number > 0, got {value}")
    return result


def boolean(value: str) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); anything else is an error, not False."""
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected one of 1, true, yes, on, 0, false, no, off")


def csv(value: str) -> tuple[str, ...]:
    """Comma-separated items, blanks around them and empty items dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def choice(*names: str, upper: bool = False) -> Callable[[str], str]:
    """One of ``names`` in any case (returned in the case of ``names``)."""

    def parse(value: str) -> str:
        name = value.strip().upper() if upper else value.strip().lower()
        if name not in names:
            raise ValueError(f"expected one of {', '.join(names)}")
        return name

    return parse


# -- declaring -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    help: str
    parse: Callable[[str], Any]
    secret: bool
    name: str
    flag: str
    repeatable: bool


def setting(
    default: Any,
    help: str,
    parse: Callable[[str], Any] = text,
    *,
    secret: bool = False,
    name: str = "",
    flag: str = "",
    repeatable: bool = False,
) -> Any:
    """One setting, as a dataclass field of a ``Settings`` type.

    ``name`` replaces prefix + field name (and so the variable); ``flag`` replaces the
    flag only, where users know a shorter one. ``repeatable``: a sequence whose flag may
    be given several times, each a comma-separated list.
    """
    spec = _Spec(help, parse, secret, name, flag, repeatable)
    return field(default=default, repr=not secret, metadata={_SPEC: spec})


@dataclass(frozen=True)
class Declared:
    """One setting as users see it: its flag, variable, default, help and parser."""

    field: str  # attribute of the settings type
    name: str  # argparse dest; the flag and the variable derive from it
    default: Any
    help: str
    parse: Callable[[str], Any]
    secret: bool
    flag: str
    repeatable: bool

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def shown(self, value: Any) -> str:
        """``value`` as help and errors show it (a sequence comma-separated)."""
        if self.secret:
            return "set" if value else "not set"
        if isinstance(value, Sequence) and not isinstance(value, str):
            return ",".join(str(item) for item in value)
        return str(value)

    def from_text(self, raw: str) -> Any:
        """The parsed value; ValueError's message never quotes a secret's text."""
        try:
            return self.parse(raw)
        except ValueError as exc:
            if self.secret:
                raise ValueError("not valid (value hidden)") from None
            raise ValueError(f"{raw!r} is not valid: {exc}") from None

    def from_environment(self, environ: Mapping[str, str] | None = None) -> Any:
        """The variable's parsed value if it is set, else the default."""
        env = os.environ if environ is None else environ
        raw = env.get(self.env)
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            if self.secret:  # the parser's message may quote the value
                raise SettingError(f"{self.env} is not valid (value hidden)") from None
            raise SettingError(f"{self.env}={raw!r} is not valid: {exc}") from None


@dataclass(frozen=True)
class Settings:
    """Base of every settings type: ``prefix`` names its settings, ``title`` heads them.

    A text given for a typed setting in code is parsed like the variable's, so
    ``KafkaSettings(security_protocol="sasl_ssl")`` is validated and normalised too.
    """

    prefix: ClassVar[str] = ""
    title: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for decl in declarations(type(self)):
            value = getattr(self, decl.field)
            if isinstance(value, str) and decl.parse is not text:
                object.__setattr__(self, decl.field, decl.parse(value))


def declarations(kind: type[Settings]) -> Iterator[Declared]:
    """The settings ``kind`` declares itself, in declaration order."""
    for f in fields(kind):
        spec = f.metadata.get(_SPEC)
        if spec is None:
            continue
        name = spec.name or kind.prefix + f.name
        yield Declared(
            field=f.name,
            name=name,
            default=f.default,
            help=spec.help,
            parse=spec.parse,
            secret=spec.secret,
            flag=spec.flag or "--" + name.replace("_", "-"),
            repeatable=spec.repeatable,
        )


def parts(kind: type[Settings]) -> Iterator[tuple[str, type[Settings]]]:
    """The settings types ``kind`` is made of (its fields that are settings themselves)."""
    for f in fields(kind):
        factory = f.default_factory
        if isinstance(factory, type) and issubclass(factory, Settings):
            yield f.name, factory


def from_environment(kind: type[S], environ: Mapping[str, str] | None = None) -> S:
    """``kind`` from the CAPFLOW_* variables alone (for callers without a command line)."""
    values: dict[str, Any] = {d.field: d.from_environment(environ) for d in declarations(kind)}
    values.update((name, from_environment(part, environ)) for name, part in parts(kind))
    return kind(**values)
