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
from typing import Any

_LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


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
    """``capflow opend-sim --port 0 FLAGS`` in a subprocess: yields (port, its first line).

    The simulator prints where it listens on its first line; it is stopped on exit.
    """
    cmd = [sys.executable, "-m", "streams.cli", "opend-sim", "--port", "0", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        yield int(match.group(1)), line
    finally:
        proc.terminate()
        proc.wait(10)
