"""Every integration test module carries the ``integration`` marker.

``bash scripts/test.sh --fast`` selects tests by it (``-m "not integration"``), so a
module that forgot it would put a broker and a worker in the quick lane.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent.parent / "integration"


def marks_integration(source: str) -> bool:
    """Whether the module assigns ``pytestmark`` a value that names ``pytest.mark.integration``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return "pytest.mark.integration" in ast.unparse(node.value)
    return False


def test_the_check_tells_marked_from_unmarked() -> None:
    assert marks_integration("import pytest\npytestmark = pytest.mark.integration\n")
    assert marks_integration("pytestmark = [pytest.mark.integration, pytest.mark.slow]\n")
    assert not marks_integration("import pytest\n\ndef test_x() -> None: ...\n")
    assert not marks_integration("pytestmark = pytest.mark.slow\n")


@pytest.mark.parametrize(
    "module", sorted(p.name for p in INTEGRATION.glob("test_*.py")), ids=lambda name: name
)
def test_integration_module_is_marked(module: str) -> None:
    assert marks_integration((INTEGRATION / module).read_text()), (
        f"tests/integration/{module} needs `pytestmark = pytest.mark.integration`"
    )
