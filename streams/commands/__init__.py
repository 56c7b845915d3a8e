"""One module per ``capflow`` subcommand, each with the same two entry points.

``register(subparsers)`` adds the command's parser and sets ``func=run``;
``run(args) -> int`` returns the exit status. Bad usage is raised as
``UsageError`` and a failure as ``CommandFailed``: ``streams.cli`` prints either
to stderr as ``capflow COMMAND: message`` and exits 2 or 1, so every command
reports errors the same way.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Arguments the command cannot work with (exit status 2)."""


class CommandFailed(RuntimeError):
    """The command was used correctly but could not do its job (exit status 1)."""
