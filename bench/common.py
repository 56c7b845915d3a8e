"""Shared helpers of the benchmarks: machine facts, percentiles, workers, topics, BENCHMARKS.md.

Every benchmark script prints its results and replaces its own section of
``BENCHMARKS.md`` (between ``<!-- bench:NAME -->`` markers), so re-running one
script never touches the numbers of another.
"""

from __future__ import annotations

import fcntl
import math
import os
import platform
import re
import secrets
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

# Workers, topics and metrics come from the dev harness the tests share.
from streams.devtools import (  # noqa: F401 (re-exported for the benchmark scripts)
    Topics,
    Worker,
    free_port,
    metric_value,
    read_to_end,
    start_worker,
)

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
DEFAULT_BOOTSTRAP = os.environ.get("CAPFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:19092")

INTRO = """# Benchmarks

Measurements of capflow on one machine, produced by the scripts in `bench/`
(`bench/common.py` holds the shared helpers). Each script prints its results and
rewrites only its own section below, with the exact command, the date and the
machine. Every run uses its own topics and app ids (prefix `bench-<random>`) on a
real Apache Kafka broker (`capflow kafka start`), and the OpenD simulator
(`streams.opend_sim`) in place of a real OpenD.

Run them from the repository root with the project's virtualenv and a broker on
127.0.0.1:19092 (`--bootstrap` to change it); about 22 minutes in total, the
300-security poll run (~6 min) can go in the background meanwhile:

    python -m bench.poll_budget --securities 30 --duration 90
    python -m bench.poll_budget --securities 300 --duration 340 &
    python -m bench.latency
    python -m bench.replay_throughput
    python -m bench.recovery
    python -m bench.detection_delay --securities 30,300

**Noise.** The machine is small (2 cores) and was shared with other work while
these numbers were taken, so absolute figures can move noticeably from run to
run. Ratios between variants measured side by side in the same run are more
trustworthy than any absolute number; compare those first.

"""


# -- identity of a run ------------------------------------------------------------------


def run_prefix(name: str) -> str:
    """A unique topic / app-id prefix, e.g. ``bench-latency-3f2a9c``."""
    return f"bench-{name}-{secrets.token_hex(3)}"


def command_line() -> str:
    """The command that is running, as typed from the repository root (``python -m bench.x``)."""
    script = Path(sys.argv[0]).resolve()
    module = f"bench.{script.stem}" if script.parent == ROOT / "bench" else str(script)
    # The project's virtualenv as README sets it up, not this machine's interpreter path.
    return " ".join([".venv/bin/python", "-m", module, *sys.argv[1:]])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _kafka_version() -> str:
    """Broker version from the jar name of the running broker's class path (best effort)."""
    try:
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for line in out.stdout.splitlines():
        if "java" in line and "kafka" in line:
            match = re.search(r"kafka[_-](?:\d+\.\d+-)?(\d+\.\d+\.\d+)", line)
            if match:
                return match.group(1)
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def machine() -> dict[str, str]:
    """nproc, CPU model, Python, Kafka and client library versions."""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "kafka": _kafka_version(),
        "faust-streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "protobuf": _version("protobuf"),
    }


def header_lines() -> list[str]:
    """Command, date and machine lines for the top of a section."""
    m = machine()
    return [
        "Command (from the repository root):",
        "",
        "    " + command_line(),
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: nproc {m['nproc']}, "
        f"{m['cpu']}, Python {m['python']}, Kafka {m['kafka']}, "
        f"faust-streaming {m['faust-streaming']}, aiokafka {m['aiokafka']}, "
        f"protobuf {m['protobuf']}.",
        "",
    ]


# -- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def fmt(value: float, digits: int = 1) -> str:
    """A number for a table; 'n/a' for NaN."""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


# -- BENCHMARKS.md ----------------------------------------------------------------------

ORDER = (
    "poll_budget-30",
    "poll_budget-300",
    "latency",
    "replay_throughput",
    "recovery",
    "opend_encryption",
    "detection_delay-30-k1",
    "detection_delay-300-k1",
    "detection_delay-30-k3",
    "detection_delay-300-k3",
    "detection_delay-300-k1-history",
    "Warm start",
    "late_start-30",
    "late_start-300",
    "outage-30",
    "outage-300",
)


def update_section(name: str, lines: Sequence[str]) -> None:
    """Replace (or add) the section ``name`` of BENCHMARKS.md; safe against parallel runs."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = "\n".join([begin, *lines, end])
    lock_path = BENCHMARKS_MD.with_suffix(".md.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else INTRO
        pattern = re.compile(r"<!-- bench:(.+?) -->\n.*?<!-- /bench:\1 -->", re.S)
        sections = {m.group(1): m.group(0) for m in pattern.finditer(text)}
        intro = text.split("<!-- bench:", 1)[0].rstrip() + "\n\n"
        sections[name] = block
        known = [n for n in ORDER if n in sections] + sorted(set(sections) - set(ORDER))
        BENCHMARKS_MD.write_text(intro + "\n\n".join(sections[n] for n in known) + "\n")
    lock_path.unlink(missing_ok=True)


# -- Kafka ------------------------------------------------------------------------------


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 3) -> None:
    """Create fresh topics with ``partitions`` partitions (what a worker expects)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Best-effort removal of a run's topics (keeps the shared broker small)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    except Exception as exc:  # cleanup must never hide the results
        print(f"(topic cleanup failed: {exc!r})")
    finally:
        await admin.close()


async def prefixed_topics(bootstrap: str, prefix: str) -> list[str]:
    """Every topic whose name starts with ``prefix`` (including Faust's internal ones)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()
