"""Keep secrets (SASL password, webhook secret) out of every log line, whoever logs them.

aiokafka logs each request at DEBUG, and a SASL PLAIN login request carries the
password in clear. Filters on loggers or handlers miss records of libraries that set
up their own handlers (Faust does), so a log-record factory cleans every record as it
is made, its traceback text included.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words; such secrets are not secret
_secrets: set[str] = set()
_previous_factory: Any = None


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``***`` (longest first)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _previous_factory(*args, **kwargs)
    if not _secrets:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to the handler to report
        return record
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        # Formatters use exc_text when it is set, so the raw traceback is never printed.
        record.exc_text = redact(text)
    return record


def add_secrets(values: Iterable[str]) -> None:
    """Mask these values (and their ``bytes`` repr form) in every later log record."""
    global _previous_factory
    for value in values:
        if value and len(value) >= MIN_LENGTH:
            _secrets.add(value)
            _secrets.add(repr(value.encode())[2:-1])
    if _secrets and _previous_factory is None:
        _previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_make_record)
