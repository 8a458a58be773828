"""aiokafka's log lines, rate-limited."""

from __future__ import annotations

import logging
import time


class RateLimit(logging.Filter):
    """aiokafka logs every failed reconnect: thousands of lines a second while a broker is down.
    Each distinct message passes at most once per `every` seconds; the next says how many were
    held back."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self.seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = record.msg if isinstance(record.msg, str) else repr(record.msg)
        last, held = self.seen.get(key, (0.0, 0))
        if now - last < self.every:
            self.seen[key] = (last, held + 1)
            return False
        if len(self.seen) > 1000:
            self.seen.clear()
        self.seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {self.every:.0f}s)"
        return True
