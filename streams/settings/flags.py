"""The declared settings as argparse flags whose defaults come from CAPFLOW_* variables.

A command adds the settings types it uses (``add_settings``) and builds each once from
its parsed arguments (``from_args``); the top-level help lists every variable
(``describe_environment``). A value that does not parse is a one-line error naming
the flag or the variable (exit status 2), with a secret's value never quoted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from streams.settings import DECLARED
from streams.settings.declare import Declared, Settings, declarations, parts

S = TypeVar("S", bound=Settings)


def _all(kind: type[Settings]) -> list[Declared]:
    """The settings of ``kind`` and of the settings types it is made of."""
    found = list(declarations(kind))
    for _name, part in parts(kind):
        found.extend(_all(part))
    return found


def _flag_type(decl: Declared) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return decl.from_text(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


class _Repeated(argparse.Action):
    """A list setting's flag, repeatable: its first use replaces the variable's value."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        before = getattr(namespace, self.dest)
        kept = () if before is self.default else tuple(before)
        setattr(namespace, self.dest, (*kept, *values))


def _argument(decl: Declared) -> dict[str, Any]:
    default = decl.from_environment()
    shown = decl.shown(default)
    if decl.secret:  # the default may come from the environment: only whether one is set
        help_text = f"{decl.help} (env {decl.env}, {shown}; never shown)"
    else:
        help_text = f"{decl.help} (env {decl.env}, default {shown})"
    kwargs: dict[str, Any] = {
        "dest": decl.name,
        "default": default,
        "help": help_text.replace("%", "%%"),  # argparse formats help with %
        "metavar": "SECRET" if decl.secret else decl.flag.lstrip("-").replace("-", "_").upper(),
    }
    if isinstance(decl.default, bool):
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = _flag_type(decl)
        if decl.repeatable:
            kwargs["action"] = _Repeated
    return kwargs


def add_settings(
    parser: argparse.ArgumentParser, *kinds: type[Settings], only: Iterable[str] = ()
) -> None:
    """Add the settings of ``kinds`` (only the fields named in ``only``, if given) as flags.

    Reads their CAPFLOW_* variables now, as the flags' defaults (and ``--help``'s);
    raises SettingError for one that does not parse.
    """
    wanted = set(only)
    found: set[str] = set()
    for kind in kinds:
        for decl in _all(kind):
            if wanted and decl.field not in wanted:
                continue
            found.add(decl.field)
            parser.add_argument(decl.flag, **_argument(decl))
    if wanted - found:
        raise KeyError(f"no such setting: {', '.join(sorted(wanted - found))}")


def from_args(args: argparse.Namespace, kind: type[S]) -> S:
    """``kind`` from a command's parsed arguments; settings it does not offer keep their
    default."""
    values: dict[str, Any] = {
        d.field: getattr(args, d.name) for d in declarations(kind) if hasattr(args, d.name)
    }
    values.update((name, from_args(args, part)) for name, part in parts(kind))
    return kind(**values)


def secret_values(args: argparse.Namespace) -> list[str]:
    """The secret settings a command was given, so logs can mask them."""
    names = [d.name for kind in DECLARED for d in declarations(kind) if d.secret]
    return [str(value) for name in names if (value := getattr(args, name, None))]


def describe_environment(kinds: Sequence[type[Settings]] = DECLARED) -> str:
    """Text for ``capflow --help``: every CAPFLOW_* variable with its built-in default."""
    lines = ["environment (each also a flag of the commands that use it):"]
    for kind in kinds:
        lines.append(f" {kind.title}:")
        for decl in declarations(kind):
            default = "" if decl.secret else decl.shown(decl.default)
            lines.append(f"  {decl.env:<34} {decl.help} [{default}]")
    return "\n".join(lines)
