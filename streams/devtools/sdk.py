"""The official futu SDK (PyPI ``futu-api``) as a peer, always in a subprocess.

The SDK registers the same protobuf symbols as ``streams.pb``, so it never runs in a
capflow process: :func:`run_sdk` runs a script with it in a fresh interpreter, and
:func:`sim_process` runs ``capflow opend-sim`` in another, for tests that compare what
the SDK and capflow's client read from the same simulator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from streams.devtools.processes import capflow

_LISTENING = re.compile(r"^.*listening on [\d.]+:(\d+).*$", re.M)


class SdkMissing(RuntimeError):
    """futu-api is not installed in this interpreter (callers may skip)."""


class SdkFailed(RuntimeError):
    """The SDK script ended without writing its result; the message has its output."""


def run_sdk(
    script: str, args: Sequence[str], home: Path, stdin: str = "", timeout: float = 90.0
) -> Any:
    """Run ``script`` with the SDK and return the JSON it wrote.

    The script gets the result file as ``sys.argv[1]`` and ``args`` after it, and writes
    its JSON there rather than to stdout, where the SDK's log threads write too and can
    tear a printed line. HOME is ``home``: the SDK writes its logs under it.
    """
    result = home / "result.json"
    result.unlink(missing_ok=True)
    done = subprocess.run(
        # env(1): the inherited environment with HOME moved (the SDK logs under $HOME).
        ["env", f"HOME={home}", sys.executable, "-c", script, str(result), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if "No module named 'futu'" in done.stderr:
        raise SdkMissing("futu-api is not installed")
    if not result.exists():
        raise SdkFailed(f"SDK script failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return json.loads(result.read_text())


@contextmanager
def sim_process(*flags: str) -> Iterator[tuple[int, str]]:
    """``capflow opend-sim --port 0 FLAGS`` in a child process: yields (port, the line it
    prints to say where it listens; its log lines go elsewhere). The simulator is stopped,
    and its output dropped, on exit."""
    with TemporaryDirectory(prefix="opend-sim-") as tmp:
        out, err = Path(tmp) / "opend-sim.out", Path(tmp) / "opend-sim.log"
        sim = capflow("opend-sim", "--port", "0", *flags, log=out, stderr=err)
        with sim:
            match = sim.wait_output_sync(_LISTENING, 60)
            yield int(match.group(1)), match.group(0)
