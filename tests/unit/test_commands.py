"""Every ``capflow`` command reports bad usage (exit 2) and failures (exit 1) on stderr.

Walks each command module with an argument it must refuse and, where one exists
without a broker or OpenD, a failure it must report: the message goes to stderr
under the command's name, nothing of it to stdout, and no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import COMMANDS, build_parser, main
from streams.commands import UsageError
from streams.devtools import free_port

# (command module, argv, exit status, text stderr must contain); {tmp} is a fresh
# directory holding an empty file "empty.jsonl", {port} a port nothing listens on.
NO_KAFKA = ["--kafka-bootstrap", "127.0.0.1:{port}", "--kafka-connect-timeout", "1"]
CASES: list[tuple[str, list[str], int, str]] = [
    ("kafka", ["kafka", "restart"], 2, "invalid choice"),
    ("kafka", ["kafka", "status", "--data-dir", "{tmp}"], 1, "capflow kafka: status: not"),
    ("alerts", ["alerts", "--format", "slack"], 2, "capflow alerts: --format slack needs"),
    ("alerts", ["alerts", *NO_KAFKA], 1, "capflow alerts: "),
    ("plot", ["plot"], 2, "required: security"),
    ("plot", ["plot", "HK.00700", "--flows-file", "{tmp}/missing.jsonl"], 1, "capflow plot: "),
    ("plot", ["plot", "HK.00700", "--flows-file", "{tmp}/empty.jsonl"], 1, "capflow plot: "),
    ("opend_sim", ["opend-sim", "--port", "x"], 2, "invalid int value"),
    ("opend_sim", ["opend-sim", "--gateways", "0"], 2, "capflow opend-sim: --gateways must"),
    ("opend_sim", ["opend-sim", "--user-group", "Tech"], 2, "--user-group 'Tech': expected"),
    ("opend_sim", ["opend-sim", "--user-group", "T=HK.1,X"], 2, "--user-group T: 'X'"),
    ("opend_sim", ["opend-sim", "--host", "256.0.0.1", "--port", "0"], 1, "cannot listen on"),
    ("fetch", ["fetch", "00700"], 2, "capflow fetch: "),
    ("fetch", ["fetch", "HK.00700", "--opend-port", "{port}"], 1, "cannot connect"),
    ("worker", ["worker", "--web-port", "x"], 2, "--web-port: 'x' is not valid: expected a whole"),
    ("worker", ["worker", "--watchlist", "00700"], 2, "capflow worker: bad watchlist"),
    (
        "worker",
        ["worker", "--watchlist", "", "--no-poller", "--opend-rsa-key", "{tmp}/no.pem"],
        2,
        "capflow worker: --opend-rsa-key",
    ),
    ("worker", ["worker", "--watchlist", "HK.00700", *NO_KAFKA], 1, "capflow worker: "),
    ("worker", ["worker"], 2, "capflow worker: the watchlist is empty: give --watchlist,"),
    ("worker", ["worker", "--watchlist-file", "{tmp}/empty.jsonl"], 2, "no security in the"),
    ("worker", ["worker", "--watchlist-file", "{tmp}/no.txt"], 1, "no.txt: cannot read"),
    (
        "worker",
        ["worker", "--watchlist-group", "Tech", "--opend-port", "{port}"],
        1,
        "capflow worker: --watchlist-group 'Tech': cannot ask OpenD",
    ),
    ("replay", ["replay", "{tmp}/empty.jsonl", "--speed", "0"], 2, "capflow replay: --speed"),
    ("replay", ["replay", "{tmp}/missing.jsonl"], 1, "capflow replay: "),
    ("record", ["record"], 2, "required: file"),
    ("record", ["record", "{tmp}/out.jsonl", *NO_KAFKA], 1, "capflow record: "),
    ("backtest", ["backtest", "{tmp}/empty.jsonl", "--confirm", "x"], 2, "capflow backtest: "),
    ("backtest", ["backtest", "{tmp}/missing.jsonl"], 1, "capflow backtest: "),
    ("archive", ["archive", "{tmp}/a", "--flush-records", "0"], 2, "capflow archive: --flush"),
    ("archive", ["archive", "{tmp}", *NO_KAFKA], 1, "empty.jsonl is not part of a capflow"),
    ("history", ["history", "HK.00700", "--archive", "{tmp}", "--from", "x"], 2, "--from: 'x'"),
    ("history", ["history", "HK.00700", "--archive", "{tmp}/no"], 1, "capflow history: "),
    ("demo", ["demo", "--speed", "fast"], 2, "invalid float value"),
    ("demo", ["demo", "--scenario", "{tmp}/no.json", "--data-dir", "{tmp}"], 1, "capflow demo: "),
]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def test_the_walk_covers_every_command() -> None:
    assert {module for module, *_ in CASES} == set(COMMANDS)


@pytest.mark.parametrize(
    ("argv", "status", "text"),
    [case[1:] for case in CASES],
    ids=[f"{case[0]}-{case[2]}" for case in CASES],
)
def test_errors_go_to_stderr_with_the_right_exit_status(
    argv: list[str], status: int, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    port = str(free_port())
    filled = [a.replace("{tmp}", str(tmp_path)).replace("{port}", port) for a in argv]
    assert _run(filled) == status
    out, err = capsys.readouterr()
    assert text in err, err
    assert "Traceback" not in err
    assert text not in out and "error" not in out.lower(), out


@pytest.mark.parametrize("module", COMMANDS)
def test_a_bad_variable_ends_every_command_with_status_2(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAPFLOW_KAFKA_PORT", "x")  # a variable of two commands only
    assert _run([module.replace("_", "-"), "--help"]) == 2
    out, err = capsys.readouterr()
    assert (
        out == ""
        and err == "capflow: CAPFLOW_KAFKA_PORT='x' is not valid: expected a whole number\n"
    )


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_registers_its_module_run(module: str) -> None:
    """One entry-point shape: the parser's ``func`` is the module's public ``run``."""
    import importlib

    mod = importlib.import_module(f"streams.commands.{module}")
    sub = build_parser()._subparsers
    assert sub is not None
    choices = sub._group_actions[0].choices
    assert isinstance(choices, dict)
    name = module.replace("_", "-")
    assert choices[name].get_default("func") is mod.run


@pytest.mark.parametrize(
    "argv",
    [["worker", "--watchlist", "00700"], ["opend-sim", "--gateways", "0"]],
    ids=["worker", "opend-sim"],
)
def test_bad_usage_is_raised_not_printed(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The command raises UsageError and leaves printing to the CLI, like every command."""
    args = build_parser().parse_args(argv)
    with pytest.raises(UsageError):
        args.func(args)
    assert capsys.readouterr().err == ""
