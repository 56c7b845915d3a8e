"""Functions of processing/, the per-security processor, market, the alert sinks, the
commands and polling/ stay short (<= 50 lines).

Long functions are where mirrored fields and index arithmetic crept in before; the
limit keeps each rule of the definitions, and each delivery rule, in a function that
can be read at once. A command only parses options and wires objects.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streams

ROOT = Path(streams.__file__).parent
PACKAGES = ("processing", "sinks", "commands", "polling")
MODULES = [
    *sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py")),
    "pipeline/processor.py",
    "domain/market.py",
]
LIMIT = 50
# Not split yet, each waiting for the change that rewrites it; the list may only shrink.
KNOWN_LONG = {
    "commands/demo.py": {"run"},
    "commands/opend_sim.py": {"register"},
    "commands/replay.py": {"replay"},
    "polling/pool.py": {"__init__"},
}


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function or method longer than LIMIT lines."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > LIMIT
    ]


@pytest.mark.parametrize("module", MODULES)
def test_no_function_over_the_limit(module: str) -> None:
    long = {name for name, _ in long_functions((ROOT / module).read_text())}
    assert long == KNOWN_LONG.get(module, set())


def test_the_check_sees_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert long_functions(f"def f() -> None:\n{body}\n") == [("f", LIMIT + 1)]
    assert long_functions("async def g() -> None:\n    pass\n") == []


def test_every_processing_module_is_covered() -> None:
    assert {"processing/flow.py", "processing/detector.py", "pipeline/processor.py"} <= set(MODULES)
    assert {"sinks/follower.py", "sinks/delivery.py", "commands/alerts.py"} <= set(MODULES)
    assert {"polling/poller.py", "polling/pool.py", "polling/history.py"} <= set(MODULES)
    assert set(KNOWN_LONG) <= set(MODULES)
