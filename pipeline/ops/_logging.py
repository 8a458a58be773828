"""Logs: one JSON object per line on stderr, ours and aiokafka's, aiokafka's rate-limited.

The loop logs events worth logging — start, partition assignment and revocation, commit
failures, shutdown — and never anything per receipt or per record: those are what the counters
are for. aiokafka logs every failed reconnect, thousands of lines a second while a broker is
down, from child loggers (`aiokafka.conn`, `aiokafka.consumer.group_coordinator`, ...). A
logger's filters see only records logged on that very logger, not its children's, so the rate
limit sits on aiokafka's handler, which every record of the tree passes through.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final, TextIO

import orjson

__all__ = ["JsonFormatter", "RateLimit", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from `extra={...}`.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (RFC 3339, UTC), level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                doc[f"extra_{key}" if key in doc else key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(doc, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits: degrade to repr, stay one line
            safe = {k: v if isinstance(v, str) else repr(v) for k, v in doc.items()}
            return orjson.dumps(safe).decode()


class RateLimit(logging.Filter):
    """Each distinct message (logger and format string) passes at most once per `every`
    seconds; the next one that passes says how many were held back."""

    #: Distinct messages remembered; beyond it the memory starts afresh (bounded).
    MAX_KEYS: Final = 1000

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = (record.name, record.msg if isinstance(record.msg, str) else repr(record.msg))
        last, held = self.seen.get(key, (-self.every, 0))
        if now - last < self.every:
            self.seen[key] = (last, held + 1)
            return False
        if len(self.seen) >= self.MAX_KEYS:
            self.seen.clear()
        self.seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {self.every:.0f}s)"
        return True


class Retried(logging.Filter):
    """Demotes to INFO what aiokafka logs as an error but retries itself (an exception argument
    that is `retriable`, e.g. GroupCoordinatorNotAvailableError while a new group's coordinator
    is elected): normal conditions, not something for an operator to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno > logging.INFO and any(getattr(a, "retriable", 0) is True for a in args):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Marker type, so configure_logging can replace its own handlers when called again."""


def _install(logger: logging.Logger, level: str | int, handler: logging.Handler) -> None:
    logger.setLevel(level)
    for old in [h for h in logger.handlers if isinstance(h, _JsonHandler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.propagate = False  # the root logger would print every line a second time


def configure_logging(level: str, aiokafka_every: float = 10.0) -> None:
    """The `pipeline` logger at `level` (e.g. "INFO"), aiokafka's and asyncio's at WARNING, as
    JSON lines on stderr; theirs through a `RateLimit(aiokafka_every)` handler filter (asyncio
    reports there what a library left unretrieved, e.g. a batch future of a producer that was
    dropped after a failed transaction). Raises ValueError for an unknown level name."""
    logger = logging.getLogger("pipeline")
    logger.setLevel(level.upper())  # validates before anything is replaced
    ours = _JsonHandler(sys.stderr)
    ours.setFormatter(JsonFormatter())
    _install(logger, level.upper(), ours)
    theirs = _JsonHandler(sys.stderr)
    theirs.setFormatter(JsonFormatter())
    theirs.addFilter(Retried())
    theirs.addFilter(RateLimit(aiokafka_every))
    _install(logging.getLogger("aiokafka"), logging.WARNING, theirs)
    _install(logging.getLogger("asyncio"), logging.WARNING, theirs)
