"""The ``capflow`` command line: one subcommand per module in ``streams.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from streams import __version__
from streams.commands import CommandFailed, UsageError
from streams.kafka.errors import KafkaAccessError
from streams.observability.redact import add_secrets
from streams.settings.declare import SettingError
from streams.settings.flags import describe_environment, secret_values

# Each module in streams/commands/ exposes ``register(subparsers)``, which adds
# its parser and sets ``func=run`` (args -> exit code); see streams/commands/__init__.py.
COMMANDS: tuple[str, ...] = (
    "kafka",
    "alerts",
    "plot",
    "opend_sim",
    "fetch",
    "worker",
    "replay",
    "record",
    "backtest",
    "archive",
    "history",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser; raises SettingError for a CAPFLOW_* value that does not parse."""
    parser = argparse.ArgumentParser(
        prog="capflow",
        description="OpenD capital distribution -> Kafka -> rolling flows and reversal alerts.",
        epilog=describe_environment(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"capflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"streams.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # the CAPFLOW_* variables are read (and checked) here
    except SettingError as exc:
        print(f"capflow: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    add_secrets(secret_values(args))  # no log line of any library may show them
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"capflow {args.command}: {exc}", file=sys.stderr)
        return 2
    except (CommandFailed, KafkaAccessError) as exc:  # KafkaAccessError: password, TLS, no broker
        print(f"capflow {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
