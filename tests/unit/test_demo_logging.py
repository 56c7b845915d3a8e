"""The demo keeps the client libraries' transient log lines off the terminal, in its log file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.commands.demo import LIBRARY_LOGGERS, library_logs_to

NOISE = (
    "Failed fetch offsets from 1: [Error 6] NotLeaderForPartitionError: "
    "TopicPartition(topic='capflow.demo.alerts.v1', partition=2)"
)


@pytest.fixture
def restored_loggers() -> Iterator[None]:
    """Put the library loggers back as they were: the routing is process-wide."""
    saved = {
        name: (lg.level, lg.propagate, list(lg.handlers))
        for name, lg in ((n, logging.getLogger(n)) for n in LIBRARY_LOGGERS)
    }
    yield
    for name, (level, propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_library_errors_go_to_the_log_file_not_the_terminal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, restored_loggers: None
) -> None:
    log = tmp_path / "demo.log"
    handler = library_logs_to(log)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("aiokafka.consumer.fetcher").error(NOISE)
        logging.getLogger("aiokafka.consumer.group_coordinator").warning("Heartbeat failed")
        logging.getLogger("streams.commands.demo").error("our own error")
    handler.flush()
    # Nothing of the libraries reaches the root logger (the terminal); ours still does.
    assert [r.getMessage() for r in caplog.records] == ["our own error"]
    text = log.read_text()
    assert "ERROR aiokafka.consumer.fetcher: Failed fetch offsets" in text
    assert "WARNING aiokafka.consumer.group_coordinator: Heartbeat failed" in text
